"""The request log: one record per request the stand-in served, kept in memory and optionally appended to a file
as JSON lines (`superres local --request-log FILE`), for anyone counting what a client really asked for.

A line (README, "Scripting the stand-in"):

    {"time": 1765000000.123, "method": "POST", "bucket": "photos-1250000000", "key": "uploads/a.jpg",
     "subresources": ["image_process"], "ci": true, "status": 200, "duration_ms": 812.4,
     "request_id": "NjU...", "injected": null}

`time` is when the request arrived (real time, never skewed); `duration_ms` runs to the answer's status line. A
record is written as the answer starts (before the client can have it), so a client that got its answer finds its
request in the log. `status` is null when no answer was sent (a reset); for a late CI call (`--inject
op=ci,late=N`) it is what the call would have answered, written once its work is done. `injected` names the
injection rule(s) the request drew. No header is recorded: never an Authorization or a credential.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from superres.standin.asgi import INJECTED, RAW_SEND, UNSENT, ASGIApp, Message, Receive, Scope, Send, view_of

log = logging.getLogger("superres.standin")

MAX_RECORDS = 100_000


@dataclass(frozen=True, slots=True)
class ServedRequest:
    time: float
    method: str
    bucket: str
    key: str
    subresources: tuple[str, ...]
    ci: bool
    status: int | None
    duration_ms: float
    request_id: str | None
    injected: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time, "method": self.method, "bucket": self.bucket, "key": self.key,
            "subresources": list(self.subresources), "ci": self.ci, "status": self.status,
            "duration_ms": self.duration_ms, "request_id": self.request_id, "injected": self.injected,
        }


class RequestLog:
    """ASGI middleware, outermost: records every HTTP request once it is done. Thread-safe readers."""

    def __init__(self, app: ASGIApp, path: Path | None = None, max_records: int = MAX_RECORDS) -> None:
        self.app = app
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._records: deque[ServedRequest] = deque(maxlen=max_records)
        self._file: IO[str] | None = None
        self._idle = threading.Condition()
        self._in_flight = 0

    def open(self) -> None:
        """Open the file (append) if one is configured; raises OSError if it cannot be written."""
        if self.path is not None and self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            records = list(self._records)
        return [record.as_dict() for record in records]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def count(self, method: str | None = None, ci: bool | None = None, key_prefix: str | None = None,
              status: int | None = None) -> int:
        with self._lock:
            records = list(self._records)
        method = method.upper() if method else None
        return sum(
            1 for r in records
            if (method is None or r.method == method) and (ci is None or r.ci == ci)
            and (key_prefix is None or r.key.startswith(key_prefix)) and (status is None or r.status == status)
        )

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no request is in flight (delayed and late ones included, their records written); False if
        `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived, started = time.time(), time.perf_counter()
        scope.setdefault(RAW_SEND, send)
        recorded = False

        def record(start: Message | None) -> None:
            nonlocal recorded
            recorded = True
            view = view_of(scope)
            self._add(ServedRequest(
                time=round(arrived, 6), method=view.method, bucket=view.bucket, key=view.key,
                subresources=view.subresources, ci=view.ci, status=int(start["status"]) if start else None,
                duration_ms=round((time.perf_counter() - started) * 1000, 1), request_id=_request_id(start),
                injected=scope.get(INJECTED),
            ))

        async def noting_send(message: Message) -> None:
            # Recorded before the client can have the answer: whoever reads the log after a response sees it.
            if message["type"] == "http.response.start" and not recorded:
                record(message)
            await send(message)

        with self._idle:
            self._in_flight += 1
        try:
            await self.app(scope, receive, noting_send)
        finally:
            if not recorded:  # no answer sent: a reset, a late CI call (what it would have answered), an error
                record(scope.get(UNSENT))
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _add(self, record: ServedRequest) -> None:
        with self._lock:
            self._records.append(record)
            if self._file is None:
                return
            try:
                self._file.write(json.dumps(record.as_dict(), ensure_ascii=False) + "\n")
                self._file.flush()
            except (OSError, ValueError) as exc:
                log.error("standin: cannot write the request log %s (%s); it is no longer written", self.path, exc)
                self._file = None


def _request_id(start: Message | None) -> str | None:
    if start is None:
        return None
    for name, value in start.get("headers", ()):
        if name.lower() == b"x-cos-request-id":
            return bytes(value).decode("latin-1")
    return None
