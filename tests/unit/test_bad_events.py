"""Malformed and tricky events through the whole pipeline (fake gateway): never an unhandled exception, one outcome
line per record (or one `invalid_event` line when the event is not a COS event), typed errors naming the field.
Plus property-based fuzzing of the parser and of handle_event."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from superres_fn import EventError, RecordsFailedError, Settings, emit_stdout, handle_event, iter_records, parse_record

from tests.conftest import EVENTS, load_event
from tests.unit.fakes import make_invocation

PREFIX = "/1250000000/photos/"
URL = "http://photos-1250000000.cos.ap-guangzhou.myqcloud.com/"


def _record(key: str = "uploads/a.jpg") -> dict:
    record = copy.deepcopy(load_event("put_single.json")["Records"][0])
    record["cos"]["cosObject"]["key"] = PREFIX + key
    record["cos"]["cosObject"].pop("url")
    return record


def _with(path: str, value: object, *, key: str = "uploads/a.jpg") -> dict:
    """A one-record event with the field at dotted `path` replaced (or removed when value is _MISSING)."""
    record = _record(key)
    *parents, last = path.split(".")
    node = record
    for name in parents:
        node = node[name]
    if value is _MISSING:
        del node[last]
    else:
        node[last] = value
    return {"Records": [record]}


_MISSING = object()


def _deep(depth: int, kind: type = list) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value] if kind is list else {"a": value}
    return value


@dataclass(frozen=True)
class Expect:
    """`records` outcome lines, or one invalid_event line; `field` of the (first) invalid record; `reasons` in order."""

    event_invalid: bool = False
    records: int = 1
    field: str | None = None
    reasons: tuple[str, ...] | None = None


NOT_COS = Expect(event_invalid=True)


def _invalid(field: str) -> Expect:
    return Expect(field=field, reasons=("invalid_record",))


def _reasons(*reasons: str) -> Expect:
    return Expect(records=len(reasons), reasons=reasons)


API_GATEWAY = {"requestContext": {"serviceId": "service-x", "path": "/", "httpMethod": "GET"}, "httpMethod": "GET",
               "path": "/", "headers": {"host": "example.com"}, "queryString": {}, "body": None}
CKAFKA = {"Records": [{"Ckafka": {"topic": "uploads", "partition": 1, "offset": 36, "msgKey": "k",
                                  "msgBody": "{\"key\": \"uploads/a.jpg\"}"}}]}
CMQ = {"Records": [{"CMQ": {"type": "topic", "topicOwner": 1250000000, "topicName": "t", "subscriptionName": "s",
                            "msgId": "1", "msgBody": "hello"}}]}
HUGE_10K = "uploads/" + "k" * 10_000 + ".jpg"
HUGE_1M = "uploads/" + "m" * 1_000_000 + ".jpg"

CASES: dict[str, tuple[Callable[[], object], Expect]] = {
    # ---- not a COS event at all: one invalid_event line
    "event_null": (lambda: None, NOT_COS),
    "event_list": (lambda: [_record()], NOT_COS),
    "event_string": (lambda: "Records", NOT_COS),
    "event_number": (lambda: 42, NOT_COS),
    "event_empty_object": (lambda: {}, NOT_COS),
    "records_null": (lambda: {"Records": None}, NOT_COS),
    "records_object": (lambda: {"Records": {"0": _record()}}, NOT_COS),
    "records_string": (lambda: {"Records": json.dumps([_record()])}, NOT_COS),
    "records_number": (lambda: {"Records": 0}, NOT_COS),
    "records_bool": (lambda: {"Records": True}, NOT_COS),
    "records_empty": (lambda: {"Records": []}, NOT_COS),
    "records_lowercase_name": (lambda: {"records": [_record()]}, NOT_COS),
    "timer_trigger": (lambda: load_event("not_cos_timer.json"), NOT_COS),
    "api_gateway": (lambda: API_GATEWAY, NOT_COS),
    # ---- Records of another trigger's shape: one invalid line per record
    "ckafka_records": (lambda: CKAFKA, _invalid("cos")),
    "cmq_records": (lambda: CMQ, _invalid("cos")),
    # ---- wrong types at every level
    "record_null": (lambda: {"Records": [None]}, _invalid("Records[]")),
    "record_string": (lambda: {"Records": ["cos"]}, _invalid("Records[]")),
    "record_number": (lambda: {"Records": [7]}, _invalid("Records[]")),
    "record_list": (lambda: {"Records": [[_record()]]}, _invalid("Records[]")),
    "cos_missing": (lambda: _with("cos", _MISSING), _invalid("cos")),
    "cos_null": (lambda: _with("cos", None), _invalid("cos")),
    "cos_list": (lambda: _with("cos", []), _invalid("cos")),
    "event_section_missing": (lambda: _with("event", _MISSING), _invalid("event")),
    "event_section_string": (lambda: _with("event", "cos:ObjectCreated:Put"), _invalid("event")),
    "bucket_null": (lambda: _with("cos.cosBucket", None), _invalid("cos.cosBucket")),
    "object_string": (lambda: _with("cos.cosObject", "uploads/a.jpg"), _invalid("cos.cosObject")),
    "nested_nulls": (lambda: {"Records": [{"cos": {"cosBucket": None, "cosObject": None}, "event": None}]},
                     _invalid("event")),
    "appid_missing": (lambda: _with("cos.cosBucket.appid", _MISSING), _invalid("cos.cosBucket.appid")),
    "appid_bool": (lambda: _with("cos.cosBucket.appid", True), _invalid("cos.cosBucket.appid")),
    "appid_float": (lambda: _with("cos.cosBucket.appid", 1250000000.0), _invalid("cos.cosBucket.appid")),
    "bucket_name_empty": (lambda: _with("cos.cosBucket.name", ""), _invalid("cos.cosBucket.name")),
    "key_missing": (lambda: _with("cos.cosObject.key", _MISSING), _invalid("cos.cosObject.key")),
    "key_number": (lambda: _with("cos.cosObject.key", 12345), _invalid("cos.cosObject.key")),
    "key_nul": (lambda: _with("cos.cosObject.key", PREFIX + "uploads/a\x00.jpg"), _invalid("cos.cosObject.key")),
    "key_newline": (lambda: _with("cos.cosObject.key", PREFIX + "uploads/a\n.jpg"), _invalid("cos.cosObject.key")),
    "key_lone_surrogate": (lambda: _with("cos.cosObject.key", PREFIX + "uploads/\ud800.jpg"),
                           _invalid("cos.cosObject.key")),
    "key_other_bucket": (lambda: _with("cos.cosObject.key", "/1250000000/other/uploads/a.jpg"),
                         _invalid("cos.cosObject.key")),
    "key_is_the_bucket": (lambda: _with("cos.cosObject.key", PREFIX), _invalid("cos.cosObject.key")),
    "size_negative": (lambda: _with("cos.cosObject.size", -1), _invalid("cos.cosObject.size")),
    "size_negative_string": (lambda: _with("cos.cosObject.size", "-5"), _invalid("cos.cosObject.size")),
    "size_float": (lambda: _with("cos.cosObject.size", 12.5), _invalid("cos.cosObject.size")),
    "size_bool": (lambda: _with("cos.cosObject.size", True), _invalid("cos.cosObject.size")),
    "size_word": (lambda: _with("cos.cosObject.size", "big"), _invalid("cos.cosObject.size")),
    "size_superscript_digit": (lambda: _with("cos.cosObject.size", "\u00b2"), _invalid("cos.cosObject.size")),
    "size_5000_digits": (lambda: _with("cos.cosObject.size", "9" * 5000), _invalid("cos.cosObject.size")),
    "size_null": (lambda: _with("cos.cosObject.size", None), _invalid("cos.cosObject.size")),
    "time_superscript_digit": (lambda: _with("event.eventTime", "\u00b9"), _invalid("event.eventTime")),
    "time_5000_digits": (lambda: _with("event.eventTime", "9" * 5000), _invalid("event.eventTime")),
    "time_nan": (lambda: _with("event.eventTime", float("nan")), _invalid("event.eventTime")),
    "time_infinite": (lambda: _with("event.eventTime", float("inf")), _invalid("event.eventTime")),
    "time_huge_int": (lambda: _with("event.eventTime", 10**30), _invalid("event.eventTime")),
    "time_words": (lambda: _with("event.eventTime", "yesterday"), _invalid("event.eventTime")),
    "time_bool": (lambda: _with("event.eventTime", False), _invalid("event.eventTime")),
    "event_name_null": (lambda: _with("event.eventName", None), _invalid("event.eventName")),
    "event_name_number": (lambda: _with("event.eventName", 1), _invalid("event.eventName")),
    "url_unbalanced_ipv6": (lambda: _with("cos.cosObject.url", "http://[abc/uploads/a.jpg"),
                            _invalid("cos.cosObject.url")),
    "url_number": (lambda: _with("cos.cosObject.url", 5), _invalid("cos.cosObject.url")),
    # The key is the object's name: a url naming another key is noted in the line, not a reason to drop the upload.
    "url_other_object": (lambda: _with("cos.cosObject.url", URL + "uploads/b.jpg"), _reasons("processed")),
    # Nested far past Python's recursion limit: repr() of such a value raises RecursionError.
    "deep_list_event_time": (lambda: _with("event.eventTime", _deep(5000)), _invalid("event.eventTime")),
    "deep_dict_size": (lambda: _with("cos.cosObject.size", _deep(5000, dict)), _invalid("cos.cosObject.size")),
    "deep_list_key": (lambda: _with("cos.cosObject.key", _deep(5000)), _invalid("cos.cosObject.key")),
    "deep_list_record": (lambda: {"Records": [_deep(5000)]}, Expect(field="Records[]", reasons=("invalid_record",))),
    "deep_meta_ignored": (lambda: _with("cos.cosObject.meta", _deep(5000, dict)), _reasons("processed")),
    "deep_records": (lambda: {"Records": _deep(5000)}, Expect(field="Records[]", reasons=("invalid_record",))),
    "vid_number": (lambda: _with("cos.cosObject.vid", 3), _invalid("cos.cosObject.vid")),
    "region_lone_surrogate_falls_back": (lambda: _with("cos.cosBucket.cosRegion", "\udfff"), _reasons("processed")),
    # ---- tricky but valid
    "numbers_as_strings": (
        lambda: {"Records": [_with("cos.cosObject.size", "48213")["Records"][0]
                             | {"event": {**_record()["event"], "eventTime": "1763971200"}}]},
        _reasons("processed"),
    ),
    "appid_as_int": (lambda: _with("cos.cosBucket.appid", 1250000000), _reasons("processed")),
    "meta_as_list": (lambda: _with("cos.cosObject.meta", ["ETag"]), _reasons("processed")),
    "key_10kb": (lambda: _with("cos.cosObject.key", PREFIX + HUGE_10K), _reasons("destination_key_too_long")),
    "key_1mb": (lambda: _with("cos.cosObject.key", PREFIX + HUGE_1M), _reasons("destination_key_too_long")),
    "key_control_characters": (lambda: _with("cos.cosObject.key", PREFIX + "uploads/\x01\x1b[31m\x7f.jpg"),
                               _reasons("processed")),
    "key_dot_segments": (lambda: _with("cos.cosObject.key", PREFIX + "uploads/../../etc/passwd.png"),
                         _reasons("unsafe_key")),
    "key_emoji_and_cjk": (lambda: _with("cos.cosObject.key", PREFIX + "uploads/猫😀.png"), _reasons("processed")),
    "unknown_fields": (lambda: {"Records": [_record() | {"extra": {"x": [1, None]}}], "Other": 1},
                       _reasons("processed")),
    "object_removed": (lambda: _with("event.eventName", "cos:ObjectRemove:Delete"), _reasons("not_object_created")),
    "duplicate_records": (lambda: {"Records": [_record(), _record()]}, _reasons("processed", "duplicate_record")),
    "valid_invalid_valid": (lambda: {"Records": [_record("uploads/1.jpg"), None, _record("uploads/2.jpg")]},
                            Expect(records=3, field="Records[]", reasons=("processed", "invalid_record", "processed"))),
    "thousand_records": (lambda: {"Records": [_record(f"uploads/{i}.jpg") for i in range(1000)]},
                         _reasons(*["processed"] * 1000)),
    "thousand_duplicates": (lambda: {"Records": [_record()] * 1000},
                            _reasons("processed", *["duplicate_record"] * 999)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_event_gets_one_outcome_line_per_record_and_no_exception(name: str, capsys: pytest.CaptureFixture):
    make_event, expect = CASES[name]
    invocation, lines, gateway, _ = make_invocation()
    summary = handle_event(make_event(), {"request_id": "req-1"}, invocation)

    if expect.event_invalid:
        assert len(lines) == 1
        (line,) = lines
        assert line["reason"] == "invalid_event" and line["outcome"] == "invalid"
        assert line["error"]["code"] == "InvalidEvent" and line["error"]["field"] == "Records"
        assert gateway.calls == []
    else:
        assert [line["index"] for line in lines] == list(range(expect.records))
        if expect.reasons is not None:
            assert tuple(line["reason"] for line in lines) == expect.reasons
        invalid = [line for line in lines if line["outcome"] == "invalid"]
        for line in invalid:
            assert line["error"]["code"] == "InvalidEvent" and line["error"]["retryable"] is False
            assert isinstance(line["error"]["field"], str) and line["error"]["field"]
        if expect.field is not None:
            assert invalid[0]["error"]["field"] == expect.field
        assert summary["processed"] == len(gateway.calls)
    # every line can be written by the real emitter, as exactly one line
    for line in lines:
        emit_stdout(line)
    assert capsys.readouterr().out.count("\n") == len(lines)


def test_there_are_at_least_forty_bad_event_cases():
    assert len(CASES) >= 40


# ---- property-based fuzzing -------------------------------------------------------------------------------------

# Text including lone surrogates and control characters: JSON can carry both ("\ud800", "\u0000").
_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=20,
)
SAMPLES = sorted(path.name for path in Path(EVENTS).glob("*.json"))
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow])


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of dict keys and list indexes) inside a JSON value, the root included; not below depth 12
    (a value made deep by an earlier mutation is not walked to its bottom)."""
    found = [prefix]
    if len(prefix) >= 12:
        return found
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_events(draw: st.DrawFn) -> object:
    """A sample event with one to three of its fields replaced by arbitrary JSON, deleted, or duplicated."""
    event: object = load_event(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(event)))
        action = draw(st.sampled_from(["replace", "delete", "stringify", "wrap", "duplicate", "deep"]))
        if not path:
            event = draw(JSON_VALUES) if action == "replace" else event
            continue
        parent = event
        for step in path[:-1]:
            parent = parent[step]  # type: ignore[index]
        last = path[-1]
        value = parent[last]  # type: ignore[index]
        if action == "replace":
            parent[last] = draw(JSON_VALUES)  # type: ignore[index]
        elif action == "delete":
            del parent[last]  # type: ignore[union-attr]
        elif action == "stringify":
            parent[last] = json.dumps(value)  # type: ignore[index]
        elif action == "wrap":
            parent[last] = [value]  # type: ignore[index]
        elif action == "deep":
            parent[last] = _deep(draw(st.sampled_from([100, 1500, 5000])), draw(st.sampled_from([list, dict])))
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(value))
    return event


def _parse_all(event: object) -> None:
    try:
        for slot in iter_records(event):
            assert (slot.record is None) != (slot.error is None)
            if slot.error is not None:
                assert isinstance(slot.error, EventError) and slot.error.field
    except EventError as exc:
        assert exc.field == "Records"


@FUZZ
@given(JSON_VALUES)
def test_fuzz_parser_raises_only_event_error_on_arbitrary_json(value: object):
    _parse_all(value)
    _parse_all({"Records": [value]})
    try:
        parse_record(value)
    except EventError as exc:
        assert exc.field


@FUZZ
@given(mutated_events())
def test_fuzz_parser_raises_only_event_error_on_mutated_samples(event: object):
    _parse_all(event)


def _check_handle_event(event: object) -> None:
    invocation, lines, _, _ = make_invocation()
    try:
        handle_event(event, {"request_id": "fuzz"}, invocation)
    except RecordsFailedError:  # pragma: no cover - the fake gateway always succeeds
        pytest.fail("RecordsFailedError with an always-succeeding gateway")
    try:
        records = len(list(iter_records(event, default_region="ap-guangzhou")))
    except EventError:
        assert len(lines) == 1 and lines[0]["reason"] == "invalid_event"
    else:
        assert [line["index"] for line in lines] == list(range(records))
        assert all(line["outcome"] in ("processed", "skipped", "invalid") for line in lines)


@FUZZ
@given(JSON_VALUES)
def test_fuzz_handle_event_never_raises_on_arbitrary_json(value: object):
    _check_handle_event(value)
    _check_handle_event({"Records": [value, value]})


@FUZZ
@given(mutated_events())
def test_fuzz_handle_event_never_raises_on_mutated_samples(event: object):
    _check_handle_event(event)


def test_url_naming_another_key_uses_the_key_and_says_so():
    invocation, lines, gateway, _ = make_invocation()
    handle_event(_with("cos.cosObject.url", URL + "uploads/b.jpg"), {}, invocation)
    (line,) = lines
    assert line["outcome"] == "processed" and line["key"] == "uploads/a.jpg"
    assert "used the key" in line["warning"] and "uploads/b.jpg" in line["warning"]
    assert [call[1] for call in gateway.calls] == ["uploads/a.jpg"]


def test_invalid_record_hint_key_with_lone_surrogate_is_loggable(capsys: pytest.CaptureFixture):
    event = _with("cos.cosObject.size", "big", key="uploads/\udc80.jpg")
    invocation, lines, _, _ = make_invocation()
    handle_event(event, {}, invocation)
    (line,) = lines
    assert line["reason"] == "invalid_record" and line["key"] == PREFIX + "uploads/\\udc80.jpg"
    emit_stdout(line)
    assert json.loads(capsys.readouterr().out)["key"] == line["key"]


def test_emit_stdout_writes_a_line_even_for_lone_surrogates(capsys: pytest.CaptureFixture):
    emit_stdout({"key": "a\ud800b"})
    assert json.loads(capsys.readouterr().out) == {"key": "a\ud800b"}


def test_settings_without_region_make_a_regionless_record_invalid():
    event = _with("cos.cosBucket.cosRegion", _MISSING)
    del event["Records"][0]["cos"]["cosBucket"]["s3Region"]
    invocation, lines, _, _ = make_invocation(Settings(dest_prefix="superres/"))
    handle_event(event, {}, invocation)
    assert lines[0]["error"]["field"] == "cos.cosBucket.cosRegion"
