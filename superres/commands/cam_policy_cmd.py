"""`superres cam-policy`: the execution role's least-privilege policy, from serverless.yml and .env."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from superres_fn import ConfigError

from ..deploy import Deployment, cam_policy, environment_problems, self_trigger_problems
from ..scf.serverless import ServerlessConfigError, load_function_spec


@click.command("cam-policy")
@click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=Path("serverless.yml"), show_default=True, help="Deployment file (its .env/.env.example "
              "next to it resolve ${env:...}).")
@click.option("--check", "check_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Instead of printing, exit 1 if this policy file (e.g. cam-policy.json) differs.")
def cam_policy_cmd(serverless: Path, check_file: Path | None) -> None:
    """Print the CAM policy for the function's execution role: cos:GetObject + cos:HeadObject on the trigger
    prefix (CI reads the upload, the function checks its version), cos:HeadObject + cos:PutObject on DEST_PREFIX,
    the CI super-resolution action on the bucket, read/delete/list on DEST_PREFIX.staging/ (published results are
    copied from there) and delete on DEST_PREFIX.claims/ (claims, CLAIM_WORK). Also refuses a deployment whose
    trigger prefix overlaps DEST_PREFIX (the function would trigger itself)."""
    try:
        spec = load_function_spec(serverless)
        deployment = Deployment.from_spec(spec)
    except (ServerlessConfigError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc
    problems = self_trigger_problems(deployment) + environment_problems(spec)
    if problems:
        raise click.ClickException("\n".join(problems))
    policy = cam_policy(deployment)
    if check_file is not None:
        try:
            current = json.loads(check_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"{check_file} is not a JSON policy ({exc}); regenerate it with "
                                       f"`superres cam-policy > {check_file}`") from None
        if current != policy:
            click.echo(f"{check_file} differs from the policy for {serverless}; regenerate it with "
                       f"`superres cam-policy > {check_file}`", err=True)
            sys.exit(1)
        click.echo(f"{check_file} matches {serverless}", err=True)
        return
    click.echo(json.dumps(policy, indent=2))
