"""`superres deploy-config`: what SCF does with failing async events, applied alone (`superres deploy` applies it
with the function; after `components deploy` this is the way)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import yaml
from superres_fn import ConfigError

from ..deploy.deploy_config import DEPLOY_CONFIG_ACTIONS, AsyncPolicy, DeployConfigError, apply_async_policy
from ..scf.client import ENDPOINT_ENV, CredentialsMissing, make_client
from ..scf.serverless import ServerlessConfigError, load_function_spec, read_env_files


@click.command("deploy-config")
@click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=Path("serverless.yml"), show_default=True,
              help="Deployment file: the function's name, namespace and region come from it (and its .env).")
@click.option("--retry-num", type=click.IntRange(min=0), default=None,
              help="Retries after an execution error [default: ASYNC_RETRY_NUM from .env, else 2].")
@click.option("--msg-ttl", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="How long an event may wait to be delivered [default: ASYNC_MSG_TTL from .env, else 21600].")
@click.option("--scf-endpoint", envvar=ENDPOINT_ENV, default=None, metavar="HOST:PORT",
              help=f"SCF API endpoint (plain HTTP for HOST:PORT), e.g. a local one in tests [env {ENDPOINT_ENV}; "
                   "default scf.tencentcloudapi.com].")
def deploy_config(serverless: Path, retry_num: int | None, msg_ttl: int | None, scf_endpoint: str | None) -> None:
    """Apply the async failure policy to the deployed function with the SCF API's
    UpdateFunctionEventInvokeConfig (AsyncTriggerConfig: RetryConfig[].RetryNum, MsgTTL), then print what SCF
    holds (GetFunctionEventInvokeConfig). The scf component sends these only for asyncRunEnable functions, so
    run this after the first `components deploy` (and after recreating the function). Needs
    TENCENTCLOUD_SECRETID/SECRETKEY[/SESSIONTOKEN] of a CAM user allowed scf:UpdateFunctionEventInvokeConfig
    and scf:GetFunctionEventInvokeConfig."""
    try:
        spec = load_function_spec(serverless)
        env = read_env_files(serverless.parent)
        policy = AsyncPolicy.from_env(env)
        policy = AsyncPolicy(policy.retry_num if retry_num is None else retry_num,
                             policy.msg_ttl_s if msg_ttl is None else msg_ttl)
        client = make_client(spec.region, scf_endpoint=scf_endpoint, environ=os.environ,
                             needs=" and ".join(DEPLOY_CONFIG_ACTIONS))
        namespace = str(_namespace(serverless, env))
        applied = apply_async_policy(client, spec.name, namespace, policy)
    except (ServerlessConfigError, ConfigError, DeployConfigError, CredentialsMissing) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"function": spec.name, "namespace": namespace, "region": spec.region,
                           "AsyncTriggerConfig": applied}))


def _namespace(serverless: Path, env: dict[str, str]) -> str:
    inputs = (yaml.safe_load(serverless.read_text(encoding="utf-8")) or {}).get("inputs") or {}
    return str(inputs.get("namespace") or "default")
