"""Run the demo: start the stand-in with serverless.yml's function and trigger, upload a photo, wait for the
function, fetch every output, and write the files of OUT (the results, the upload, the picture, the page, the log)."""

from __future__ import annotations

import io
import json
import mimetypes
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError
from superres_fn import Settings, load_settings

from ..photos import photo_bytes
from ..scf.serverless import CosTrigger, FunctionSpec, load_function_spec
from ..stack import LocalStack, StackOptions
from .page import write_page
from .picture import side_by_side

DEMO_PHOTO = "astronaut.jpg"
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}


class DemoError(RuntimeError):
    """The demo could not finish; the message (one or two lines) says what happened and where to look."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: serverless.yml (and its .env) with the command line's overrides, validated as the
    function's cold start validates them."""

    serverless: Path
    spec: FunctionSpec
    trigger: CosTrigger
    function_env: dict[str, str]  # the overrides handed to the function (MAGNIFY, OUTPUTS)
    settings: Settings

    @property
    def describe(self) -> str:
        """`OUTPUTS x2/:2,...` or `MAGNIFY 2`, and where the value comes from."""
        env = {**self.spec.environment, **self.function_env}
        name = "OUTPUTS" if env.get("OUTPUTS", "").strip() else "MAGNIFY"
        source = f"--{name.lower()}" if name in self.function_env else "serverless.yml and .env"
        return f"{name} {env.get(name, '').strip()} from {source}"


def demo_config(serverless: Path, *, magnify: int | None = None, outputs: str | None = None) -> DemoConfig:
    """Read serverless.yml and .env; `magnify`/`outputs` override MAGNIFY/OUTPUTS. Raises ServerlessConfigError
    or the function's ConfigError (its one line names the variable and the allowed values), or DemoError."""
    spec = load_function_spec(serverless)
    if not spec.triggers:
        raise DemoError(f"{serverless} has no COS trigger: the demo uploads to the trigger's bucket")
    function_env = {**({"MAGNIFY": str(magnify)} if magnify is not None else {}),
                    **({"OUTPUTS": outputs} if outputs else {})}
    settings = load_settings({**spec.environment, **function_env})
    return DemoConfig(serverless, spec, spec.triggers[0], function_env, settings)


@dataclass(frozen=True)
class DemoOutput:
    bucket: str
    key: str
    magnify: int | None
    status: str
    path: Path  # its copy in OUT, named for the format it holds
    size: tuple[int, int]
    format: str


@dataclass(frozen=True)
class DemoResult:
    source_key: str
    input_path: Path
    input_size: tuple[int, int]
    input_format: str
    log_line: dict[str, object]
    outputs: tuple[DemoOutput, ...]  # the first is the one the log line's `result` and the picture show
    comparison: Path
    page: Path
    log: Path


def run_demo(out_dir: Path, config: DemoConfig, *, engine: object | None = None, timeout_s: float = 600.0,
             key: str | None = None, upload: Path | None = None, port: int = 0) -> DemoResult:
    """Upload `upload` (default: scikit-image's astronaut photo) as `key` (default: the trigger prefix + its name).
    Writes the outputs (ai-<name>, ai-1-<name>, ... with the extension of the format each holds), the upload
    (input-<name>), before-after.png, index.html and function-log.jsonl into `out_dir`, and nothing else: the
    stand-in's data lives in a temporary folder removed afterwards."""
    trigger = config.trigger
    key = key or trigger.prefix + (upload.name if upload is not None else DEMO_PHOTO)
    if not key.startswith(trigger.prefix):
        raise DemoError(f"{key!r} is outside the trigger prefix {trigger.prefix!r} (SOURCE_PREFIX in .env)")
    if upload is not None:
        body, content_type = upload.read_bytes(), mimetypes.guess_type(upload.name)[0] or "application/octet-stream"
    else:
        body, content_type = photo_bytes(key)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_copy = out_dir / "function-log.jsonl"
    with tempfile.TemporaryDirectory(prefix="superres-demo-") as tmp:
        data_dir = Path(tmp)
        options = StackOptions(data_dir=data_dir, port=port, engine=engine, function_env=config.function_env,
                               serverless=config.serverless)
        try:
            line, fetched = _upload_and_wait(LocalStack(options), config, key, body, content_type, timeout_s,
                                             log_copy)
        finally:
            if (data_dir / "function-log.jsonl").is_file():
                shutil.copyfile(data_dir / "function-log.jsonl", log_copy)
    name = PurePosixPath(key).name
    input_path = out_dir / f"input-{name}"
    input_path.write_bytes(body)
    outputs = tuple(_save_output(out_dir, index, name, entry, data) for index, (entry, data) in enumerate(fetched))
    with Image.open(io.BytesIO(body)) as before, Image.open(outputs[0].path) as after:
        comparison = out_dir / "before-after.png"
        side_by_side(before, after).image.save(comparison)
        result = DemoResult(key, input_path, before.size, str(before.format), line, outputs, comparison,
                            out_dir / "index.html", log_copy)
    write_page(result)
    return result


Fetched = list[tuple[dict[str, object], bytes]]  # each output's log entry and its bytes


def _upload_and_wait(stack: LocalStack, config: DemoConfig, key: str, body: bytes, content_type: str,
                     timeout_s: float, log_copy: Path) -> tuple[dict[str, object], Fetched]:
    """Upload to the trigger's bucket and wait for the function: its log line and each output's entry and bytes."""
    trigger = config.trigger
    with stack:
        # The buckets the function writes to exist, as they would in a deployment (README: OUTPUTS' @BUCKET).
        for output in config.settings.outputs:
            if output.bucket and not stack.standin.store.bucket_exists(output.bucket):
                stack.standin.store.create_bucket(output.bucket, trigger.region)
        client = stack.client()
        client.put_object(Bucket=trigger.bucket, Key=key, Body=body, ContentType=content_type)
        assert stack.trigger is not None
        if not stack.trigger.wait_idle(timeout_s):
            raise DemoError(f"the function did not finish within {timeout_s:.0f} s; see {log_copy}")
        line = _record_line(stack.trigger.log_lines, key, log_copy)
        if line.get("outcome") != "processed":
            raise DemoError(_not_processed(key, line, log_copy))
        entries = line.get("outputs") if isinstance(line.get("outputs"), list) else [line]
        fetched = [(entry, client.get_object(Bucket=str(entry["dest_bucket"]), Key=str(entry["dest_key"]))
                    ["Body"].get_raw_stream().read()) for entry in entries]
    return line, fetched


def _not_processed(key: str, line: Mapping[str, object], log_copy: Path) -> str:
    """`the function skipped KEY (reason: detail)` or `... failed on KEY: CODE: message`, and where the log is."""
    error = line.get("error") if isinstance(line.get("error"), dict) else {}
    if line.get("outcome") == "failed":
        what = f"the function failed on {key}: {error.get('code') or line.get('reason')}: {error.get('message', '')}"
    else:
        detail = f": {line['detail']}" if line.get("detail") else ""
        what = f"the function {line.get('outcome')} {key} ({line.get('reason')}{detail})"
    return f"{what.rstrip(': ')}\nits log line is in {log_copy}"


def _save_output(out_dir: Path, index: int, name: str, entry: Mapping[str, object], data: bytes) -> DemoOutput:
    """OUT/ai-<stem>.<ext> for the first output, ai-<n>-<stem>.<ext> for the others, named for what they hold."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            size, fmt = image.size, str(image.format)
    except UnidentifiedImageError:
        raise DemoError(f"{entry['dest_key']} is not an image CI would have written ({len(data)} bytes)") from None
    stem = PurePosixPath(name).stem
    path = out_dir / f"ai-{f'{index}-' if index else ''}{stem}{_EXTENSIONS.get(fmt, PurePosixPath(name).suffix)}"
    path.write_bytes(data)
    magnify = entry.get("magnify")
    return DemoOutput(str(entry["dest_bucket"]), str(entry["dest_key"]), int(magnify) if magnify else None,
                      str(entry.get("status") or entry.get("outcome")), path, size, fmt)


def _record_line(lines: Iterable[str], key: str, log_copy: Path) -> dict[str, object]:
    for raw in lines:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("key") == key and "outcome" in line:
            return line
    raise DemoError(f"the function wrote no log line for {key}; see {log_copy}")
