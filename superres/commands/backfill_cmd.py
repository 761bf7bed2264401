"""`superres backfill`: process the images already in a bucket, as the function would have on upload."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from superres_fn import ConfigError, CosGateway, Settings, parse_endpoint

from ..backfill import (
    Backfill,
    BackfillError,
    BackfillInterrupted,
    BackfillOptions,
    Deployed,
    ListingSource,
    Source,
    cos_client,
    default_checkpoint,
    function_settings,
)
from ..backfill.inventory import InventoryError, InventorySource, load_manifest
from ..backfill.reconcile import ReportSource
from ..deploy.deployment import SelfTriggerError, refuse_self_trigger
from ..scf.client import ENDPOINT_ENV, NETWORK_ERROR, CredentialsMissing, Target, make_client, unreachable
from ..scf.serverless import FunctionSpec, ServerlessConfigError, load_function_spec
from ..standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY
from .params import bucket_option, region_option


@dataclass
class Where:
    """What a backfill or reconcile works on, resolved from the options and serverless.yml."""

    spec: FunctionSpec
    settings: Settings
    bucket: str
    prefix: str
    region: str
    endpoint: str | None
    credentials: dict[str, str]
    client: object
    source: Source


def where_options(fn):  # type: ignore[no-untyped-def]
    """The options backfill and reconcile share: which bucket, prefix and sources."""
    options = [
        click.option("--bucket", default=None, metavar="NAME-APPID", callback=bucket_option,
                     help="The source bucket, '<name>-<appid>' [default: serverless.yml's COS trigger bucket]."),
        click.option("--prefix", default=None, help="Only keys under this prefix [default: the trigger's prefix]."),
        click.option("--region", default=None, callback=region_option,
                     help="The bucket's region, e.g. ap-guangzhou [default: serverless.yml's, i.e. REGION in .env]."),
        click.option("--endpoint", default=None, metavar="URL",
                     help="COS endpoint, e.g. a `superres local` stand-in (http://127.0.0.1:9000); its demo keys "
                          "are used unless TENCENTCLOUD_SECRETID/SECRETKEY are set."),
        click.option("--inventory", default=None, metavar="PATH|cos://BUCKET/KEY",
                     help="Read the sources from a COS Inventory report (its manifest.json: a local file or "
                          "folder, cos://BUCKET/KEY, or a key in the bucket) instead of listing the bucket."),
        click.option("--from-report", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                     help="Read the sources from a `superres reconcile` report (JSON lines)."),
        click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                     default=Path("serverless.yml"), show_default=True,
                     help="Deployment file: the function's settings (DEST_PREFIX, suffixes, size limit) come from "
                          "here."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def resolve_where(bucket: str | None, prefix: str | None, region: str | None, endpoint: str | None,
                  inventory: str | None, from_report: Path | None, serverless: Path, page_size: int = 1000) -> Where:
    """Raises click errors (one clear line) for anything wrong in the options, settings or report."""
    if inventory and from_report:
        raise click.UsageError("--inventory and --from-report are two different sources: pass one")
    try:
        spec = load_function_spec(serverless)
        refuse_self_trigger(spec)  # each result would be backfilled work, and in the cloud trigger again
        trigger = spec.triggers[0] if spec.triggers else None
        bucket = bucket or (trigger.bucket if trigger else None)
        if not bucket:
            raise click.UsageError("--bucket is required (serverless.yml has no COS trigger)")
        prefix = prefix if prefix is not None else (trigger.prefix if trigger and trigger.bucket == bucket else "")
        region = region or (trigger.region if trigger else spec.region) or "ap-guangzhou"
        parse_endpoint(endpoint, "--endpoint")  # so a bad URL is reported under the option's name
        settings = function_settings(spec, region=region, endpoint=endpoint)
        credentials = _credentials(endpoint)
    except (ServerlessConfigError, ConfigError, SelfTriggerError) as exc:
        raise click.ClickException(str(exc)) from exc
    except CredentialsMissing as exc:
        raise click.ClickException(str(exc)) from exc
    client = cos_client(region, credentials, settings.endpoint)
    source: Source
    if inventory:
        try:
            manifest = load_manifest(inventory, client=client, default_bucket=bucket)
        except InventoryError as exc:
            raise click.ClickException(str(exc)) from exc
        if manifest.source_bucket and manifest.source_bucket != bucket:
            raise click.ClickException(f"{manifest.where} is the inventory of {manifest.source_bucket}, not "
                                       f"{bucket}: pass --bucket {manifest.source_bucket}")
        source = InventorySource(manifest, prefix)
    elif from_report:
        source = ReportSource(from_report, prefix)
    else:
        source = ListingSource(client, bucket, prefix, page_size)
    return Where(spec, settings, bucket, prefix, region, endpoint, credentials, client, source)


@click.command()
@where_options
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Objects (with --deployed: invocations) handled at once.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=None,
              help="At most this many objects (CI calls) per second [default: Cloud Infinite's documented limit: "
                   "100/s in mainland regions, 50/s in finance and overseas regions; higher only with --endpoint].")
@click.option("--page-size", type=click.IntRange(1, 1000), default=1000, show_default=True,
              help="Keys per listing page and objects per batch; the checkpoint advances after every batch.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint file [default: .superres/backfill/<bucket>-<prefix hash>.json].")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue after the checkpoint when an unfinished checkpoint of the same run exists.")
@click.option("--dry-run", is_flag=True, help="Print the plan (action, reason, key -> destination), one line per "
              "object, and how many objects, CI calls and output bytes (estimated) the run would make; write "
              "nothing.")
@click.option("--max-objects", type=click.IntRange(min=0), default=None,
              help="Stop after this many objects (run again to continue from the checkpoint).")
@click.option("--max-calls", type=click.IntRange(min=0), default=None,
              help="Hard cap on CI calls over this checkpoint's runs (kept in the checkpoint; resumed runs honour "
                   "it without repeating the option).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append the function's JSON log lines here.")
@click.option("--deployed", "function", metavar="FUNCTION", default=None,
              help="Fan out to this deployed function with async invocations instead of processing here.")
@click.option("--namespace", default="default", show_default=True, help="--deployed: the function's namespace.")
@click.option("--qualifier", default=None, help="--deployed: version or alias [default: $LATEST].")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="--deployed: records per invocation (each request also stays under the 128 KB async limit, "
                   "counted in UTF-8 bytes); keep batch size x time per image under the function's timeout.")
@click.option("--reserved-concurrency", "reserved_mb", type=click.IntRange(min=1), default=None, metavar="MB",
              help="--deployed: the function's reserved concurrency (MB) [default: asked of the SCF API]; the "
                   "rate is kept to what its instances absorb (MB / memorySize instances, --seconds-per-image "
                   "each).")
@click.option("--seconds-per-image", type=click.FloatRange(min=0.01), default=3.0, show_default=True,
              help="--deployed: expected function time per image, to size the rate to --reserved-concurrency.")
@click.option("--scf-endpoint", envvar=ENDPOINT_ENV, default=None, metavar="HOST:PORT",
              help=f"--deployed: SCF API endpoint [env {ENDPOINT_ENV}; default scf.tencentcloudapi.com].")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: on a terminal].")
def backfill(bucket: str | None, prefix: str | None, region: str | None, endpoint: str | None,
             inventory: str | None, from_report: Path | None, serverless: Path, concurrency: int,
             rate: float | None, page_size: int, checkpoint: Path | None, resume: bool, dry_run: bool,
             max_objects: int | None, max_calls: int | None, log_path: Path | None, function: str | None,
             namespace: str, qualifier: str | None, batch_size: int, reserved_mb: int | None,
             seconds_per_image: float, scf_endpoint: str | None, progress: bool | None) -> None:
    """Super-resolve the images already in a bucket, applying the function's own rules (suffix, size,
    destination prefix) with bounded concurrency and a rate limit.

    The work is found without a HEAD of a source: the sources (a listing, --inventory or --from-report) are
    merged with one listing of each destination prefix; a source is work when its result is missing, or not made
    from the source's current version by the current rule (each existing result is read once for its stamp).
    Each object becomes the COS upload record the trigger would deliver and runs through the function's code in
    this process, or with --deployed is sent to the deployed function in async batches.
    Resumable: a checkpoint is written after every batch. Ctrl-C finishes the objects in flight; a second
    Ctrl-C abandons them, counting their calls against --max-calls. Ends with one JSON line on stdout: listed,
    processed, skipped (by reason), failed, calls (and calls_left with a cap), seconds; after Ctrl-C, stderr
    says the command that resumes. Exit status 1 if any object failed, 130 if interrupted.
    """
    if log_path is not None:
        _check_writable(log_path)
    where = resolve_where(bucket, prefix, region, endpoint, inventory, from_report, serverless, page_size)
    deployed = None
    if function:
        try:
            client = make_client(where.region, scf_endpoint=scf_endpoint)
        except CredentialsMissing as exc:
            raise click.ClickException(str(exc)) from exc
        deployed = Deployed(client, Target(function, where.region, namespace, qualifier), batch_size)
        if reserved_mb is None and not dry_run:
            reserved_mb = _reserved_concurrency_mb(client, deployed.target)
    checkpoint = checkpoint or default_checkpoint(where.bucket, where.prefix)
    options = BackfillOptions(
        bucket=where.bucket, prefix=where.prefix, region=where.region, endpoint=endpoint, concurrency=concurrency,
        rate=rate, page_size=page_size, checkpoint=checkpoint, resume=resume, dry_run=dry_run,
        max_objects=max_objects, max_calls=max_calls, deployed=deployed, reserved_concurrency_mb=reserved_mb,
        seconds_per_image=seconds_per_image, progress=progress, log_path=log_path, source=where.source,
    )
    job = Backfill(options, where.spec, where.settings, where.client,  # type: ignore[arg-type]
                   CosGateway(where.settings, environ=where.credentials), echo=click.echo,
                   say=lambda text: click.echo(text, err=True))
    try:
        summary = job.run()
    except BackfillInterrupted as stop:
        click.echo(json.dumps(stop.summary, ensure_ascii=False))
        click.echo(f"interrupted; to resume: {_resume_command(options)}", err=True)
        if stop.forced:
            # Objects still in flight are abandoned (found done or redone on resume); do not wait for them.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        sys.exit(130)
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, ensure_ascii=False))
    if dry_run:
        click.echo(f"dry run: {summary['to_process']} objects to process, {summary['ci_calls']} CI calls, about "
                   f"{_human_bytes(int(summary['estimated_output_bytes']))} of results (estimated)", err=True)
    elif summary.get("stopped_after_max_calls"):
        click.echo(f"stopped: --max-calls {summary['max_calls']} reached; raise it to continue", err=True)
    sys.exit(1 if summary["failed"] else 0)


# Options that say how this run went, not what it works on: a resume leaves them out (--no-resume above all).
_NOT_FOR_RESUME = frozenset({"resume", "dry_run", "progress", "bucket", "prefix", "region", "checkpoint"})


def _resume_command(options: BackfillOptions) -> str:
    """This command line as typed, with the bucket, prefix, region and checkpoint made explicit (a default may
    change: the trigger's prefix in .env, the checkpoint's folder) and without --no-resume."""
    ctx = click.get_current_context()
    args = ["superres", "backfill", "--bucket", options.bucket, "--prefix", options.prefix, "--region",
            options.region]
    for param in ctx.command.params:
        name = param.name or ""
        if (not isinstance(param, click.Option) or name in _NOT_FOR_RESUME
                or ctx.get_parameter_source(name) is not click.core.ParameterSource.COMMANDLINE):
            continue
        value = ctx.params[name]
        if param.is_flag:
            flags = param.opts if value == param.flag_value or value is True else param.secondary_opts
            args += flags[:1]
        else:
            args += [param.opts[0], str(value)]
    args += ["--checkpoint", str(options.checkpoint)]
    return shlex.join(args)


def _reserved_concurrency_mb(client: object, target: Target) -> int | None:
    """The function's reserved concurrency from the SCF API (GetReservedConcurrencyConfig), None if unset/unknown."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.scf.v20180416 import models

    request = models.GetReservedConcurrencyConfigRequest()
    request.FunctionName, request.Namespace = target.function, target.namespace
    try:
        reserved = client.GetReservedConcurrencyConfig(request).ReservedMem  # type: ignore[attr-defined]
    except TencentCloudSDKException as exc:
        if exc.get_code() == NETWORK_ERROR:
            raise click.ClickException(unreachable(client, exc)) from None  # type: ignore[arg-type]
        click.echo(f"could not read {target.function}'s reserved concurrency ({exc.get_code()}): pass "
                   "--reserved-concurrency MB to keep the rate to what it absorbs", err=True)
        return None
    return int(reserved) if reserved else None


def _check_writable(path: Path) -> None:
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise click.BadParameter(f"cannot write {path}: {exc.strerror or exc}", param_hint="--log") from None


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"


def _credentials(endpoint: str | None) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN")
           if os.environ.get(k, "").strip()}
    if "TENCENTCLOUD_SECRETID" in env and "TENCENTCLOUD_SECRETKEY" in env:
        return env
    if endpoint:
        return {"TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEMO_SECRET_KEY}
    raise CredentialsMissing("TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY must be set to list and read the "
                             "bucket (the stand-in's demo keys are used only with --endpoint)")
