"""What may be billed: freshness by content, ambiguous CI failures, permanent errors, claims against concurrent and
late duplicates. Pure logic on an in-memory COS (tests/unit/fakes.py); the same rules against the stand-in with the
real SDK, counting the CI requests it served: tests/integration/test_adversary.py."""

from __future__ import annotations

import pytest
from superres_fn import (
    CiMayStillLand,
    CiOutcomeUnknown,
    CosCallError,
    RecordsFailedError,
    RetryPolicy,
    Settings,
    WorkInProgressError,
    handle_event,
    plan_targets,
)
from superres_fn import claims as claims_mod
from superres_fn.targets import claim_root, source_folder

from tests.conftest import load_event
from tests.unit.fakes import make_invocation

CONTEXT = {"request_id": "req-1", "time_limit_in_ms": 30_000}
BUCKET = "photos-1250000000"
SOURCE = "uploads/astronaut.jpg"
DEST = (BUCKET, "superres/uploads/astronaut.jpg.png")
EVENT_VERSION = "9a0364b9e99bb480dd25e1f0284c8555"  # put_single.json's ETag
SETTINGS = Settings(dest_prefix="superres/", region="ap-guangzhou")


def _ambiguous(code: str = "Timeout", status: int | None = None) -> CosCallError:
    return CosCallError("no answer in time", code=code, status=status, retryable=True, ambiguous=True)


def _stamp(version: str, rule: str = "x2") -> dict[str, str]:
    return {"x-cos-meta-superres-source": version, "x-cos-meta-superres-rule": rule}


def _root(settings: Settings = SETTINGS) -> str:
    return claim_root(settings, source_folder(BUCKET, SOURCE))


# ---- freshness by content ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("claims", [True, False])
def test_result_of_another_version_is_redone_and_the_retry_finds_it_done(claims: bool):
    invocation, lines, gateway, _ = make_invocation(SETTINGS.with_overrides(claim_work=claims))
    gateway.put(*DEST, b"old result", _stamp("0" * 32), last_modified=2_000_000_000)  # newer by the clock: irrelevant
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[-1]["outcome"] == "processed" and len(gateway.calls) == 1
    assert gateway.objects[DEST].meta["x-cos-meta-superres-source"] == EVENT_VERSION
    handle_event(load_event("put_single.json"), CONTEXT, invocation)  # SCF retry, or the same bytes uploaded again
    assert lines[-1]["reason"] == "already_done" and len(gateway.calls) == 1


def test_a_result_for_this_version_is_done_whatever_the_clocks_say():
    invocation, lines, gateway, _ = make_invocation()
    gateway.put(*DEST, b"result", _stamp(EVENT_VERSION), last_modified=1)  # "older" than the event by far
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["reason"] == "already_done" and gateway.calls == []


def test_changing_the_rule_makes_results_stale():
    invocation, lines, gateway, _ = make_invocation(SETTINGS.with_overrides(magnify=4))
    gateway.put(*DEST, b"x2 result", _stamp(EVENT_VERSION, "x2"))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["outcome"] == "processed" and len(gateway.calls) == 1
    assert gateway.objects[DEST].meta["x-cos-meta-superres-rule"] == "x4"


@pytest.mark.parametrize(("result_lm", "processed"), [(1_700_000_001, False), (1_700_000_000, True),
                                                      (1_699_999_000, True)])
def test_unstamped_result_counts_only_when_cos_wrote_it_strictly_after_the_source(result_lm: int, processed: bool):
    invocation, lines, gateway, _ = make_invocation()
    gateway.put(BUCKET, SOURCE, b"photo", last_modified=1_700_000_000)
    event = load_event("put_single.json")
    event["Records"][0]["cos"]["cosObject"]["meta"]["ETag"] = gateway.objects[(BUCKET, SOURCE)].etag
    gateway.put(*DEST, b"result made before provenance", last_modified=result_lm)
    handle_event(event, CONTEXT, invocation)
    assert (lines[0]["outcome"] == "processed") is processed and len(gateway.calls) == int(processed)


def test_an_outdated_event_calls_ci_neither():
    invocation, lines, gateway, _ = make_invocation()
    gateway.put(BUCKET, SOURCE, b"a newer upload")  # the source's ETag is no longer the event's
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["reason"] == "outdated" and gateway.calls == []


def test_an_event_without_etag_takes_the_version_from_cos():
    invocation, lines, gateway, _ = make_invocation()
    etag = gateway.put(BUCKET, SOURCE, b"photo")
    event = load_event("put_single.json")
    del event["Records"][0]["cos"]["cosObject"]["meta"]["ETag"]
    handle_event(event, CONTEXT, invocation)
    assert lines[0]["source_version"] == etag.strip('"') and len(gateway.calls) == 1


def test_a_source_deleted_before_processing_is_skipped():
    invocation, lines, gateway, _ = make_invocation()
    gateway.own_prefixes = ("superres/", "uploads/")  # the fake answers 404 for the source
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["reason"] == "source_gone" and gateway.calls == []


# ---- ambiguous failures --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [_ambiguous(), _ambiguous("InternalError", 500),
                                   _ambiguous("MalformedResponse", 200)])
def test_after_an_ambiguous_failure_the_retry_publishes_what_landed_without_a_call(error: CosCallError):
    invocation, lines, gateway, clock = make_invocation()
    gateway.landed_failures[SOURCE] = [error]  # CI wrote the result, the answer was lost
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["error"]["code"] == CiOutcomeUnknown.code and lines[0]["attempts"] == 1
    assert not gateway.has(*DEST) and gateway.keys("superres/.claims/") == []  # nothing published; claim released
    assert [k for _, k in gateway.keys("superres/.staging/") if k.endswith(".inflight")]  # the in-flight marker
    clock.now += 60  # SCF's retry, a minute later
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[1]["outcome"] == "processed" and lines[1]["confirmed_by"] == "staging"
    assert len(gateway.calls) == 1 and gateway.keys("superres/.staging/") == []
    assert gateway.objects[DEST].meta["x-cos-meta-superres-source"] == EVENT_VERSION


def test_an_ambiguous_failure_that_never_landed_is_called_again_only_once_it_cannot_land():
    invocation, lines, gateway, clock = make_invocation()
    gateway.failures[SOURCE] = [_ambiguous()]
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    clock.now += 30  # SCF's first retry: the first call may still land for 30 s more, more than this one has
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[1]["error"]["code"] == CiMayStillLand.code and len(gateway.calls) == 1
    clock.now += SETTINGS.ci_landing_bound_s
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[2]["outcome"] == "processed" and len(gateway.calls) == 2
    assert gateway.keys("superres/.staging/") == []


def test_a_retry_with_time_to_spare_waits_out_the_landing_bound_itself():
    invocation, lines, gateway, clock = make_invocation(SETTINGS.with_overrides(ci_landing_bound_s=5.0))
    gateway.failures[SOURCE] = [_ambiguous()]
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    started = clock.now
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[1]["outcome"] == "processed" and len(gateway.calls) == 2
    assert clock.now - started >= 5  # it waited until the first call could no longer land


def test_a_claim_holder_that_dies_mid_call_blocks_new_calls_until_its_call_cannot_land():
    invocation, lines, gateway, clock = make_invocation()
    ttl = 29 + SETTINGS.ci_landing_bound_s + 2  # what a holder with a 30 s limit writes
    gateway.put(BUCKET, _root(), b'{"nonce": "dead"}', {"x-cos-meta-superres-ttl": str(int(ttl) + 1)},
                last_modified=int(gateway.cos_now()) - 40)  # died 40 s ago, its call possibly in flight
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["error"]["code"] == WorkInProgressError.code and gateway.calls == []
    clock.now += 60
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[1]["outcome"] == "processed" and len(gateway.calls) == 1


def test_unambiguous_transient_failure_is_retried_at_once():
    invocation, lines, gateway, _ = make_invocation()
    gateway.failures[SOURCE] = [CosCallError("slow down", code="SlowDown", status=503)]
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["attempts"] == 2 and lines[0]["outcome"] == "processed"


def test_no_ci_call_starts_without_the_time_it_needs():
    invocation, lines, gateway, _ = make_invocation()
    invocation = invocation._replace(policy=RetryPolicy())  # a CI call needs 3 s
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), {"time_limit_in_ms": 3000}, invocation)
    assert lines[0]["error"]["code"] == "DeadlineExceeded" and gateway.calls == []
    assert gateway.keys("superres/.claims/") == []  # released: nothing was sent


# ---- permanent failures --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("error", [
    CosCallError("the SDK refused the request: bucket is not valid", code="InvalidRequest", retryable=False),
    CosCallError("denied", code="AccessDenied", status=403),
    CosCallError("odd", code="HTTP400", status=400),
    CosCallError("the SDK failed on COS's answer", code="SdkError", retryable=False),
])
def test_permanent_failure_is_one_attempt_logged_and_not_raised(error: CosCallError):
    invocation, lines, gateway, _ = make_invocation()
    gateway.failures[SOURCE] = [error, error]
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
    invocation, lines, gateway, _ = make_invocation(SETTINGS.with_overrides(claim_work=False))
    gateway.head_failures.append(CosCallError("COS answered HTTP 403", code="HTTP403", status=403,
                                              cos_request_id="req-xyz"))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    (line,) = lines
    assert line["outcome"] == "failed" and line["error"]["code"] == "HTTP403"
    assert line["error"]["cos_request_id"] == "req-xyz" and gateway.calls == []


# ---- claims --------------------------------------------------------------------------------------------------------

def test_claim_is_created_before_the_call_and_released_after():
    invocation, lines, gateway, _ = make_invocation()
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    root = _root()
    assert root.startswith("superres/.claims/") and len(root) == len("superres/.claims/") + 64
    assert gateway.creates == [(BUCKET, root, True)] and (BUCKET, root) in gateway.deletes
    assert not gateway.has(BUCKET, root) and lines[0]["outcome"] == "processed"


def _dead_claim(gateway, *, age_s: int, ttl_s: int = 60) -> str:
    root = _root()
    gateway.put(BUCKET, root, b'{"nonce": "dead"}', {"x-cos-meta-superres-ttl": str(ttl_s)},
                last_modified=int(gateway.cos_now()) - age_s)
    return root


def test_duplicate_waits_for_a_live_claim_then_leaves_the_event_to_scf_retry():
    invocation, lines, gateway, clock = make_invocation()
    root = _dead_claim(gateway, age_s=5, ttl_s=3600)  # a holder still running
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    (line,) = lines
    assert line["error"]["code"] == WorkInProgressError.code and line["error"]["retryable"] is True
    assert gateway.calls == [] and gateway.has(BUCKET, root)
    assert sum(clock.sleeps) > 20  # it waited for most of its 30 s before giving up


def test_expired_claim_is_taken_over_by_one_atomic_create_never_deleted_first():
    invocation, lines, gateway, _ = make_invocation()
    root = _dead_claim(gateway, age_s=120)
    dead_etag = gateway.objects[(BUCKET, root)].etag.strip('"')
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["outcome"] == "processed" and len(gateway.calls) == 1
    takeover = f"{root}.{dead_etag}"
    assert (BUCKET, takeover, True) in gateway.creates
    # the dead claim is deleted only by the release, after the takeover's create; never before it
    assert gateway.log.index(("create", takeover)) < gateway.log.index(("delete", root))
    assert "took over the expired claim" in lines[0]["warning"] and gateway.keys("superres/.claims/") == []


def test_of_two_takers_of_one_dead_claim_exactly_one_holds():
    invocation, _, gateway, _ = make_invocation()
    root = _dead_claim(gateway, age_s=120)
    ops = claims_mod.ClaimOps(
        create=lambda key, body, meta: gateway.create_if_absent(BUCKET, key, "r", body, meta),
        head=lambda key: gateway.head(BUCKET, key, "r"),
        delete_once=lambda key: gateway.delete(BUCKET, key, "r"),
    )
    meta = claims_mod.claim_meta(90, EVENT_VERSION)
    first = claims_mod.try_acquire(ops, root, b'{"nonce": "b"}', meta, 90)
    second = claims_mod.try_acquire(ops, root, b'{"nonce": "c"}', meta, 90)
    assert isinstance(first, claims_mod.Held) and first.chain[0] == root
    assert isinstance(second, claims_mod.Busy) and second.key == first.key and second.version == EVENT_VERSION


def test_a_claim_whose_create_landed_but_whose_answer_was_lost_is_held_not_waited_on():
    invocation, lines, gateway, _ = make_invocation()
    create = gateway.create_if_absent

    def lost_answer(*args, **kwargs):  # the first PUT lands, its answer is lost; the retry meets 409
        create(*args, **kwargs)
        gateway.create_if_absent = create  # type: ignore[method-assign]
        raise CosCallError("read timed out", code="Timeout", retryable=True)

    gateway.create_if_absent = lost_answer  # type: ignore[method-assign]
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["outcome"] == "processed" and len(gateway.calls) == 1
    assert gateway.keys("superres/.claims/") == []


def test_claim_age_is_read_on_cos_clock_not_the_functions():
    invocation, lines, gateway, clock = make_invocation()
    _dead_claim(gateway, age_s=5, ttl_s=3600)
    invocation = invocation._replace(wall=lambda: 9e12)  # this machine's clock far ahead: irrelevant
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["error"]["code"] == WorkInProgressError.code


def test_duplicate_waiting_on_a_claim_finds_the_holders_result_for_its_version():
    invocation, lines, gateway, _ = make_invocation()
    _dead_claim(gateway, age_s=1, ttl_s=3600)
    gateway.put(*DEST, b"result", _stamp(EVENT_VERSION))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["reason"] == "already_done" and gateway.calls == []


def test_claims_off_costs_no_claim_request():
    invocation, lines, gateway, _ = make_invocation(SETTINGS.with_overrides(claim_work=False))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert gateway.creates == [] and lines[0]["outcome"] == "processed"
    assert [t.key for t in plan_targets(BUCKET, SOURCE, SETTINGS)] == [DEST[1]]
