"""Tencent's own clients against the whole local stack (stand-in + serverless.yml's function + COS trigger):
cos-python-sdk-v5's high-level helpers, cos-nodejs-sdk-v5 (driven through node) and coscmd. Each upload that
COS would announce is followed through the trigger to the function's log line and, where the function
processes it, to the super-resolved result. The fast bicubic engine stands in for the model (as in
test_trigger_e2e.py); photos are real (scikit-image's sample photos, resized)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as samples

from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions

BUCKET = "photos-1250000000"
DEST = "superres/"


def result_of(key: str) -> str:
    """The key of the result of upload `key` (RESULT_NAMES=append, the default: its PNG's extension appended)."""
    return f"{DEST}{key}.png"


class Stack:
    """The running stack, read through the function's own log lines (each names the event that caused it)."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def client(self):  # type: ignore[no-untyped-def]
        return self.stack.client()

    @property
    def endpoint(self) -> str:
        return self.stack.standin.endpoint_url

    def function_lines(self, key: str) -> list[dict]:
        assert self.stack.trigger is not None
        lines = [json.loads(line) for line in self.stack.trigger.log_lines if line.startswith("{")]
        return [line for line in lines if line.get("logger") == "superres" and line.get("key") == key]

    def function_line(self, key: str, timeout: float = 180) -> dict:
        """The function's log line for `key` (waits for the trigger to deliver and the function to finish)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.stack.trigger is not None
            self.stack.trigger.wait_idle(5)
            found = self.function_lines(key)
            if found:
                return found[-1]
        raise AssertionError(f"no function log line for {key}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    options = StackOptions(data_dir=tmp_path_factory.mktemp("clients"), engine=load_engine("bicubic"),
                           retry_interval_s=0.1)
    with LocalStack(options) as running:
        yield Stack(running)


def photo(width: int, height: int, name: str = "astronaut") -> Image.Image:
    return Image.fromarray(getattr(samples, name)()).convert("RGB").resize((width, height), Image.LANCZOS)


def photo_png(path: Path, width: int, height: int, *, compress_level: int = 6, name: str = "astronaut") -> Path:
    photo(width, height, name).save(path, "PNG", compress_level=compress_level)
    return path


def large_photo_png(path: Path, min_bytes: int) -> Path:
    """A real photo stored uncompressed (PNG level 0) at the pixel count that makes it `min_bytes` or more."""
    side = int(np.ceil(np.sqrt(min_bytes / 3))) + 16
    return photo_png(path, side, side, compress_level=0)


def image_size(body: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(body)) as image:
        return image.size
