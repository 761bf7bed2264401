"""detect-url sources that never finish are cut off at the stand-in's total deadline, in its own small pool, so
they cannot hold the threads that object requests use."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from qcloud_cos.cos_exception import CosServiceError

from superres.sr import load_engine
from superres.standin import StandIn, StandinSettings


class _Dripping(BaseHTTPRequestHandler):
    """Sends headers, then one byte now and then, forever (each byte well inside any per-read timeout)."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        try:
            while not self.server.stopping:  # type: ignore[attr-defined]
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dripping_source() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dripping)
    server.stopping = False  # type: ignore[attr-defined]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/slow.png"
    server.stopping = True  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_slow_sources_are_cut_off_and_do_not_starve_object_requests(tmp_path: Path, dripping_source: str) -> None:
    settings = StandinSettings(tmp_path, detect_url_timeout_s=2.0)
    with StandIn(settings, engine=load_engine("bicubic")) as standin:
        bucket = standin.create_bucket("slow")
        client = standin.client()

        def slow_call() -> tuple[int, str]:
            try:
                standin.client().ci_super_resolution_process(Bucket=bucket, Url=dripping_source)
            except CosServiceError as exc:
                return exc.get_status_code(), exc.get_error_code()
            return 200, ""

        with ThreadPoolExecutor(24) as pool:
            slow = [pool.submit(slow_call) for _ in range(24)]
            # While two dozen sources drip, ordinary object requests are still served; the deadline covers the
            # wait for one of the pool's 4 fetch threads too, so every slow call ends by then.
            for i in range(10):
                client.put_object(Bucket=bucket, Key=f"k{i}", Body=b"x")
                assert client.get_object(Bucket=bucket, Key=f"k{i}")["Body"].get_raw_stream().read() == b"x"
            outcomes = [future.result(timeout=120) for future in slow]
    assert set(outcomes) == {(400, "InvalidImageSource")}
