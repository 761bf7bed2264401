"""`superres demo`: the product's main job, end to end, on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..demo import DemoError, run_demo
from ..sr import ENGINE_NAMES, load_engine
from ..stack import PROJECT_ROOT


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Where the result and the before/after picture go.")
@click.option("--magnify", type=click.Choice(["2", "4"]), default="2", show_default=True,
              help="AISuperResolution magnification (the function's MAGNIFY).")
@click.option("--engine", type=click.Choice(ENGINE_NAMES), default="span", show_default=True,
              help="The stand-in's SR engine (bicubic is for load tests, not a demo).")
@click.option("--key", default="uploads/astronaut.jpg", show_default=True,
              help="Object key to upload (must be under the trigger prefix).")
@click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=PROJECT_ROOT / "serverless.yml", show_default="the project's serverless.yml",
              help="Deployment file: the bucket, region and prefixes come from it and the .env next to it.")
@click.option("--outputs", default=None, metavar="SPEC",
              help="The function's OUTPUTS, e.g. 'x2/:2,x4/:4:webp:80': several results per upload (README).")
def demo(out_dir: Path, magnify: str, engine: str, key: str, serverless: Path, outputs: str | None) -> None:
    """Upload a real photo to the local stand-in and let the COS trigger super-resolve it.

    Starts the COS + CI stand-in, uploads scikit-image's astronaut photo with cos-python-sdk-v5, lets
    serverless.yml's COS trigger run the function, which calls CI's AISuperResolution (the SPAN model),
    then prints the parsed ProcessResults and writes OUT/before-after.png (bicubic vs AI at the same size).
    The bucket and region are the configured ones (serverless.yml and .env); the stand-in serves them. OUT gets
    the result, the picture and the function's log (function-log.jsonl), nothing else.
    """
    click.echo(f"starting the stand-in and uploading {key} (magnify {magnify}, engine {engine}) ...", err=True)
    try:
        result = run_demo(out_dir, magnify=int(magnify), engine=load_engine(engine), key=key, serverless=serverless,
                          outputs=outputs)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    line = result.log_line
    click.echo("ProcessResults (parsed from the function's log line):")
    click.echo(json.dumps(line.get("result"), indent=2, ensure_ascii=False))
    click.echo(f"original: {line.get('original')}")
    click.echo(f"input {result.input_size[0]}x{result.input_size[1]} -> output "
               f"{result.output_size[0]}x{result.output_size[1]} in {line.get('duration_ms')} ms")
    for dest_key, path, (width, height), fmt in result.outputs:
        click.echo(f"also: {dest_key} ({fmt} {width}x{height}) -> {path}")
    if result.outputs:
        click.echo("outputs (from the log line): " + json.dumps(
            [{k: o.get(k) for k in ("dest_key", "magnify", "format", "status")} for o in line["outputs"]],
            ensure_ascii=False))
    click.echo(f"wrote {result.output} and {result.comparison}")
