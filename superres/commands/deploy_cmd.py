"""`superres deploy` and `superres remove`: serverless.yml deployed with the SCF API, no Serverless platform."""

from __future__ import annotations

import os
from pathlib import Path

import click
from superres_fn import ConfigError

from ..deploy.clients import make_clients
from ..deploy.deploy import Deployer, DeployError
from ..deploy.deploy_config import AsyncPolicy, DeployConfigError
from ..deploy.deployment import refuse_self_trigger
from ..deploy.layer import LayerBuildError, python_version_of
from ..deploy.project import load_project
from ..scf.client import ENDPOINT_ENV, CredentialsMissing
from ..scf.serverless import ServerlessConfigError

_PROJECT = click.option("--project", type=click.Path(file_okay=False, exists=True, path_type=Path),
                        default=Path("."), show_default=True,
                        help="Project root: serverless.yml, layers/serverless.yml, .env.example/.env, handler/.")
_ENV_FILE = click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Settings file read after .env.example [default: PROJECT/.env].")
_ENDPOINT = click.option("--endpoint", envvar=ENDPOINT_ENV, default=None, metavar="HOST:PORT",
                         help=f"SCF API endpoint, plain HTTP for HOST:PORT: the local one of `superres local "
                              f"--scf-api-port` [env {ENDPOINT_ENV}; default scf.tencentcloudapi.com].")
_COS_ENDPOINT = click.option("--cos-endpoint", default=None, metavar="URL",
                             help="COS endpoint for code over the ZipFile limit, e.g. the stand-in's "
                                  "http://127.0.0.1:9000 [default: the bucket's region].")


@click.command("deploy")
@_PROJECT
@_ENV_FILE
@_ENDPOINT
@_COS_ENDPOINT
@click.option("--dry-run", is_flag=True, help="Print the API calls that would change something, change nothing. "
              "Reads the account when keys are set; without keys it plans a first deploy.")
def deploy(project: Path, env_file: Path | None, endpoint: str | None, cos_endpoint: str | None,
           dry_run: bool) -> None:
    """Deploy serverless.yml and layers/serverless.yml with the SCF API (tencentcloud-sdk-python): publish the
    layer (layers/build/RUNTIME, `make layer`), create or update the function (code from serverless.yml's src,
    waiting on its Status), set the async retry policy (ASYNC_RETRY_NUM, ASYNC_MSG_TTL) and the COS trigger.
    Only what differs is sent: a second run says there is nothing to change. Needs
    TENCENTCLOUD_SECRETID/SECRETKEY[/SESSIONTOKEN] of a CAM user allowed to deploy SCF (docs/deploy.md)."""
    deployer = _deployer(project, env_file, endpoint, cos_endpoint, dry_run=dry_run)
    try:
        outcome = deployer.deploy()
    except (DeployError, ServerlessConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    if dry_run:
        click.echo(f"dry run: {len(outcome.calls)} call(s) would change the account", err=True)
    elif outcome.changed:
        click.echo(f"deployed {deployer.name} ({len(outcome.calls)} change(s))", err=True)


@click.command("remove")
@_PROJECT
@_ENV_FILE
@_ENDPOINT
def remove(project: Path, env_file: Path | None, endpoint: str | None) -> None:
    """Take down what `superres deploy` made: the function's COS triggers, then the function. Layer versions
    stay (SCF keeps them; delete them in the console if unused)."""
    deployer = _deployer(project, env_file, endpoint, None, dry_run=False)
    try:
        deployer.remove()
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None


def _deployer(project: Path, env_file: Path | None, endpoint: str | None, cos_endpoint: str | None, *,
              dry_run: bool) -> Deployer:
    try:
        loaded = load_project(project, env_file=env_file)
        python_version_of(loaded.spec.runtime)
        refuse_self_trigger(loaded.spec)
        policy = AsyncPolicy.from_env(loaded.env)
    except (ServerlessConfigError, ConfigError, DeployConfigError, LayerBuildError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    has_keys = bool(os.environ.get("TENCENTCLOUD_SECRETID") and os.environ.get("TENCENTCLOUD_SECRETKEY"))
    client, upload = None, None
    if has_keys or not dry_run:
        try:
            clients = make_clients(loaded.spec.region, endpoint=endpoint, cos_endpoint=cos_endpoint)
        except CredentialsMissing as exc:
            raise click.ClickException(str(exc)) from None
        client = clients.scf
        bucket = loaded.spec.triggers[0].bucket if loaded.spec.triggers else ""

        def upload(key: str, data: bytes) -> None:
            clients.cos.put_object(Bucket=bucket, Key=key, Body=data)
    elif dry_run:
        click.echo("no TENCENTCLOUD_SECRETID/SECRETKEY: planning a first deploy without reading the account",
                   err=True)
    return Deployer(loaded, client, policy=policy, dry_run=dry_run, upload_code=upload,
                    say=lambda line: click.echo(line, err=not line.startswith("would call")))
