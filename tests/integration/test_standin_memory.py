"""Request bodies are streamed to disk: a 1 GB PUT (and a 1 GB multipart part upload) keeps the stand-in's peak RSS
under 300 MB. The stand-in runs in its own process so its peak (VmHWM) is its own; the body comes from a
generator, so the test holds no copy either."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
from qcloud_cos import CosConfig, CosS3Client

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

GIB = 1024**3
CHUNK = 1024 * 1024
PEAK_LIMIT = 300 * 1024 * 1024

_SERVER = textwrap.dedent(
    """
    import sys, time
    from superres.standin import StandIn, StandinSettings
    server = StandIn(StandinSettings(sys.argv[1])).start()
    server.store.create_bucket("big-1250000000")
    print(server.port, flush=True)
    sys.stdin.read()
    """
)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


class _GeneratedBody:
    """A file-like body of `size` bytes made on the fly (requests streams it with a Content-Length)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = bytes(range(256)) * (CHUNK // 256)
        self.md5 = hashlib.md5()

    def __len__(self) -> int:
        return self._left

    def read(self, amount: int = -1) -> bytes:
        amount = CHUNK if amount is None or amount < 0 else min(amount, CHUNK)
        chunk = self._block[: min(amount, self._left)]
        self._left -= len(chunk)
        self.md5.update(chunk)
        return chunk


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for the peak RSS")
def test_a_1_gb_put_keeps_peak_rss_under_300_mb(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(tmp_path / "data")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        client = CosS3Client(CosConfig(Region="ap-guangzhou", SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY,
                                       IP="127.0.0.1", Port=port, Scheme="http"))
        host = "big-1250000000.cos.ap-guangzhou.myqcloud.com"
        headers = {"Host": host}
        headers["Authorization"] = client.get_auth(Method="PUT", Bucket="big-1250000000", Key="one.bin",
                                                   Headers={"Host": host})
        body = _GeneratedBody(GIB)
        response = requests.put(f"http://127.0.0.1:{port}/one.bin", data=body, headers=headers, timeout=600)
        assert response.status_code == 200, response.text
        assert response.headers["ETag"] == f'"{body.md5.hexdigest()}"'
        assert int(client.head_object(Bucket="big-1250000000", Key="one.bin")["Content-Length"]) == GIB
        peak = _peak_rss(server.pid)
        assert peak < PEAK_LIMIT, f"stand-in peak RSS {peak / 2**20:.0f} MB for a 1 GB PUT"
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.terminate()
        server.wait(30)
