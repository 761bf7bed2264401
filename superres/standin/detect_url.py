"""`detect-url` sources: one parser decides what is fetched, and the fetch connects to exactly what it decided.

The URL is parsed once (urllib's urlsplit); the allow-list check and the connection both use that result, so a
URL two parsers read differently (`http://169.254.169.254\\@127.0.0.1/`) cannot pass the check for one host and
reach another. Credentials and backslashes are refused outright. The fetch runs in its own small thread pool
under one total deadline (connect, headers and body together), so slow sources cannot hold object requests'
threads, and a source still dripping at the deadline has its socket shut.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread

from superres.standin.errors import CosError, invalid_argument

_CHUNK = 64 * 1024
FETCH_THREADS = 4


@dataclass(frozen=True)
class SourceUrl:
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent on the request line


def parse_source_url(raw: str, allowed_hosts: tuple[str, ...]) -> SourceUrl:
    url = raw if "://" in raw else unquote(raw)  # tolerate a client that encoded it twice
    if "\\" in url or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise invalid_argument("detect-url must not contain backslashes, spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise invalid_argument(f"detect-url must be http or https, got {parts.scheme or 'no'} scheme")
    if "@" in parts.netloc:
        raise invalid_argument("detect-url must not carry credentials (user@host)")
    host = (parts.hostname or "").lower()
    if host not in allowed_hosts:
        raise invalid_argument(
            f"detect-url host {host!r} is not allowed; the stand-in fetches only from {', '.join(allowed_hosts)}"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise invalid_argument("detect-url has an invalid port") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return SourceUrl(parts.scheme, host, port, target)


class SourceFetcher:
    """GETs allow-listed sources, capped in bytes and in total time, in its own pool of `FETCH_THREADS`."""

    def __init__(self, max_bytes: int, timeout_s: float) -> None:
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._limiter: anyio.CapacityLimiter | None = None

    async def fetch(self, source: SourceUrl) -> bytes:
        if self._limiter is None:  # created on first use so it belongs to the serving event loop
            self._limiter = anyio.CapacityLimiter(FETCH_THREADS)
        deadline = time.monotonic() + self._timeout_s
        sockets: list[socket.socket] = []
        try:
            with anyio.fail_after(self._timeout_s):
                return await anyio.to_thread.run_sync(
                    self._fetch, source, deadline, sockets, limiter=self._limiter, abandon_on_cancel=True
                )
        except TimeoutError:
            for sock in sockets:  # wakes the worker thread blocked in recv
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            raise self._too_slow() from None

    def _too_slow(self) -> CosError:
        return CosError(400, "InvalidImageSource", f"detect-url took longer than {self._timeout_s:g} s")

    def _fetch(self, source: SourceUrl, deadline: float, sockets: list[socket.socket]) -> bytes:
        def remaining() -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._too_slow()
            return left

        cls = http.client.HTTPSConnection if source.scheme == "https" else http.client.HTTPConnection
        conn = cls(source.host, source.port, timeout=remaining())
        try:
            conn.connect()
            sock = conn.sock
            sockets.append(sock)
            conn.request("GET", source.target, headers={"Accept": "image/*"})
            sock.settimeout(remaining())
            resp = conn.getresponse()
            if resp.status != 200:
                raise CosError(400, "InvalidImageSource", f"detect-url answered HTTP {resp.status}")
            declared = resp.getheader("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
                raise CosError(400, "ImageTooLarge", f"detect-url body exceeds {self._max_bytes} bytes")
            chunks, total = [], 0
            while True:
                sock.settimeout(remaining())
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > self._max_bytes:
                    raise CosError(400, "ImageTooLarge", f"detect-url body exceeds {self._max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() >= deadline:
                raise self._too_slow() from None
            raise CosError(400, "InvalidImageSource", f"cannot fetch detect-url: {type(exc).__name__}") from None
        finally:
            conn.close()
