"""One invocation: event -> records -> a RecordRun each -> one log line each -> a report.

`process_event` never raises: it returns a Report, which backfill and replay read. `handle_event` is the thin
wrapper SCF needs: it raises RecordsFailedError when a record failed in a way a later delivery may fix, so that SCF
retries the event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .config import Settings
from .errors import EventError, RecordsFailedError, SuperresError
from .events import RecordSlot, iter_records
from .gateway import Gateway
from .log import Emit, emit_stdout
from .record import RecordRun
from .retry import DEFAULT_POLICY, RetryPolicy

# Used when the context carries no time limit (a local call without one).
_DEFAULT_TIME_LIMIT_MS = 60_000
# Added to a claim's time to live: Last-Modified and Date are whole seconds, and the holder needs a moment to start.
_CLAIM_SLACK_S = 2.0


class Invocation(NamedTuple):
    """What an invocation needs besides the event; tests hand in fakes for the clock and the gateway."""

    settings: Settings
    gateway: Gateway
    emit: Emit = emit_stdout
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    policy: RetryPolicy = DEFAULT_POLICY
    wall: Callable[[], float] = time.time  # only where COS sends no Date (claims.is_live)


class Report(NamedTuple):
    """What an invocation did: one log line per record, and the keys of records a later delivery may fix."""

    request_id: str
    lines: list[dict[str, object]]
    retry: list[str]
    error: dict[str, object] | None = None  # the whole event was not a COS event

    def summary(self) -> dict[str, object]:
        counts = {"processed": 0, "skipped": 0, "failed": 0}
        for line in self.lines:
            counts[_COUNTERS[str(line["outcome"])]] += 1
        summary: dict[str, object] = {"request_id": self.request_id, **counts, "records": [
            {k: line.get(k) for k in ("index", "key", "outcome", "reason", "dest_key")} for line in self.lines]}
        if self.error is not None:
            summary["error"] = self.error
        return summary


_COUNTERS = {"processed": "processed", "skipped": "skipped", "failed": "failed", "invalid": "failed"}


def handle_event(event: object, context: object, invocation: Invocation) -> dict[str, object]:
    """SCF's convention: the summary, or RecordsFailedError (SCF retries the event) if a record may yet succeed."""
    report = process_event(event, context, invocation)
    if report.retry:
        raise RecordsFailedError(
            f"{len(report.retry)} of {len(report.lines)} records failed transiently; SCF will retry the event: "
            + ", ".join(repr(k[:200]) for k in report.retry[:20])
        )
    return report.summary()


def process_event(event: object, context: object, invocation: Invocation) -> Report:
    """Process every record, writing one log line each; never raises."""
    started = invocation.clock()
    ctx = context if isinstance(context, Mapping) else {}
    request_id = str(ctx.get("request_id") or "")
    budget_s = _time_budget_s(ctx)
    deadline = started + budget_s
    # A claim outlives its holder's budget by the time a CI call may still land after its client gave up.
    claim_ttl_s = budget_s + invocation.settings.ci_landing_bound_s + _CLAIM_SLACK_S
    try:
        slots = list(iter_records(event, default_region=invocation.settings.region))
    except EventError as exc:
        invocation.emit({**_base(request_id), "outcome": "invalid", "reason": "invalid_event", "error": exc.as_log(),
                         "level": "ERROR"})
        return Report(request_id, [], [], exc.as_log())

    seen: set[tuple[str, str, str | None, int]] = set()
    lines: list[dict[str, object]] = []
    retry: list[str] = []
    for slot in slots:
        line = _run_slot(slot, seen, request_id, deadline, claim_ttl_s, invocation)
        lines.append(line)
        if line.get("retry"):
            retry.append(str(line.get("key")))
    return Report(request_id, lines, retry)


def _run_slot(
    slot: RecordSlot, seen: set[tuple[str, str, str | None, int]], request_id: str, deadline: float,
    claim_ttl_s: float, invocation: Invocation,
) -> dict[str, object]:
    started = invocation.clock()
    line: dict[str, object] = {**_base(request_id), "index": slot.index}
    if slot.record is None:
        assert slot.error is not None
        line.update(key=slot.hint_key, outcome="invalid", reason="invalid_record", error=slot.error.as_log())
        return _finish(line, started, invocation)

    record = slot.record
    line.update(event_name=record.event_name, bucket=record.bucket, region=record.region, key=record.key,
                size=record.size, magnify=invocation.settings.magnify)
    if record.warning:
        line["warning"] = record.warning
    run = None
    try:
        run = RecordRun(record, invocation, deadline, claim_ttl_s, line)
        duplicate = record.identity in seen
        seen.add(record.identity)
        line.update(run.run(duplicate=duplicate))
    except SuperresError as exc:
        line.update(outcome="failed", reason=exc.code, error=exc.as_log(), retry=exc.retryable)
    except Exception as exc:  # noqa: BLE001 - a bug must not cost the other records; SCF retries the event
        import traceback  # only on this path: it costs at cold start

        line.update(outcome="failed", reason="InternalError", retry=True, error={
            "code": "InternalError", "message": f"{type(exc).__name__}: {exc}"[:500], "retryable": True,
            "traceback": traceback.format_exc(limit=8)[-2000:]})
    line["attempts"] = run.attempts.count if run is not None else 0
    return _finish(line, started, invocation)


def _finish(line: dict[str, object], started: float, invocation: Invocation) -> dict[str, object]:
    line["duration_ms"] = round((invocation.clock() - started) * 1000, 1)
    if line.get("outcome") in ("failed", "invalid"):
        line["level"] = "ERROR"
    invocation.emit(line)
    return line


def _base(request_id: str) -> dict[str, object]:
    return {"level": "INFO", "logger": "superres", "request_id": request_id}


def _time_budget_s(ctx: Mapping[str, object]) -> float:
    """Seconds this invocation may spend, keeping a margin so we log and return before SCF kills us."""
    raw = ctx.get("time_limit_in_ms")
    valid = isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0
    limit_ms = float(raw) if valid else _DEFAULT_TIME_LIMIT_MS  # type: ignore[arg-type]
    margin_ms = min(1000.0, limit_ms * 0.1)
    return (limit_ms - margin_ms) / 1000.0
