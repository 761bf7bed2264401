"""Fault injection for the stand-in: a share of requests answered as a misbehaving cloud would.

Kinds (a request that draws a fault gets one of `FaultPlan.kinds`, chosen uniformly):
- "slowdown": 503 with COS error XML, code SlowDown (the request is not processed);
- "internal": 500 with COS error XML, code InternalError (not processed);
- "reset":    the TCP connection is aborted with an RST before any byte of a response (not processed);
- "delay":    the request waits `delay_s` and is then processed normally. With `delay_s` above the client's
              timeout the client gives up first, but the work (a CI write, say) still happens, as with a real
              slow server: a client that retries may therefore cause the same write twice.

Which requests: `targets` picks request classes ("ci" = any Cloud Infinite call: `?image_process`,
`?ci-process`, or a PUT with Pic-Operations; or an HTTP method: "head", "get", "put", "post", "delete"); empty means
every request. `key_prefix` narrows further. Decisions are deterministic for a given `seed`: the n-th request
for one (method, path) draws the same fate in every run, whatever the interleaving of concurrent requests.

`FaultInjector` is the ASGI middleware; its plan can be swapped at run time (`FaultInjector.plan = ...`,
`StandIn.set_faults`), e.g. to turn faults off before a replay. While a plan is set (even one with share 0) it
keeps a log of every request it saw and what became of it, for tests that count server-side calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from superres.standin.errors import CosError

log = logging.getLogger("superres.standin")

KINDS = ("slowdown", "internal", "reset", "delay")
TARGETS = ("ci", "head", "get", "put", "post", "delete")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


@dataclass(frozen=True)
class FaultPlan:
    share: float
    kinds: tuple[str, ...] = KINDS
    # Past the function's default COS_TIMEOUT_S (60 s); tests use a few seconds with a shorter client timeout.
    delay_s: float = 65.0
    seed: int | None = None
    targets: tuple[str, ...] = ()
    key_prefix: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {self.share!r}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or unknown:
            raise ValueError(f"kinds must be a non-empty subset of {', '.join(KINDS)}; got {self.kinds!r}")
        bad_targets = [t for t in self.targets if t not in TARGETS]
        if bad_targets:
            raise ValueError(f"targets must be among {', '.join(TARGETS)}; got {self.targets!r}")
        if not self.delay_s > 0:
            raise ValueError(f"delay_s must be positive, got {self.delay_s!r}")

    @classmethod
    def parse(cls, share: float, kinds: str = "", targets: str = "", **options: Any) -> FaultPlan:
        """From comma lists, as the CLI takes them: `FaultPlan.parse(0.3, "slowdown,reset", "ci,head")`."""
        return cls(share=share, kinds=_split(kinds) or KINDS, targets=_split(targets), **options)

    def applies_to(self, method: str, key: str, is_ci: bool) -> bool:
        if not key.startswith(self.key_prefix):
            return False
        if not self.targets:
            return True
        return (is_ci and "ci" in self.targets) or method.lower() in self.targets


@dataclass(frozen=True)
class RequestRecord:
    """One request as the injector saw it: `fault` is the injected kind (None = none); `status` what the app
    answered (None when no answer was sent: a reset)."""

    method: str
    key: str
    is_ci: bool
    fault: str | None
    status: int | None


class FaultInjector:
    """ASGI middleware in front of the stand-in app. With no plan it passes every request straight through."""

    def __init__(self, app: ASGIApp, plan: FaultPlan | None = None) -> None:
        self.app = app
        self._lock = threading.Condition()
        self._plan: FaultPlan | None = None
        self._seen: Counter[tuple[str, str]] = Counter()
        self._records: deque[RequestRecord] = deque(maxlen=100_000)  # bounded for long `superres local` runs
        self._in_flight = 0
        self.plan = plan

    @property
    def plan(self) -> FaultPlan | None:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan | None) -> None:
        with self._lock:
            self._plan = plan
            self._seen.clear()  # a new plan draws afresh from its own seed
            if plan is not None:
                log.info("standin: fault plan %s", plan)

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear_records(self) -> None:
        with self._lock:
            self._records.clear()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no request is in flight (delayed ones included); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self._plan
        if scope["type"] != "http" or plan is None:
            await self.app(scope, receive, send)
            return
        method, key, is_ci = _describe(scope)
        fault = self._draw(plan, method, scope["path"], key, is_ci)
        statuses: list[int] = []

        async def recording_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))
            await send(message)

        with self._lock:
            self._in_flight += 1
        try:
            if fault in _ERRORS:
                await _error_response(fault, key, recording_send)
            elif fault == "reset":
                await _reset(send)
            else:
                if fault == "delay":
                    # Take the body in first, as a slow server would have: by the time it answers, the client
                    # may be gone, and the request must still be the whole request.
                    receive = await _buffered(receive)
                    await asyncio.sleep(plan.delay_s)
                await self.app(scope, receive, recording_send)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._records.append(RequestRecord(method, key, is_ci, fault, statuses[0] if statuses else None))
                self._lock.notify_all()

    def _draw(self, plan: FaultPlan, method: str, path: str, key: str, is_ci: bool) -> str | None:
        if plan.share <= 0 or not plan.applies_to(method, key, is_ci):
            return None
        with self._lock:
            self._seen[(method, path)] += 1
            nth = self._seen[(method, path)]
        rng = random.Random(f"{plan.seed}:{method}:{path}:{nth}") if plan.seed is not None else random.Random()
        if rng.random() >= plan.share:
            return None
        return rng.choice(plan.kinds)


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned `receive` replays it, then defers to the original."""
    messages: list[MutableMapping[str, Any]] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break

    async def replay() -> MutableMapping[str, Any]:
        return messages.pop(0) if messages else await receive()

    return replay


def _describe(scope: Scope) -> tuple[str, str, bool]:
    method = scope["method"]
    path = scope["path"]
    key = path[1:] if path.startswith("/") else path
    params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    has_pic_operations = any(name.lower() == b"pic-operations" for name, _ in scope.get("headers", ()))
    is_ci = "image_process" in params or "ci-process" in params or has_pic_operations
    return method, key, is_ci


async def _error_response(kind: str, key: str, send: Send) -> None:
    status, code, message = _ERRORS[kind]
    request_id = uuid.uuid4().hex
    body = CosError(status, code, message, key).to_xml(request_id)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/xml"), (b"content-length", str(len(body)).encode()),
        (b"x-cos-request-id", request_id.encode()), (b"Server", b"tencent-cos"),
    ]})
    await send({"type": "http.response.body", "body": body})


async def _reset(send: Send) -> None:
    """Drop the connection without an answer. ASGI has no verb for that; uvicorn's `send` is a bound method of the
    request cycle that holds the asyncio transport, so abort it (SO_LINGER 0 turns the close into an RST). Once the
    loop has run connection_lost, uvicorn treats the client as gone and sends nothing more.

    Elsewhere (another server), fall back to a truncated answer: headers promising a body, then an exception, which
    ASGI servers answer by closing the connection; clients see a broken response, not a status."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise ConnectionResetError("fault injection: connection reset")


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())
