"""`superres check`: the preflight before a deploy, one line per problem, all at once; --cloud reads the account."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from superres_fn import ConfigError

from ..deploy.check import preflight_problems
from ..deploy.clients import CHECK_ACTIONS, make_clients
from ..deploy.cloud_check import cloud_problems
from ..deploy.project import load_project
from ..scf.client import ENDPOINT_ENV, CredentialsMissing
from ..scf.serverless import ServerlessConfigError


@click.command("check")
@click.option("--project", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              show_default=True, help="Project root: serverless.yml, layers/, .env/.env.example, cam-policy.json.")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Settings file read after .env.example [default: PROJECT/.env].")
@click.option("--cloud", is_flag=True, help="Also check the account, read-only: keys, bucket, Cloud Infinite "
              "binding, execution role and its policy, an existing function's runtime.")
@click.option("--endpoint", envvar=ENDPOINT_ENV, default=None, metavar="HOST:PORT",
              help=f"With --cloud: the local cloud API of `superres local --scf-api-port` [env {ENDPOINT_ENV}].")
@click.option("--cos-endpoint", default=None, metavar="URL", help="With --cloud: the stand-in's COS endpoint.")
def check(project: Path, env_file: Path | None, cloud: bool, endpoint: str | None, cos_endpoint: str | None) -> None:
    """Check the deployment before `superres deploy` (or `components deploy`): a real .env (not .env.example's
    placeholders), every ${env:} in serverless.yml and layers/serverless.yml set, the trigger prefix and
    DEST_PREFIX disjoint, the function's runtime = the layer's runtime = the built layer's Python, cam-policy.json
    current, descriptions SCF accepts, the COS trigger enabled, the async retry settings numbers. With --cloud,
    also the account (TENCENTCLOUD_SECRETID/SECRETKEY; read-only). Prints every problem, one per line, and exits
    1, or prints what is ready and exits 0."""
    problems = preflight_problems(project, env_file=env_file)
    if cloud:
        try:
            loaded = load_project(project, env_file=env_file)
            clients = make_clients(loaded.spec.region, endpoint=endpoint, cos_endpoint=cos_endpoint,
                                   needs=CHECK_ACTIONS)
            problems += [p for p in cloud_problems(loaded, clients) if p not in problems]
        except (ServerlessConfigError, ConfigError, CredentialsMissing) as exc:
            problems.append(f"--cloud: {exc}")
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        sys.exit(1)
    where = " and the account" if cloud else ""
    click.echo(f"ok: {project.resolve() / 'serverless.yml'}, layers/serverless.yml{where} are ready to deploy")
