"""`superres check`: the preflight before `components deploy`, one line per problem."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..deployment import preflight_problems


@click.command("check")
@click.option("--project", type=click.Path(file_okay=False, exists=True, path_type=Path), default=Path("."),
              show_default=True, help="Project root: serverless.yml, layers/, .env/.env.example, cam-policy.json.")
def check(project: Path) -> None:
    """Check the deployment before `components deploy`: every ${env:} in serverless.yml and layers/serverless.yml is set
    (.env.example, .env, then the environment), the trigger prefix and DEST_PREFIX are disjoint, the function's
    runtime = the layer's runtime = the built layer's Python, cam-policy.json is current, the descriptions use
    only characters SCF allows, the COS trigger is enabled, and the async retry settings are numbers.
    Prints one line per problem and exits 1, or prints what is ready and exits 0."""
    problems = preflight_problems(project)
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"ok: {project.resolve() / 'serverless.yml'} and layers/serverless.yml are ready to deploy")
