"""The stand-in's storage clock: real time plus a skew (`superres local --clock-skew SECONDS`).

It stamps what COS's own clock stamps: the Last-Modified of every stored object (and so listings, copies, CI
results and conditional requests) and the Date header of every answer. The trigger's events keep real time in
their eventTime, so a skew puts the two clocks apart the way two machines in the cloud can be. Signatures
(q-sign-time) are checked against real time, the clock the client signs with, so a skew never fails a request.
"""

from __future__ import annotations

import math
import time
from email.utils import formatdate

from superres.standin.asgi import ASGIApp, Message, Receive, Scope, Send


class StorageClock:
    def __init__(self, skew_s: float = 0.0) -> None:
        self.skew_s = skew_s

    @property
    def skew_s(self) -> float:
        return self._skew_s

    @skew_s.setter
    def skew_s(self, seconds: float) -> None:
        if not math.isfinite(seconds):
            raise ValueError(f"the clock skew must be a finite number of seconds, got {seconds!r}")
        self._skew_s = float(seconds)

    def now(self) -> float:
        return time.time() + self.skew_s


class DateHeader:
    """ASGI middleware adding `Date` from the storage clock to every answer (the server's own is turned off)."""

    def __init__(self, app: ASGIApp, clock: StorageClock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"date"]
                headers.append((b"Date", formatdate(self.clock.now(), usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, dated_send)
