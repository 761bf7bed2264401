"""What may be billed: freshness of a stored result, ambiguous CI failures, permanent errors, claims against
concurrent duplicates. Pure logic with an injected fake gateway (the same rules against the stand-in with the real
SDK: tests/integration/test_billing_e2e.py)."""

from __future__ import annotations

import pytest
from superres_fn import (
    CosCallError,
    RecordsFailedError,
    Settings,
    WorkInProgressError,
    claim_key,
    decide,
    handle_event,
    is_fresh,
)
from superres_fn.events import parse_record

from tests.conftest import load_event
from tests.unit.fakes import make_invocation

CONTEXT = {"request_id": "req-1", "time_limit_in_ms": 30_000}
DEST = ("photos-1250000000", "superres/uploads/astronaut.jpg")
EVENT_TIME = 1763971200  # put_single.json's eventTime


def _ambiguous(code: str = "Timeout", status: int | None = None) -> CosCallError:
    return CosCallError("no answer in time", code=code, status=status, retryable=True, ambiguous=True)


# ---- freshness -----------------------------------------------------------------------------------------------------

def test_fresh_is_at_least_as_new_as_the_upload_in_whole_seconds():
    record = parse_record(load_event("put_single.json")["Records"][0])
    assert is_fresh(EVENT_TIME, record.event_time)          # same second: done
    assert is_fresh(EVENT_TIME + 1, record.event_time)
    assert not is_fresh(EVENT_TIME - 1, record.event_time)  # older than the upload: stale
    assert is_fresh(None, record.event_time)                # age unknown: taken as done, never billed twice


@pytest.mark.parametrize("claims", [True, False])
def test_stale_result_is_processed_again_and_fresh_one_skipped(claims: bool):
    settings = Settings(dest_prefix="superres/", region="ap-guangzhou", claim_work=claims)
    invocation, lines, gateway, _ = make_invocation(settings)
    gateway.existing.add(DEST)
    gateway.modified[DEST] = EVENT_TIME - 3600  # the result of an earlier upload of the same key
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[-1]["outcome"] == "processed" and len(gateway.calls) == 1
    handle_event(load_event("put_single.json"), CONTEXT, invocation)  # SCF retry of the same event
    assert lines[-1]["reason"] == "already_done" and len(gateway.calls) == 1


# ---- ambiguous failures --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [_ambiguous(), _ambiguous("InternalError", 500),
                                   _ambiguous("MalformedResponse", 200)])
def test_failure_after_the_result_landed_is_confirmed_by_head_not_called_again(error: CosCallError):
    # The fake writes the result, then raises: the first HEAD after the failure finds it.
    invocation, lines, gateway, _ = make_invocation()
    gateway.landed_failures["uploads/astronaut.jpg"] = [error]
    summary = handle_event(load_event("put_single.json"), CONTEXT, invocation)
    (line,) = lines
    assert line["outcome"] == "processed" and line["confirmed_by"] == "head"
    assert line["result"]["key"] == DEST[1] and line["attempts"] == 1
    assert len(gateway.calls) == 1 and summary["processed"] == 1


def test_ambiguous_failure_that_did_not_land_is_called_again_after_watching():
    invocation, lines, gateway, clock = make_invocation()
    clock_log: list[float] = []
    original_head = gateway.head

    def head(*args, **kwargs):
        clock_log.append(clock.now)
        return original_head(*args, **kwargs)

    gateway.head = head  # type: ignore[method-assign]
    gateway.failures["uploads/astronaut.jpg"] = [_ambiguous()]
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    (line,) = lines
    assert line["outcome"] == "processed" and "confirmed_by" not in line and line["attempts"] == 2
    # the look under the claim, then HEADs for at least 2 s after the timeout (nothing lands), then the second call
    watched = [t for t in clock_log if t >= 0]
    assert gateway.heads.count(DEST) >= 3 and len(gateway.calls) == 2
    assert max(watched) - min(watched) >= 1.75


def test_unambiguous_transient_failure_is_retried_without_a_head():
    invocation, lines, gateway, _ = make_invocation()
    gateway.failures["uploads/astronaut.jpg"] = [CosCallError("slow down", code="SlowDown", status=503)]
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["attempts"] == 2 and gateway.heads.count(DEST) == 1


# ---- permanent failures --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [
    CosCallError("the SDK refused the request: bucket is not valid", code="InvalidRequest", retryable=False),
    CosCallError("denied", code="AccessDenied", status=403),
    CosCallError("odd", code="HTTP400", status=400),
    CosCallError("the SDK failed on COS's answer", code="SdkError", retryable=False),
])
def test_permanent_failure_is_one_attempt_logged_and_not_raised(error: CosCallError):
    invocation, lines, gateway, _ = make_invocation()
    gateway.failures["uploads/astronaut.jpg"] = [error, error]
    handle_event(load_event("put_single.json"), CONTEXT, invocation)  # no RecordsFailedError: SCF must not retry
    (line,) = lines
    assert line["outcome"] == "failed" and line["attempts"] == 1 and line["error"]["retryable"] is False
    assert line["error"]["code"] == error.code


@pytest.mark.parametrize(("status", "code", "retryable"), [
    (503, "SlowDown", True), (429, "TooManyRequests", True), (500, "InternalError", True),
    (408, "RequestTimeout", True),
    (404, "NoSuchKey", False), (403, "AccessDenied", False), (400, "InvalidArgument", False), (409, "HTTP409", False),
])
def test_retry_classification_by_status_and_code(status: int, code: str, retryable: bool):
    assert CosCallError("x", code=code, status=status).retryable is retryable


def test_head_denied_is_a_permanent_failure_naming_the_permission():
    invocation, lines, gateway, _ = make_invocation(Settings(dest_prefix="superres/", region="ap-guangzhou",
                                                             claim_work=False))
    gateway.head_failures.append(CosCallError("COS answered HTTP 403", code="HTTP403", status=403,
                                              cos_request_id="req-xyz"))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    (line,) = lines
    assert line["outcome"] == "failed" and line["error"]["code"] == "HTTP403"
    assert line["error"]["cos_request_id"] == "req-xyz" and gateway.calls == []


# ---- claims --------------------------------------------------------------------------------------------------------

def test_claim_is_taken_before_the_call_and_released_after():
    invocation, lines, gateway, _ = make_invocation()
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    decision = decide(parse_record(load_event("put_single.json")["Records"][0]), invocation.settings)
    key = claim_key(decision, invocation.settings)
    assert key.startswith("superres/.claims/") and len(key) == len("superres/.claims/") + 64
    assert gateway.claims == [(DEST[0], key, True)] and gateway.deletes == [(DEST[0], key)]
    assert (DEST[0], key) not in gateway.existing and lines[0]["outcome"] == "processed"


def test_concurrent_duplicate_finds_the_claim_and_leaves_the_event_to_scf_retry():
    invocation, lines, gateway, _ = make_invocation()
    decision = decide(parse_record(load_event("put_single.json")["Records"][0]), invocation.settings)
    held = (DEST[0], claim_key(decision, invocation.settings))
    gateway.existing.add(held)
    gateway.modified[held] = int(gateway.wall()) - 5  # taken 5 s ago by a live invocation
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    (line,) = lines
    assert line["outcome"] == "failed" and line["error"]["code"] == WorkInProgressError.code
    assert line["error"]["retryable"] is True and gateway.calls == [] and held in gateway.existing


def test_claim_of_an_invocation_that_died_is_taken_over():
    invocation, lines, gateway, _ = make_invocation()
    decision = decide(parse_record(load_event("put_single.json")["Records"][0]), invocation.settings)
    held = (DEST[0], claim_key(decision, invocation.settings))
    gateway.existing.add(held)
    gateway.modified[held] = int(gateway.wall()) - 3600
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["outcome"] == "processed" and len(gateway.calls) == 1 and held not in gateway.existing


def test_result_stored_while_waiting_for_the_claim_is_seen_under_it():
    invocation, lines, gateway, _ = make_invocation()
    gateway.existing.add(DEST)  # a concurrent delivery finished just before this one took the claim
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["reason"] == "already_done" and gateway.calls == [] and len(gateway.deletes) == 1


def test_claims_off_costs_no_claim_request():
    invocation, lines, gateway, _ = make_invocation(Settings(dest_prefix="superres/", region="ap-guangzhou",
                                                             claim_work=False))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert gateway.claims == [] and gateway.deletes == [] and lines[0]["outcome"] == "processed"
