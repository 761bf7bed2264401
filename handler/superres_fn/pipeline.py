"""One invocation: event -> records -> decision -> CI call -> parsed results -> one log line each."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

from .config import Output, Settings
from .errors import CosCallError, EventError, RecordsFailedError, SuperresError, WorkInProgressError
from .events import CosRecord, RecordSlot, iter_records
from .gateway import Gateway, ObjectState
from .log import Emit, emit_stdout
from .plan import ALREADY_DONE, Decision, claim_key, decide, is_fresh, output_targets, pic_operations_for, staging_key
from .results import UploadResult, parse_upload_result
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
    # A claim carrying no expiry (not written by this function) is taken as dead after one whole invocation.
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
            line.update(_work(record, decision, deadline, attempts, invocation, line, looked=True))
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
    """The destination's state if it holds a result at least as new as this upload (the freshness rule), else None;
    the HEAD retried as any transient failure is."""
    return _retrying(lambda: _fresh_head(record, bucket, key, deadline, invocation), deadline, Attempts(), invocation)


def _fresh_head(
    record: CosRecord, bucket: str, key: str, deadline: float, invocation: Invocation
) -> ObjectState | None:
    """One HEAD: the object's state if it is at least as new as this upload, else None."""
    state = invocation.gateway.head(bucket, key, record.region, _left(deadline, invocation))
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
            # The holder may have stored every result and died before releasing its claim.
            if invocation.settings.skip_existing:
                targets = _targets(record, invocation.settings)
                done = _done(record, targets, deadline, invocation)
                if len(done) == len(targets):
                    return _already_done(targets, done, invocation.settings,
                                         "another invocation, holding the claim, stored the results")
            if invocation.clock() + pause + _CLAIM_WAIT_RESERVE_S > deadline:
                raise WorkInProgressError(f"another invocation is processing this upload (claim {key!r}); SCF's "
                                          "retry will find its result")
            invocation.sleep(pause)
            pause = min(pause * 2, 2.0)
    try:
        # Looked at under the claim: a result stored by an earlier (or a concurrent, now finished) delivery is seen.
        return _work(record, decision, deadline, attempts, invocation, line, looked=False)
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


class _Target(NamedTuple):
    """One output of one upload: its final key, and where its PNG lands first when it is converted to a format."""

    output: Output
    bucket: str
    key: str
    staging: str | None


def _work(
    record: CosRecord, decision: Decision, deadline: float, attempts: Attempts, invocation: Invocation,
    line: dict[str, object], *, looked: bool,
) -> dict[str, object]:
    """Every output of the upload: skip those already done (the freshness rule), super-resolve the rest in one CI
    call (one rule each; up to five), then convert those with a format, each in a second call from its staging PNG.
    `looked`: decide() already found the first output not done (CLAIM_WORK=false), so it is not looked at again."""
    settings = invocation.settings
    several = bool(settings.output_specs)
    targets = _targets(record, settings)
    done = _done(record, targets, deadline, invocation, skip_first=looked) if settings.skip_existing else {}
    pending = [target for target in targets if target.key not in done]
    if not pending:
        return _already_done(targets, done, settings, ALREADY_DONE)

    # A converted output whose PNG already sits, fresh, in staging (an earlier try stopped between the two calls)
    # needs only its conversion.
    staged = {t.key for t in pending if t.staging and settings.skip_existing
              and _result_state(record, t.bucket, t.staging, deadline, invocation) is not None}
    results: dict[str, dict[str, object]] = {}
    confirmed: set[str] = set()
    original = None
    to_resolve = [t for t in pending if t.key not in staged]
    if to_resolve:
        rules = [(t.bucket, t.staging or t.key, f"ci-process=AISuperResolution&magnify={t.output.magnify}")
                 for t in to_resolve]
        upload, landed = _call_ci(record, record.bucket, record.key, rules, 1, deadline, attempts, invocation)
        original = upload.original.image if upload is not None and upload.original else None
        for target in to_resolve:
            written = target.staging or target.key
            if written in landed:
                confirmed.add(target.key)
            results[target.key] = landed.get(written) or _found(upload, written, single=len(rules) == 1)
    for target in pending:
        if target.staging is None:
            continue
        fmt, quality = target.output.format, target.output.quality
        rule = f"imageMogr2/format/{fmt}" + (f"/quality/{quality}!" if quality else "")
        upload, landed = _call_ci(record, target.bucket, target.staging, [(target.bucket, target.key, rule)], 0,
                                  deadline, attempts, invocation)
        if target.key in landed:
            confirmed.add(target.key)
        results[target.key] = landed.get(target.key) or _found(upload, target.key, single=True)
        try:
            invocation.gateway.delete(target.bucket, target.staging, record.region, _left(deadline, invocation))
        except SuperresError as exc:
            line["warning"] = f"staging object {target.staging!r} not deleted ({exc.code})"

    first = targets[0]
    outcome: dict[str, object] = {
        "outcome": "processed",
        "reason": "processed",
        "result": results.get(first.key) or _state_log(first.key, done.get(first.key)),
        "original": {"width": original.width, "height": original.height, "format": original.format}
        if original
        else None,
    }
    if confirmed and (not several or len(confirmed) == len(pending)):
        outcome["confirmed_by"] = "head"
    if several:
        outcome["outputs"] = [
            _output_line(t, "already_done", _state_log(t.key, done[t.key])) if t.key in done
            else _output_line(t, "processed", results.get(t.key), confirmed=t.key in confirmed)
            for t in targets
        ]
    return outcome


def _targets(record: CosRecord, settings: Settings) -> list[_Target]:
    return [_Target(output, bucket, key, staging_key(bucket, key, settings) if output.format else None)
            for output, bucket, key in output_targets(record.bucket, record.key, settings)]


def _done(
    record: CosRecord, targets: list[_Target], deadline: float, invocation: Invocation, *, skip_first: bool = False
) -> dict[str, ObjectState]:
    """The targets that already hold a fresh result, by key (the first one not looked at when `skip_first`)."""
    done: dict[str, ObjectState] = {}
    for target in targets[1:] if skip_first else targets:
        state = _result_state(record, target.bucket, target.key, deadline, invocation)
        if state is not None:
            done[target.key] = state
    return done


def _already_done(
    targets: list[_Target], done: dict[str, ObjectState], settings: Settings, detail: str
) -> dict[str, object]:
    skipped: dict[str, object] = {"outcome": "skipped", "reason": "already_done", "detail": detail}
    if settings.output_specs:
        skipped["outputs"] = [_output_line(t, "already_done", _state_log(t.key, done[t.key])) for t in targets]
    return skipped


def _call_ci(
    record: CosRecord, bucket: str, key: str, rules: list[tuple[str, str, str]], is_pic_info: int,
    deadline: float, attempts: Attempts, invocation: Invocation,
) -> tuple[UploadResult | None, dict[str, dict[str, object]]]:
    """POST bucket/key?image_process with `rules` ((bucket, fileid, rule)), until CI answers or fails for good.

    After a failure that leaves it unknown whether CI did the work (timeout, reset after sending, 5xx, unreadable
    2xx), each rule's fileid is watched before any new call: CI may still be writing. Rules whose result lands are
    done (`landed`, with what the HEAD said); only the rest are sent again, and only when nothing more has landed
    after as long again as the failed call took (at least _MIN_WATCH_S)."""
    remaining = list(rules)
    landed: dict[str, dict[str, object]] = {}
    unsure = False
    watch_s = 0.0

    def attempt() -> UploadResult | None:
        nonlocal unsure, watch_s, remaining
        if unsure:
            watched = [(dest, fileid) for dest, fileid, _ in remaining]
            for (_, fileid), state in _watch(record, watched, deadline, watch_s, invocation).items():
                landed[fileid] = _state_log(fileid, state)
            remaining = [rule for rule in remaining if rule[1] not in landed]
            if not remaining:
                return None
            unsure = False
        operations = pic_operations_for(remaining, record_bucket=bucket, is_pic_info=is_pic_info)
        attempts.count += 1
        started = invocation.clock()
        try:
            data = invocation.gateway.image_process(bucket, key, record.region, operations,
                                                    _left(deadline, invocation))
        except CosCallError as exc:
            unsure = exc.ambiguous
            watch_s = max(_MIN_WATCH_S, invocation.clock() - started)
            raise
        return parse_upload_result(data)

    return _retrying(attempt, deadline, Attempts(), invocation), landed


def _found(upload: UploadResult | None, key: str, *, single: bool) -> dict[str, object] | None:
    if upload is None:
        return None
    stored = upload.find(key) or (upload.objects[0] if single and len(upload.objects) == 1 else None)
    return stored.as_log() if stored else None


def _state_log(key: str, state: ObjectState | None) -> dict[str, object] | None:
    return {"key": key, "size": state.size, "etag": state.etag} if state is not None else None


def _output_line(
    target: _Target, status: str, result: dict[str, object] | None, *, confirmed: bool = False
) -> dict[str, object]:
    item: dict[str, object] = {"dest_bucket": target.bucket, "dest_key": target.key, "magnify": target.output.magnify,
                               "format": target.output.format, "quality": target.output.quality, "status": status,
                               "result": result}
    if confirmed:
        item["confirmed_by"] = "head"
    return item


def _watch(
    record: CosRecord, objects: list[tuple[str, str]], deadline: float, watch_s: float, invocation: Invocation
) -> dict[tuple[str, str], ObjectState]:
    """HEAD the (bucket, key) objects now and then, for up to `watch_s` seconds, until each holds a fresh result; what
    landed. A HEAD that fails is not retried here: the failure goes to the caller's retry loop (an attempt)."""
    until = min(invocation.clock() + watch_s, deadline - invocation.policy.min_attempt_s)
    pause = 0.25
    landed: dict[tuple[str, str], ObjectState] = {}
    while True:
        for bucket, key in objects:
            if (bucket, key) in landed:
                continue
            found = _fresh_head(record, bucket, key, deadline, invocation)
            if found is not None:
                landed[(bucket, key)] = found
        if len(landed) == len(objects) or invocation.clock() + pause > until:
            return landed
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
