"""`make demo`: a real photo goes in through the SDK, the COS trigger runs the function, CI's
AISuperResolution (the real model) writes the result; we print ProcessResults and a before/after picture."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from .photos import photo_bytes
from .stack import LocalStack, StackOptions


class DemoError(RuntimeError):
    """The demo could not finish; the message says what to look at."""


@dataclass(frozen=True)
class DemoResult:
    source_key: str
    dest_key: str
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    log_line: dict[str, object]
    comparison: Path
    output: Path
    # With OUTPUTS: every output written, as (destination key, file in OUT, width x height, image format)
    outputs: tuple[tuple[str, Path, tuple[int, int], str], ...] = ()


def run_demo(out_dir: Path, *, magnify: int = 2, engine: object | None = None, timeout_s: float = 600.0,
             key: str = "uploads/astronaut.jpg", port: int = 0, serverless: Path | None = None,
             outputs: str | None = None) -> DemoResult:
    """Writes exactly three files into `out_dir` (the result, the before/after picture and the function's log),
    plus one per further output with `outputs` (the function's OUTPUTS), and nothing else: the stand-in's data lives
    in a temporary folder removed afterwards."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log_copy = out_dir / "function-log.jsonl"
    with tempfile.TemporaryDirectory(prefix="superres-demo-") as tmp:
        data_dir = Path(tmp)
        function_env = {"MAGNIFY": str(magnify), **({"OUTPUTS": outputs} if outputs else {})}
        options = StackOptions(data_dir=data_dir, port=port, engine=engine, function_env=function_env,
                               **({"serverless": serverless} if serverless is not None else {}))
        try:
            body, line, output, extra = _upload_and_wait(LocalStack(options), key, timeout_s, log_copy)
        finally:
            if (data_dir / "function-log.jsonl").is_file():
                shutil.copyfile(data_dir / "function-log.jsonl", log_copy)
    output_path = out_dir / ("ai-" + Path(key).name)
    output_path.write_bytes(output)
    written = []
    for index, (dest_key, data) in enumerate(extra, start=1):
        path = out_dir / f"ai-{index}-{Path(key).name}"
        path.write_bytes(data)
        with Image.open(io.BytesIO(data)) as image:
            written.append((dest_key, path, image.size, str(image.format)))
    with Image.open(io.BytesIO(body)) as before, Image.open(io.BytesIO(output)) as after:
        comparison = out_dir / "before-after.png"
        side_by_side(before, after).save(comparison)
        return DemoResult(key, str(line["dest_key"]), before.size, after.size, line, comparison, output_path,
                          tuple(written))


def _upload_and_wait(stack: LocalStack, key: str, timeout_s: float,
                     log_copy: Path) -> tuple[bytes, dict[str, object], bytes, list[tuple[str, bytes]]]:
    """Upload the photo to the configured bucket and wait for the trigger: (source, log line, result bytes, and the
    other outputs' keys and bytes when there are several)."""
    trigger = stack.spec.triggers[0] if stack.spec.triggers else None
    if trigger is None:
        raise DemoError("serverless.yml has no COS trigger: the demo uploads to the trigger's bucket")
    if not key.startswith(trigger.prefix):
        raise DemoError(f"{key!r} is outside the trigger prefix {trigger.prefix!r} in serverless.yml")
    with stack:
        body, content_type = photo_bytes(key)
        client = stack.client()
        client.put_object(Bucket=trigger.bucket, Key=key, Body=body, ContentType=content_type)
        assert stack.trigger is not None
        if not stack.trigger.wait_idle(timeout_s):
            raise DemoError(f"the function did not finish within {timeout_s:.0f} s; see {log_copy}")
        line = _record_line(stack.trigger.log_lines, key)
        if line.get("outcome") != "processed":
            raise DemoError(f"the function did not process {key}: {line}")
        bucket = str(line.get("dest_bucket") or trigger.bucket)

        def fetch(dest_key: str) -> bytes:
            return client.get_object(Bucket=bucket, Key=dest_key)["Body"].get_raw_stream().read()

        output = fetch(str(line["dest_key"]))
        others = line.get("outputs") if isinstance(line.get("outputs"), list) else []
        extra = [(str(item["dest_key"]), fetch(str(item["dest_key"]))) for item in others[1:]]
    return body, line, output, extra


def side_by_side(before: Image.Image, after: Image.Image) -> Image.Image:
    """Bicubic enlargement of the input next to the AI output, at the same size, with a zoomed strip below."""
    after = after.convert("RGB")
    bicubic = before.convert("RGB").resize(after.size, Image.Resampling.BICUBIC)
    width, height = after.size
    label_h, gap = 28, 8
    # A 4x-zoomed crop from the centre makes the difference visible at a glance.
    crop_w, crop_h = width // 4, height // 8
    box = ((width - crop_w) // 2, (height - crop_h) // 2, (width + crop_w) // 2, (height + crop_h) // 2)
    zoom = (crop_w * 4, crop_h * 4)
    canvas = Image.new("RGB", (2 * width + gap, label_h + height + gap + zoom[1]), "white")
    draw = ImageDraw.Draw(canvas)
    for column, (image, label) in enumerate(((bicubic, "before: bicubic"), (after, "after: AISuperResolution"))):
        x = column * (width + gap)
        draw.text((x + 6, 8), f"{label} ({width}x{height})", fill="black")
        canvas.paste(image, (x, label_h))
        canvas.paste(image.crop(box).resize(zoom, Image.Resampling.NEAREST), (x, label_h + height + gap))
    return canvas


def _record_line(lines: Iterable[str], key: str) -> dict[str, object]:
    for raw in lines:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("key") == key and "outcome" in line:
            return line
    raise DemoError(f"no log line for {key} in the function's output: {lines[-5:]}")
