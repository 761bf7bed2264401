from __future__ import annotations

import json

import pytest
from superres_fn import CosCallError, RecordsFailedError, Settings, handle_event

from tests.conftest import EVENTS, load_event
from tests.unit.fakes import FakeGateway, make_invocation

CONTEXT = {"request_id": "req-1", "time_limit_in_ms": 30_000, "function_name": "cos-superres"}

# Expected outcome of every record of every sample event (DEST_PREFIX=superres/).
EXPECTED = {
    "put_single.json": [("processed", "processed")],
    "post.json": [("processed", "processed")],
    "copy.json": [("processed", "processed")],
    "complete_multipart.json": [("processed", "processed")],
    "three_records.json": [("processed", "processed")] * 3,
    "tricky_keys.json": [("processed", "processed")] * 7,
    "encoded_key_shape.json": [("processed", "processed")],
    "under_dest_prefix.json": [("skipped", "under_destination_prefix")],
    "non_image.json": [("skipped", "suffix_not_accepted")],
    "oversize.json": [("skipped", "too_large")],
    "folder_marker.json": [("skipped", "folder_marker")],
    "object_remove.json": [("skipped", "not_object_created")],
    "iso_event_time.json": [("processed", "processed")],
    "real_capture_2022.json": [("processed", "processed")],
    "malformed.json": [("invalid", "invalid_record")],
}
WHOLE_EVENT_INVALID = {"not_cos_timer.json"}


def test_every_sample_event_is_covered():
    assert {p.name for p in EVENTS.glob("*.json")} == set(EXPECTED) | WHOLE_EVENT_INVALID


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_outcome_per_record(name):
    invocation, lines, gateway, _ = make_invocation()
    summary = handle_event(load_event(name), CONTEXT, invocation)
    assert [(line["outcome"], line["reason"]) for line in lines] == EXPECTED[name]
    assert [(r["outcome"], r["reason"]) for r in summary["records"]] == EXPECTED[name]
    processed = sum(1 for outcome, _ in EXPECTED[name] if outcome == "processed")
    assert summary["processed"] == processed == len(gateway.calls)
    assert all(line["request_id"] == "req-1" for line in lines)


def test_not_a_cos_event_is_logged_once_and_not_raised():
    invocation, lines, gateway, _ = make_invocation()
    summary = handle_event(load_event("not_cos_timer.json"), CONTEXT, invocation)
    assert len(lines) == 1 and lines[0]["reason"] == "invalid_event" and lines[0]["level"] == "ERROR"
    assert summary["error"]["field"] == "Records"
    assert gateway.calls == []


def test_processed_line_has_result_fields_and_calls_ci_with_absolute_fileid():
    invocation, lines, gateway, _ = make_invocation()
    handle_event(load_event("tricky_keys.json"), CONTEXT, invocation)
    bucket, key, region, ops = gateway.calls[5]
    assert (bucket, key, region) == ("photos-1250000000", "uploads/猫 照片.jpg", "ap-guangzhou")
    staged = json.loads(ops)["rules"][0]["fileid"]
    assert staged.startswith("/superres/.staging/") and staged.endswith(".png")  # then published by a copy
    assert ("photos-1250000000", staged[1:], "superres/uploads/猫 照片.jpg.png") in gateway.copies
    line = lines[5]
    assert line["dest_key"] == "superres/uploads/猫 照片.jpg.png"
    published = gateway.objects[("photos-1250000000", "superres/uploads/猫 照片.jpg.png")]
    assert line["result"] == {
        "key": "superres/uploads/猫 照片.jpg.png",
        "location": "photos-1250000000.cos.ap-guangzhou.myqcloud.com/superres/uploads/猫 照片.jpg.png",
        "size": len(published.body), "etag": published.etag, "width": 128, "height": 96, "format": "png",
    }
    assert line["original"] == {"width": 64, "height": 48, "format": "JPEG"}
    assert line["magnify"] == 2 and line["attempts"] == 1 and "duration_ms" in line


def test_second_delivery_of_same_event_skips_already_done():
    invocation, lines, gateway, _ = make_invocation()
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert [line["reason"] for line in lines] == ["processed", "already_done"]
    assert len(gateway.calls) == 1


def test_duplicate_record_in_one_event_is_processed_once():
    event = load_event("put_single.json")
    event["Records"].append(event["Records"][0])
    invocation, lines, gateway, _ = make_invocation(Settings(dest_prefix="superres/", skip_existing=False))
    handle_event(event, CONTEXT, invocation)
    assert [line["reason"] for line in lines] == ["processed", "duplicate_record"]
    assert len(gateway.calls) == 1


def test_transient_failure_is_retried_then_succeeds():
    gateway = FakeGateway(failures={"uploads/astronaut.jpg": [CosCallError("busy", code="SlowDown", status=503)] * 2})
    invocation, lines, _, clock = make_invocation(gateway=gateway)
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["outcome"] == "processed" and lines[0]["attempts"] == 3
    assert len(clock.sleeps) == 2


def test_permanent_failure_is_logged_not_raised_and_not_retried():
    gateway = FakeGateway(failures={"uploads/coffee.png": [CosCallError("no", code="ImageTooLarge", status=400)]})
    invocation, lines, _, clock = make_invocation(gateway=gateway)
    summary = handle_event(load_event("three_records.json"), CONTEXT, invocation)
    assert [line["outcome"] for line in lines] == ["processed", "failed", "processed"]
    assert lines[1]["error"]["code"] == "ImageTooLarge" and lines[1]["level"] == "ERROR"
    assert lines[1]["attempts"] == 1 and clock.sleeps == []
    assert summary["failed"] == 1 and summary["processed"] == 2


def test_transient_failure_past_the_time_limit_raises_after_other_records():
    errors = [CosCallError("down", code="ServiceUnavailable", status=503) for _ in range(100)]
    gateway = FakeGateway(failures={"uploads/astronaut.jpg": errors})
    invocation, lines, _, clock = make_invocation(gateway=gateway)
    with pytest.raises(RecordsFailedError, match="uploads/astronaut.jpg"):
        handle_event(load_event("three_records.json"), {"request_id": "r", "time_limit_in_ms": 3000}, invocation)
    assert [line["outcome"] for line in lines] == ["failed", "processed", "processed"]
    assert lines[0]["error"]["retryable"] is True
    assert clock.now - 1000.0 <= 3.0


def test_unexpected_exception_in_one_record_does_not_stop_the_others():
    def boom():
        if len(gateway.calls) == 1:
            raise RuntimeError("bug")

    gateway = FakeGateway(on_call=boom)
    invocation, lines, _, _ = make_invocation(gateway=gateway)
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("three_records.json"), CONTEXT, invocation)
    assert [line["outcome"] for line in lines] == ["failed", "processed", "processed"]
    assert lines[0]["error"]["code"] == "InternalError"


def test_one_log_line_per_record_and_no_authorization_or_secret_in_logs():
    invocation, lines, _, _ = make_invocation()
    for path in sorted(EVENTS.glob("*.json")):
        handle_event(json.loads(path.read_text()), CONTEXT, invocation)
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    assert "q-signature" not in text and "q-ak" not in text and "Authorization" not in text
    expected_lines = sum(len(v) for v in EXPECTED.values()) + len(WHOLE_EVENT_INVALID)
    assert len(lines) == expected_lines


def test_context_without_time_limit_or_not_a_dict_still_works():
    invocation, lines, _, _ = make_invocation()
    handle_event(load_event("put_single.json"), None, invocation)
    assert lines[0]["outcome"] == "processed" and lines[0]["request_id"] == ""


def test_each_request_timeout_is_bounded_by_the_time_left():
    invocation, lines, gateway, clock = make_invocation()
    handle_event(load_event("put_single.json"), {"request_id": "r", "time_limit_in_ms": 10_000}, invocation)
    (timeout,) = gateway.timeouts
    assert 0 < timeout <= 9.0  # 10 s limit less the 1 s margin
