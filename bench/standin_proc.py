"""The stand-in as a separate process (`superres local --engine bicubic --no-trigger`), so its CPU and memory
are not counted in the benchmark's own, plus the objects the benchmarks read."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from PIL import Image
from qcloud_cos import CosConfig, CosS3Client

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

from .measure import ROOT, progress

APPID = "1250000000"
REGION = "ap-guangzhou"
BUCKET = f"bench-{APPID}"
_START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_jpeg(width: int = 32, height: int = 24) -> bytes:
    """A small gradient (not flat, so the encoder and the engine have something to do)."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class StandinProcess:
    """`with StandinProcess() as standin:` a running stand-in on a free port, with the bench bucket created."""

    def __init__(self, engine: str = "bicubic") -> None:
        self.engine = engine
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="superres-bench-")
        self.data_dir = Path(self._tmp.name) / "data"
        self._log = Path(self._tmp.name) / "standin.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the stand-in is not started")
        return self._proc.pid

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def function_env(self) -> dict[str, str]:
        """What the function needs to reach this stand-in: the role's keys and the local endpoint."""
        return {"TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEMO_SECRET_KEY,
                "TENCENTCLOUD_REGION": REGION, "COS_ENDPOINT_URL": self.endpoint_url}

    def client(self) -> CosS3Client:
        """An SDK client configured the way the function's gateway configures its own (no SDK retries)."""
        config = CosConfig(Region=REGION, SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY, IP="127.0.0.1",
                           Port=self.port, Scheme="http")
        return CosS3Client(config, retry=0)

    def upload(self, prefix: str, count: int) -> list[tuple[str, int, str]]:
        """`count` tiny JPEGs under `prefix` in the bench bucket: (key, size, etag) each."""
        body = tiny_jpeg()
        client = self.client()
        objects = []
        for i in range(count):
            key = f"{prefix}img-{i:04d}.jpg"
            answer = client.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="image/jpeg")
            objects.append((key, len(body), answer.get("ETag", "")))
        return objects

    def start(self) -> StandinProcess:
        progress(f"starting the stand-in (engine {self.engine}) on {self.endpoint_url}")
        command = [sys.executable, "-m", "superres", "local", "--port", str(self.port), "--data", str(self.data_dir),
                   "--engine", self.engine, "--no-trigger"]
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_until_answering()
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._tmp.cleanup()

    def __enter__(self) -> StandinProcess:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"the stand-in exited at start-up: {self._log.read_text(errors='replace')[-2000:]}")
            try:
                requests.get(self.endpoint_url + "/", timeout=1)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the stand-in did not answer on {self.endpoint_url}") from None
                time.sleep(0.1)
