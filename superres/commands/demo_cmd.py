"""`superres demo`: the product's main job, end to end, on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..demo import DemoError, DemoResult, run_demo
from ..demo.run import demo_config
from ..sr import ENGINE_NAMES, load_engine
from ..stack import PROJECT_ROOT


@click.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="Where the results, the before/after picture and the HTML page go.")
@click.option("--magnify", type=click.Choice(["2", "4"]), default=None,
              help="AISuperResolution magnification, overriding the function's MAGNIFY.  [default: MAGNIFY from "
                   ".env, 2 in .env.example]")
@click.option("--engine", type=click.Choice(ENGINE_NAMES), default="span", show_default=True,
              help="The stand-in's SR engine (bicubic is for load tests, not a demo).")
@click.option("--file", "upload", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Upload this file instead of scikit-image's astronaut photo.")
@click.option("--key", default=None,
              help="Object key to upload (must be under the trigger prefix).  [default: the trigger prefix + "
                   "astronaut.jpg, or + the --file's name]")
@click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=PROJECT_ROOT / "serverless.yml", show_default="the project's serverless.yml",
              help="Deployment file: the bucket, region and prefixes come from it and the .env next to it.")
@click.option("--outputs", default=None, metavar="SPEC",
              help="The function's OUTPUTS, e.g. 'x2/:2,x4/:4:webp:80': several results per upload (README); "
                   "an output's @BUCKET is created in the stand-in.")
def demo(out_dir: Path, magnify: str | None, engine: str, upload: Path | None, key: str | None, serverless: Path,
         outputs: str | None) -> None:
    """Upload a real photo to the local stand-in and let the COS trigger super-resolve it.

    Starts the COS + CI stand-in, uploads scikit-image's astronaut photo with cos-python-sdk-v5, lets
    serverless.yml's COS trigger run the function, which calls CI's AISuperResolution (the SPAN model),
    then prints the parsed ProcessResults and writes OUT/before-after.png (bicubic vs AI at the same size) and
    OUT/index.html (a before/after slider, every output, the function's log line). The bucket, region, MAGNIFY and
    prefixes are the configured ones (serverless.yml and .env); the stand-in serves them. OUT gets the results,
    the upload, the picture, the page and the function's log (function-log.jsonl), nothing else.
    """
    config = demo_config(serverless, magnify=int(magnify) if magnify else None, outputs=outputs)
    upload_key = key or config.trigger.prefix + (upload.name if upload else "astronaut.jpg")
    click.echo(f"starting the stand-in and uploading {upload_key} ({config.describe}, engine {engine}) ...", err=True)
    try:
        result = run_demo(out_dir, config, engine=load_engine(engine), key=upload_key, upload=upload)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    _report(result)


def _report(result: DemoResult) -> None:
    line = result.log_line
    click.echo("ProcessResults (parsed from the function's log line):")
    click.echo(json.dumps(line.get("result"), indent=2, ensure_ascii=False))
    original = line.get("original")
    if isinstance(original, dict):
        click.echo(f"original: {original.get('width')}x{original.get('height')} {original.get('format')}")
    first = result.outputs[0]
    click.echo(f"input {result.input_size[0]}x{result.input_size[1]} -> output {first.size[0]}x{first.size[1]} "
               f"in {line.get('duration_ms')} ms")
    if len(result.outputs) > 1:
        click.echo("outputs (from the log line):")
        for output in result.outputs:
            click.echo(f"  x{output.magnify} {output.status}: {output.bucket}/{output.key} -> {output.path} "
                       f"({output.format} {output.size[0]}x{output.size[1]})")
    click.echo(f"wrote {first.path}, {result.comparison} and {result.page} (open it in a browser)")
