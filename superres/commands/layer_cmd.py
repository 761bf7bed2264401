"""`superres layer build`: the SCF layer zip (make layer)."""

from __future__ import annotations

from pathlib import Path

import click

from ..deploy.layer import REQUIREMENTS, LayerBuildError, build_layer


@click.group()
def layer() -> None:
    """The SCF layer with the function's runtime dependencies (layers/requirements.txt)."""


@layer.command()
@click.option("--python-version", default=None,
              help="CPython version to install wheels for [default: RUNTIME's from .env/.env.example, e.g. "
                   "Python3.12 -> 3.12, the runtime serverless.yml deploys]. Tests also build other versions.")
@click.option("--out", "zip_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Zip to write [default: layers/dist/cos-superres-layer-pyXY.zip].")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Unpacked layer folder [default: layers/build/PythonX.Y, what layers/serverless.yml deploys].")
@click.option("--requirements", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=REQUIREMENTS,
              show_default=True, help="The function's runtime requirements.")
@click.option("--force", is_flag=True, help="Rebuild even if a build with the same inputs exists.")
def build(python_version: str | None, zip_path: Path | None, build_dir: Path | None, requirements: Path,
          force: bool) -> None:
    """Build the layer zip for SCF: platform wheels for CPython --python-version on manylinux x86_64,
    packages at the zip root (SCF unpacks layers into /opt, which is on PYTHONPATH), caches and tests
    stripped, crcmod repacked pure-Python. Needs PyPI. Prints the zip's path and size."""
    try:
        result = build_layer(python_version=python_version, zip_path=zip_path, build_dir=build_dir,
                             requirements=requirements, reuse=not force, log=lambda line: click.echo(line, err=True))
    except LayerBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(result.summary())
