"""`superres replay`: send sample COS events to the function, locally or deployed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..deploy.deployment import SelfTriggerError, refuse_self_trigger
from ..replay import ReplayError, local_target, replay_deployed, replay_local
from ..scf.client import ENDPOINT_ENV, CredentialsMissing, InvokeError, Target, make_client
from ..scf.serverless import ServerlessConfigError, load_function_spec
from ..sr import ENGINE_NAMES
from .params import bucket_option, region_option


@click.command()
@click.argument("events", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--deployed", "function", metavar="FUNCTION", default=None,
              help="Invoke this deployed SCF function through the SCF API instead of running locally. Needs "
                   "TENCENTCLOUD_SECRETID/SECRETKEY[/SESSIONTOKEN].")
@click.option("--region", envvar="TENCENTCLOUD_REGION", default=None, callback=region_option,
              help="The function's region (--deployed) [env TENCENTCLOUD_REGION; default: serverless.yml's, i.e. "
                   "REGION in .env, else ap-guangzhou].")
@click.option("--namespace", default="default", show_default=True, help="The function's namespace (--deployed).")
@click.option("--qualifier", default=None, help="Version or alias (--deployed) [default: $LATEST].")
@click.option("--async", "asynchronous", is_flag=True,
              help="--deployed: InvocationType=Event, as COS invokes it (returns at once, no log).")
@click.option("--scf-endpoint", envvar=ENDPOINT_ENV, default=None, metavar="HOST:PORT",
              help=f"SCF API endpoint (plain HTTP for HOST:PORT), e.g. a local one in tests [env {ENDPOINT_ENV}; "
                   "default scf.tencentcloudapi.com].")
@click.option("--bucket", default=None, metavar="NAME-APPID", callback=bucket_option,
              help="Aim the events at this bucket instead of the one they name (photos-1250000000).")
@click.option("--endpoint", default=None, metavar="URL",
              help="Local: use the stand-in of a running `superres local` at URL (its trigger also sees the "
                   "seeded uploads) instead of starting one.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Local: keep the started stand-in's buckets here (default: a temporary folder).")
@click.option("--engine", type=click.Choice(ENGINE_NAMES), default="span", show_default=True,
              help="Local: the started stand-in's super-resolution engine.")
@click.option("--no-seed", is_flag=True, help="Local: do not upload the objects the events name.")
@click.option("--create-bucket", is_flag=True,
              help="Local: create the bucket the events (or --bucket) name when it does not exist [default: refuse, "
                   "except for sample events' buckets in a stand-in replay starts itself].")
@click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=Path("serverless.yml"), show_default=True, help="Deployment file of the function (local).")
def replay(events: tuple[Path, ...], function: str | None, region: str | None, namespace: str, qualifier: str | None,
           asynchronous: bool, scf_endpoint: str | None, bucket: str | None, endpoint: str | None,
           data_dir: Path | None, engine: str, no_seed: bool, create_bucket: bool, serverless: Path) -> None:
    """Replay COS event files (see events/) through the function and print its log lines and result.

    Locally (default) the events run in a function instance against the stand-in, after uploading a real photo
    for each object they name that is missing (on a running stand-in whose trigger would fire on that key, the
    photo goes under replay-seed/ and the record is aimed there, so nothing is processed twice). Each event file
    starts from the same state: a result an earlier file of the run wrote for the same object is removed first.

    With --deployed FUNCTION they go to the deployed function via
    the SCF Invoke API: RetMsg, Log, Duration, BillDuration, MemUsage and ErrMsg are printed. Exit status 1
    when an invocation failed or the keys are missing, 2 on a usage error.
    """
    try:
        if function:
            region = region or load_function_spec(serverless).region or "ap-guangzhou"
            client = make_client(region, scf_endpoint=scf_endpoint)
            outcomes = replay_deployed(client, Target(function, region, namespace, qualifier), events, bucket=bucket,
                                       asynchronous=asynchronous, echo=click.echo)
            failed = any(o.failed for o in outcomes)
        else:
            refuse_self_trigger(load_function_spec(serverless))
            with local_target(endpoint=endpoint, data_dir=data_dir, engine=engine, serverless=serverless,
                              secret_id=os.environ.get("TENCENTCLOUD_SECRETID") if endpoint else None,
                              secret_key=os.environ.get("TENCENTCLOUD_SECRETKEY") if endpoint else None) as target:
                results = replay_local(target, events, bucket=bucket, seed=not no_seed, create_bucket=create_bucket,
                                       echo=click.echo)
            failed = not all(r.ok for r in results)
    except (CredentialsMissing, InvokeError, ReplayError, SelfTriggerError, ServerlessConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(1 if failed else 0)
