"""One invocation: event -> records -> decision -> CI call -> parsed results -> one log line each."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

from .config import Settings
from .errors import CosCallError, EventError, RecordsFailedError, SuperresError, WorkInProgressError
from .events import CosRecord, RecordSlot, iter_records
from .gateway import Gateway, ObjectState
from .log import Emit, emit_stdout
from .plan import Decision, claim_key, decide, is_fresh, pic_operations
from .results import parse_upload_result
from .retry import DEFAULT_POLICY, Attempts, RetryPolicy, call_with_retry

T = TypeVar("T")

# Used when the context carries no time limit (a local call without one).
_DEFAULT_TIME_LIMIT_MS = 60_000
# After an ambiguous CI failure, the destination is watched at least this long before CI is called again.
_MIN_WATCH_S = 2.0
# Added to a claim's expiry: COS's clock, ours and the holder's may differ by a few seconds.
_CLAIM_SLACK_S = 5.0
# A duplicate waiting for a claim gives up (WorkInProgress) when less than this is left of its invocation.
_CLAIM_WAIT_RESERVE_S = 5.0


class Invocation(NamedTuple):
    """What an invocation needs besides the event; tests hand in fakes for the clock and the gateway."""

    settings: Settings
    gateway: Gateway
    emit: Emit = emit_stdout
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    policy: RetryPolicy = DEFAULT_POLICY
    wall: Callable[[], float] = time.time  # Unix time, to age claims against COS's Last-Modified


def handle_event(event: object, context: object, invocation: Invocation) -> dict[str, object]:
    """Process every record; raise RecordsFailedError at the end if any failed in a way worth retrying."""
    started = invocation.clock()
    ctx = context if isinstance(context, Mapping) else {}
    request_id = str(ctx.get("request_id") or "")
    budget_s = _time_budget_s(ctx)
    deadline = started + budget_s
    # A claim older than one whole invocation (plus slack for clocks) belongs to an invocation that died.
    claim_ttl_s = budget_s + _CLAIM_SLACK_S
    summary: dict[str, object] = {"request_id": request_id, "processed": 0, "skipped": 0, "failed": 0, "records": []}

    try:
        slots = list(iter_records(event, default_region=invocation.settings.region))
    except EventError as exc:
        invocation.emit({**_base(request_id), "outcome": "invalid", "reason": "invalid_event", "error": exc.as_log(),
                         "level": "ERROR"})
        summary["error"] = exc.as_log()
        return summary

    seen: set[tuple[str, str, str | None, int]] = set()
    retry_later: list[str] = []
    for slot in slots:
        outcome = _handle_slot(slot, seen, request_id, deadline, claim_ttl_s, invocation)
        summary[_COUNTERS[outcome["outcome"]]] += 1  # type: ignore[operator]
        summary["records"].append(  # type: ignore[union-attr]
            {k: outcome.get(k) for k in ("index", "key", "outcome", "reason", "dest_key")}
        )
        if outcome.get("retry"):
            retry_later.append(str(outcome.get("key")))
    if retry_later:
        raise RecordsFailedError(
            f"{len(retry_later)} of {len(slots)} records failed transiently; SCF will retry the event: "
            + ", ".join(repr(k[:200]) for k in retry_later[:20])
        )
    return summary


_COUNTERS = {"processed": "processed", "skipped": "skipped", "failed": "failed", "invalid": "failed"}


def _handle_slot(
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
    line.update(_record_fields(record, invocation.settings.magnify))
    if record.warning:
        line["warning"] = record.warning
    attempts = Attempts()  # CI calls made for this record (each one may be billed)
    claims = invocation.settings.claim_work
    try:
        decision = decide(
            record,
            invocation.settings,
            # With claims, the destination is looked at once the claim is held (see _claimed).
            exists=None if claims else (
                lambda bucket, key: _result_state(record, bucket, key, deadline, invocation) is not None),
            duplicate=record.identity in seen,
        )
        seen.add(record.identity)
        line.update(dest_bucket=decision.dest_bucket, dest_key=decision.dest_key)
        if not decision.should_process:
            line.update(outcome="skipped", reason=decision.reason, detail=decision.detail)
        elif claims:
            line.update(_claimed(record, decision, deadline, claim_ttl_s, attempts, invocation, line))
        else:
            line.update(_super_resolve(record, decision, deadline, attempts, invocation))
    except SuperresError as exc:
        line.update(outcome="failed", reason=exc.code, error=exc.as_log(), retry=exc.retryable)
    except Exception as exc:  # noqa: BLE001 - a bug must not cost the other records; SCF retries the event
        line.update(outcome="failed", reason="InternalError", error={"code": "InternalError",
                    "message": f"{type(exc).__name__}: {exc}"[:500], "retryable": True}, retry=True)
    line["attempts"] = attempts.count
    return _finish(line, started, invocation)


def _result_state(
    record: CosRecord, bucket: str, key: str, deadline: float, invocation: Invocation
) -> ObjectState | None:
    """The destination's state if it holds a result at least as new as this upload (the freshness rule), else None."""
    state = _retrying(lambda: invocation.gateway.head(bucket, key, record.region, _left(deadline, invocation)),
                      deadline, Attempts(), invocation)
    return state if state is not None and is_fresh(state.last_modified, record.event_time) else None


def _claimed(
    record: CosRecord, decision: Decision, deadline: float, claim_ttl_s: float, attempts: Attempts,
    invocation: Invocation, line: dict[str, object],
) -> dict[str, object]:
    """Hold a claim on the work while calling CI, so that a concurrent duplicate delivery does not call it too.

    The claim is an object written with x-cos-forbid-overwrite: true, whose x-cos-meta-expires says when its holder's
    invocation ends; whoever writes it first does the work. Another invocation finding it waits (HEADing it now and
    then) until it is released, then finds the result done; or until it has expired (its holder died: a timeout, a
    crash), then takes it over. Only when its own time runs out first does it fail with WorkInProgress (retryable),
    leaving the event to SCF's retry.
    """
    gateway, bucket, key = invocation.gateway, decision.dest_bucket, claim_key(decision, invocation.settings)
    body = f'{{"source":"{record.bucket}/{record.key}","request_id":"{line.get("request_id")}"}}'.encode(
        "utf-8", "backslashreplace")

    def take() -> bool:
        expires = int(invocation.wall() + max(deadline - invocation.clock(), 0.0) + _CLAIM_SLACK_S)

        def put() -> bool:
            return gateway.create_if_absent(bucket, key, record.region, body, expires, _left(deadline, invocation))

        return _retrying(put, deadline, Attempts(), invocation)

    pause = 0.5
    while not take():
        claim = _retrying(lambda: gateway.head(bucket, key, record.region, _left(deadline, invocation)),
                          deadline, Attempts(), invocation)
        if claim is not None and _expired(claim, claim_ttl_s, invocation.wall()):
            _retrying(lambda: gateway.delete(bucket, key, record.region, _left(deadline, invocation)),
                      deadline, Attempts(), invocation)
            line["warning"] = f"took over the expired claim {key!r} of an invocation that did not finish"
            continue
        if claim is not None:
            # The holder may have stored the result and died before releasing its claim.
            if invocation.settings.skip_existing and _result_state(
                    record, decision.dest_bucket, decision.dest_key, deadline, invocation) is not None:
                return {"outcome": "skipped", "reason": "already_done",
                        "detail": "another invocation, holding the claim, stored the result"}
            if invocation.clock() + pause + _CLAIM_WAIT_RESERVE_S > deadline:
                raise WorkInProgressError(f"another invocation is processing this upload (claim {key!r}); SCF's "
                                          "retry will find its result")
            invocation.sleep(pause)
            pause = min(pause * 2, 2.0)
    try:
        # Looked at under the claim: a result stored by an earlier (or a concurrent, now finished) delivery is seen.
        if invocation.settings.skip_existing and _result_state(
                record, decision.dest_bucket, decision.dest_key, deadline, invocation) is not None:
            return {"outcome": "skipped", "reason": "already_done",
                    "detail": "the destination holds a result at least as new as this upload (SKIP_EXISTING)"}
        return _super_resolve(record, decision, deadline, attempts, invocation)
    finally:
        try:
            gateway.delete(bucket, key, record.region, max(_left(deadline, invocation), 1.0))
        except SuperresError as exc:
            # Not fatal: the claim expires. Say so in the record's line.
            line["warning"] = f"claim {key!r} not released ({exc.code}); it expires when this invocation would end"


def _expired(claim: ObjectState, ttl_s: float, now: float) -> bool:
    """Past the expiry its holder wrote; a claim without one (written by other code) lives `ttl_s` from its write."""
    if claim.expires is not None:
        return now > claim.expires
    return claim.last_modified is not None and now - claim.last_modified > ttl_s


def _super_resolve(
    record: CosRecord, decision: Decision, deadline: float, attempts: Attempts, invocation: Invocation
) -> dict[str, object]:
    """Call CI until it answers or fails for good. After a failure that leaves it unknown whether CI did the work
    (timeout, reset after sending, 5xx, unreadable 2xx), the destination is watched before any new call: CI may still
    be writing. A result that lands ends the record (`confirmed_by: head`); only when none has landed after as long
    again as the failed call took (at least _MIN_WATCH_S) is CI called again."""
    operations = pic_operations(decision, record.bucket, invocation.settings.magnify)
    unsure = False
    watch_s = 0.0
    confirmed: list[ObjectState] = []

    def attempt() -> object:
        nonlocal unsure, watch_s
        if unsure:
            state = _watch(record, decision, deadline, watch_s, invocation)
            if state is not None:
                confirmed.append(state)
                return None
            unsure = False
        attempts.count += 1
        started = invocation.clock()
        try:
            return invocation.gateway.image_process(record.bucket, record.key, record.region, operations,
                                                    _left(deadline, invocation))
        except CosCallError as exc:
            unsure = exc.ambiguous
            watch_s = max(_MIN_WATCH_S, invocation.clock() - started)
            raise

    data = _retrying(attempt, deadline, Attempts(), invocation)
    if confirmed:
        state = confirmed[0]
        return {"outcome": "processed", "reason": "processed", "confirmed_by": "head",
                "result": {"key": decision.dest_key, "size": state.size, "etag": state.etag}, "original": None}
    result = parse_upload_result(data)
    stored = result.find(decision.dest_key) or (result.objects[0] if len(result.objects) == 1 else None)
    original = result.original.image if result.original else None
    return {
        "outcome": "processed",
        "reason": "processed",
        "result": stored.as_log() if stored else None,
        "original": {"width": original.width, "height": original.height, "format": original.format}
        if original
        else None,
    }


def _watch(
    record: CosRecord, decision: Decision, deadline: float, watch_s: float, invocation: Invocation
) -> ObjectState | None:
    """HEAD the destination now and then, for up to `watch_s` seconds, until a fresh result is there. A HEAD that
    fails is not retried here: the failure goes to the caller's retry loop, which counts it as an attempt."""
    until = min(invocation.clock() + watch_s, deadline - invocation.policy.min_attempt_s)
    pause = 0.25
    while True:
        found = invocation.gateway.head(decision.dest_bucket, decision.dest_key, record.region,
                                        _left(deadline, invocation))
        state = found if found is not None and is_fresh(found.last_modified, record.event_time) else None
        if state is not None or invocation.clock() + pause > until:
            return state
        invocation.sleep(pause)
        pause = min(pause * 2, 2.0)


def _retrying(fn: Callable[[], T], deadline: float, attempts: Attempts, invocation: Invocation) -> T:
    return call_with_retry(
        fn, deadline=deadline, attempts=attempts, policy=invocation.policy, clock=invocation.clock,
        sleep=invocation.sleep,
    )


def _left(deadline: float, invocation: Invocation) -> float:
    """Seconds until the deadline: no single request may outlast the invocation."""
    return max(deadline - invocation.clock(), 0.001)


def _finish(line: dict[str, object], started: float, invocation: Invocation) -> dict[str, object]:
    line["duration_ms"] = round((invocation.clock() - started) * 1000, 1)
    if line.get("outcome") in ("failed", "invalid"):
        line["level"] = "ERROR"
    invocation.emit(line)
    return line


def _base(request_id: str) -> dict[str, object]:
    return {"level": "INFO", "logger": "superres", "request_id": request_id}


def _record_fields(record: CosRecord, magnify: int) -> dict[str, object]:
    return {
        "event_name": record.event_name,
        "bucket": record.bucket,
        "region": record.region,
        "key": record.key,
        "size": record.size,
        "magnify": magnify,
    }


def _time_budget_s(ctx: Mapping[str, object]) -> float:
    """Seconds this invocation may spend, keeping a margin so we log and return before SCF kills us."""
    raw = ctx.get("time_limit_in_ms")
    valid = isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0
    limit_ms = float(raw) if valid else _DEFAULT_TIME_LIMIT_MS  # type: ignore[arg-type]
    margin_ms = min(1000.0, limit_ms * 0.1)
    return (limit_ms - margin_ms) / 1000.0
