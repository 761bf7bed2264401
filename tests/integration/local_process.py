"""`superres local` run as a separate process, the way a user runs it, and an SDK client for it (shared by the
load, crash and trigger-durability tests)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from PIL import Image
from qcloud_cos import CosConfig, CosS3Client

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "photos-1250000000"
REGION = "ap-guangzhou"
SUCCESS = ("processed", "already_done")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def output_log(data_dir: Path, port: int) -> Path:
    """Where `superres_local` writes the process's stdout and stderr."""
    return data_dir.parent / f"superres-local-{port}.log"


@contextmanager
def superres_local(data_dir: Path, *extra: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """`superres local --engine bicubic` in its own process (and its own process group, as a shell runs it, so
    a test can Ctrl-C the group); yields it and its port once it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}  # the demo keys
    log = output_log(data_dir, port).open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "superres", "local", "--engine", "bicubic", "--port", str(port), "--data",
         str(data_dir), *extra], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "superres local exited at start-up"
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "superres local did not answer"
                time.sleep(0.1)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def cos_client(port: int) -> CosS3Client:
    config = CosConfig(Region=REGION, SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY, IP="127.0.0.1", Port=port,
                       Scheme="http", Timeout=30)
    return CosS3Client(config, retry=0)


def thread_clients(port: int) -> Callable[[], CosS3Client]:
    local = threading.local()

    def get() -> CosS3Client:
        if not hasattr(local, "client"):
            local.client = cos_client(port)
        return local.client

    return get


def list_all(cos: CosS3Client, bucket: str, prefix: str = "") -> list[dict]:
    objects, marker = [], ""
    while True:
        page = cos.list_objects(Bucket=bucket, Prefix=prefix, Marker=marker, MaxKeys=1000)
        objects += page.get("Contents", [])
        if page.get("IsTruncated") != "true":
            return objects
        marker = page["NextMarker"]


def png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8 + i % 9, 6 + i % 4), (i % 256, (i * 7) % 256, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def function_lines(data_dir: Path) -> list[dict]:
    """The function's own log lines (logger "superres") in DATA/function-log.jsonl."""
    path = data_dir / "function-log.jsonl"
    if not path.exists():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("logger") == "superres":
            lines.append(line)
    return lines


def wait_for_outcomes(data_dir: Path, keys: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = {line["key"] for line in function_lines(data_dir) if line.get("reason") in SUCCESS}
        if keys <= done:
            return
        assert time.monotonic() < deadline, f"{len(keys - done)} uploads never got a success line"
        time.sleep(0.5)
