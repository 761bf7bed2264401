"""The fault-injection middleware in front of the stand-in app: a random FaultPlan and targeted InjectRules.

Its plan and rules can be changed while serving (`StandIn.set_faults`, `StandIn.set_injections`). While a plan is
set (even one with share 0) it keeps `records` of every request it saw and what became of it (the older interface;
the request log, request_log.py, records every request always)."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from superres.standin.asgi import (
    INJECTED,
    UNSENT,
    ASGIApp,
    Message,
    Receive,
    RequestView,
    Scope,
    Send,
    read_body,
    replaying,
    view_of,
)
from superres.standin.faults.answers import error_response, reset
from superres.standin.faults.plan import ERRORS, FaultPlan
from superres.standin.faults.rules import HOLD_LIMIT_S
from superres.standin.faults.ruleset import Injection, RuleSet

log = logging.getLogger("superres.standin")
_POLL_S = 0.1


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
    """ASGI middleware. With no plan and no rule it passes every request straight through."""

    def __init__(self, app: ASGIApp, plan: FaultPlan | None = None, rules: RuleSet | None = None) -> None:
        self.app = app
        self.rules = rules or RuleSet()
        self._lock = threading.Condition()
        self._plan: FaultPlan | None = None
        self._seen: Counter[tuple[str, str]] = Counter()
        self._records: deque[RequestRecord] = deque(maxlen=100_000)  # bounded for long `superres local` runs
        self._in_flight = 0
        self._closing = False
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
        """Wait until no request is in flight (delayed and late ones included); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    def closing(self, value: bool) -> None:
        """While closing, held late CI calls are let go unprocessed (the server is stopping, as in a crash)."""
        self._closing = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        view = view_of(scope)
        plan = self._plan
        injection = self.rules.decide(view)
        fault = self._draw(plan, view) if plan is not None else None
        if injection is not None:
            scope[INJECTED] = injection.text
        elif fault is not None:
            scope[INJECTED] = f"fault plan: {fault}"
        statuses: list[int] = []

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(message["status"]))
            await send(message)

        with self._lock:
            self._in_flight += 1
        try:
            await self._serve(scope, receive, recording_send, view, plan, fault, injection)
        finally:
            with self._lock:
                self._in_flight -= 1
                if plan is not None:
                    unsent = scope.get(UNSENT)
                    status = statuses[0] if statuses else (int(unsent["status"]) if unsent else None)
                    self._records.append(RequestRecord(view.method, view.key, view.ci, fault, status))
                self._lock.notify_all()

    async def _serve(self, scope: Scope, receive: Receive, send: Send, view: RequestView, plan: FaultPlan | None,
                     fault: str | None, injection: Injection | None) -> None:
        delay = (injection.latency_s if injection else 0.0) + (plan.delay_s if plan and fault == "delay" else 0.0)
        if delay > 0:
            # Take the body in first, as a slow server would have: by the time it answers, the client may be gone,
            # and the request must still be the whole request.
            receive = replaying(await read_body(receive), receive)
            await asyncio.sleep(delay)
        resource = f"{view.bucket}/{view.key}"
        if injection is not None and injection.error is not None:
            await error_response(*injection.error, resource, send, why=injection.text)
        elif fault in ERRORS:
            await error_response(*ERRORS[fault], resource, send)
        elif fault == "reset":
            await reset(scope, send)
        elif injection is not None and injection.late_s is not None:
            await self._answer_late(scope, receive, send, injection.late_s)
        else:
            await self.app(scope, receive, send)

    async def _answer_late(self, scope: Scope, receive: Receive, send: Send, late_s: float) -> None:
        """Hold the connection until the client gives up (or HOLD_LIMIT_S, then reset it), then `late_s` later
        process the request with its answer going nowhere (kept in the scope for the request log)."""
        body = await read_body(receive)
        if body[-1]["type"] != "http.request":
            return  # the client left before the request was whole: nothing to process
        loop = asyncio.get_running_loop()
        gone = asyncio.ensure_future(receive())  # the body is read: the next message is the disconnect
        deadline = loop.time() + HOLD_LIMIT_S
        try:
            while not gone.done():
                if self._closing or loop.time() >= deadline:
                    await reset(scope, send)  # never an answer, not even the server's 500 for a silent app
                    if self._closing:
                        return
                    break
                await asyncio.wait({gone}, timeout=_POLL_S)
        finally:
            gone.cancel()
        wake = loop.time() + late_s
        while (left := wake - loop.time()) > 0:
            if self._closing:
                return
            await asyncio.sleep(min(_POLL_S, left))

        async def unsent(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope[UNSENT] = message

        await self.app(scope, replaying(body, receive), unsent)

    def _draw(self, plan: FaultPlan, view: RequestView) -> str | None:
        if plan.share <= 0 or not plan.applies_to(view.method, view.key, view.ci):
            return None
        with self._lock:
            self._seen[(view.method, view.path)] += 1
            nth = self._seen[(view.method, view.path)]
        seeded = plan.seed is not None
        rng = random.Random(f"{plan.seed}:{view.method}:{view.path}:{nth}") if seeded else random.Random()
        if rng.random() >= plan.share:
            return None
        return rng.choice(plan.kinds)
