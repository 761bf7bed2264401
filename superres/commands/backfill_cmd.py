"""`superres backfill`: process the images already in a bucket, as the function would have on upload."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from superres_fn import ConfigError, CosGateway, parse_endpoint

from ..backfill import (
    Backfill,
    BackfillError,
    BackfillInterrupted,
    BackfillOptions,
    Deployed,
    cos_client,
    default_checkpoint,
    function_settings,
)
from ..scf.client import ENDPOINT_ENV, CredentialsMissing, Target, make_client
from ..scf.serverless import ServerlessConfigError, load_function_spec
from ..standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY


@click.command()
@click.option("--bucket", default=None, metavar="NAME-APPID", help="Bucket to backfill [default: serverless.yml's "
              "COS trigger bucket].")
@click.option("--prefix", default=None, help="Only keys under this prefix [default: the trigger's prefix].")
@click.option("--region", default=None, help="The bucket's region [default: serverless.yml's region].")
@click.option("--endpoint", default=None, metavar="URL", help="COS endpoint, e.g. a `superres local` stand-in "
              "(http://127.0.0.1:9000); its demo keys are used unless TENCENTCLOUD_SECRETID/SECRETKEY are set.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Objects handled at once.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=50.0, show_default=True,
              help="At most this many objects per second (Cloud Infinite allows 100 requests/s; with --deployed, "
                   "invocations per second, capped at the SCF API's 20/s).")
@click.option("--page-size", type=click.IntRange(1, 1000), default=1000, show_default=True,
              help="Keys per listing page; the checkpoint advances per completed page.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Checkpoint file [default: .superres/backfill/<bucket>-<prefix hash>.json].")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue after the checkpoint's listing marker when an unfinished checkpoint exists.")
@click.option("--dry-run", is_flag=True, help="Print the plan (action, reason, key -> destination), one line per "
              "object; write nothing.")
@click.option("--max-objects", type=click.IntRange(min=0), default=None,
              help="Stop after this many objects (run again to continue from the checkpoint).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append the function's JSON log lines here.")
@click.option("--deployed", "function", metavar="FUNCTION", default=None,
              help="Fan out to this deployed function with async invocations instead of processing here.")
@click.option("--namespace", default="default", show_default=True, help="--deployed: the function's namespace.")
@click.option("--qualifier", default=None, help="--deployed: version or alias [default: $LATEST].")
@click.option("--batch-size", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="--deployed: records per invocation (each request also stays under the 128 KB async limit); "
                   "keep batch size x time per image under the function's timeout.")
@click.option("--scf-endpoint", envvar=ENDPOINT_ENV, default=None, metavar="HOST:PORT",
              help=f"--deployed: SCF API endpoint [env {ENDPOINT_ENV}; default scf.tencentcloudapi.com].")
@click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=Path("serverless.yml"), show_default=True,
              help="Deployment file: the function's settings (DEST_PREFIX, suffixes, size limit) come from here.")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [default: on a terminal].")
def backfill(bucket: str | None, prefix: str | None, region: str | None, endpoint: str | None, concurrency: int,
             rate: float, page_size: int, checkpoint: Path | None, resume: bool, dry_run: bool,
             max_objects: int | None, log_path: Path | None, function: str | None, namespace: str,
             qualifier: str | None, batch_size: int, scf_endpoint: str | None, serverless: Path,
             progress: bool | None) -> None:
    """Super-resolve the images already in a bucket, applying the function's own rules (suffix, size,
    destination prefix, skip when the result exists) with bounded concurrency and a rate limit.

    Each object becomes the COS upload record the trigger would deliver and runs through the function's code in
    this process, or with --deployed is sent to the deployed function in async batches. Resumable: the
    listing marker of the last completed page is checkpointed. Ends with one JSON line on stdout: listed,
    processed, skipped (by reason), failed, seconds. Exit status 1 if any object failed, 130 if interrupted.
    """
    try:
        spec = load_function_spec(serverless)
        trigger = spec.triggers[0] if spec.triggers else None
        bucket = bucket or (trigger.bucket if trigger else None)
        if not bucket:
            raise click.UsageError("--bucket is required (serverless.yml has no COS trigger)")
        prefix = prefix if prefix is not None else (trigger.prefix if trigger and trigger.bucket == bucket else "")
        region = region or (trigger.region if trigger else spec.region) or "ap-guangzhou"
        parse_endpoint(endpoint, "--endpoint")  # so a bad URL is reported under the option's name
        settings = function_settings(spec, region=region, endpoint=endpoint)
        credentials = _credentials(endpoint)
        deployed = None
        if function:
            client = make_client(region, scf_endpoint=scf_endpoint)
            deployed = Deployed(client, Target(function, region, namespace, qualifier), batch_size)
    except (ServerlessConfigError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    except CredentialsMissing as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    options = BackfillOptions(
        bucket=bucket, prefix=prefix, region=region, concurrency=concurrency, rate=rate, page_size=page_size,
        checkpoint=checkpoint or default_checkpoint(bucket, prefix), resume=resume, dry_run=dry_run,
        max_objects=max_objects, deployed=deployed, progress=progress, log_path=log_path,
    )
    job = Backfill(options, spec, settings, cos_client(region, credentials, settings.endpoint),
                   CosGateway(settings, environ=credentials), echo=click.echo)
    try:
        summary = job.run()
    except BackfillInterrupted as stop:
        click.echo(json.dumps(stop.summary, ensure_ascii=False))
        click.echo(f"interrupted: run the same command again to resume from {options.checkpoint}", err=True)
        sys.exit(130)
    except BackfillError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, ensure_ascii=False))
    sys.exit(1 if summary["failed"] else 0)


def _credentials(endpoint: str | None) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN")
           if os.environ.get(k, "").strip()}
    if "TENCENTCLOUD_SECRETID" in env and "TENCENTCLOUD_SECRETKEY" in env:
        return env
    if endpoint:
        return {"TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEMO_SECRET_KEY}
    raise CredentialsMissing("TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY must be set to list and read the "
                             "bucket (the stand-in's demo keys are used only with --endpoint)")
