from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from superres_fn import EventError, iter_records, parse_record

from tests.conftest import load_event


def _records(name: str, **kwargs):
    return [slot.record for slot in iter_records(load_event(name), **kwargs)]


def test_real_capture_uses_cos_region_and_strips_appid_bucket_prefix():
    (record,) = _records("real_capture_2022.json")
    assert record.bucket == "photos-1250000000"
    assert record.region == "ap-guangzhou"
    assert record.key == "uploads/rocket.jpg"
    assert record.raw_key == "/1250000000/photos/uploads/rocket.jpg"
    assert record.event_time == datetime.fromtimestamp(1650016156, tz=timezone.utc)
    assert record.etag == '"9a0364b9e99bb480dd25e1f0284c8555"'


def test_every_record_is_parsed_not_only_the_first():
    keys = [r.key for r in _records("three_records.json")]
    assert keys == ["uploads/astronaut.jpg", "uploads/coffee.png", "uploads/chelsea.jpg"]


def test_tricky_keys_are_raw_utf8_and_not_decoded_twice():
    keys = [r.key for r in _records("tricky_keys.json")]
    assert keys == [
        "uploads/a b.jpg",
        "uploads/a+b.jpg",
        "uploads/100%.jpg",
        "uploads/#1.png",
        "uploads/why?.png",
        "uploads/猫 照片.jpg",
        "uploads/😀.webp",
    ]


def test_key_with_literal_percent_sequence_is_not_decoded():
    event = load_event("put_single.json")
    obj = event["Records"][0]["cos"]["cosObject"]
    obj["key"] = "/1250000000/photos/uploads/a%20b.jpg"
    obj["url"] = "http://photos-1250000000.cos.ap-guangzhou.myqcloud.com/uploads/a%2520b.jpg"
    assert parse_record(event["Records"][0]).key == "uploads/a%20b.jpg"


def test_percent_encoded_key_shape_is_decoded_once_when_url_agrees():
    (record,) = _records("encoded_key_shape.json")
    assert record.key == "uploads/a b.jpg"


def test_key_and_url_naming_different_objects_falls_back_to_the_key_with_a_warning():
    event = load_event("put_single.json")
    event["Records"][0]["cos"]["cosObject"]["url"] = "http://photos-1250000000.cos.ap-guangzhou.myqcloud.com/other.jpg"
    record = parse_record(event["Records"][0])
    assert record.key == "uploads/astronaut.jpg"
    assert "'other.jpg'" in record.warning and "used the key" in record.warning


def test_key_without_url_is_taken_raw():
    event = load_event("put_single.json")
    del event["Records"][0]["cos"]["cosObject"]["url"]
    assert parse_record(event["Records"][0]).key == "uploads/astronaut.jpg"


def test_key_outside_appid_bucket_prefix_is_a_typed_error():
    event = load_event("put_single.json")
    event["Records"][0]["cos"]["cosObject"]["key"] = "/999/other/uploads/x.jpg"
    with pytest.raises(EventError, match="does not start with"):
        parse_record(event["Records"][0])


def test_region_falls_back_to_tencentcloud_region_then_url_host():
    raw = load_event("post.json")["Records"][0]
    assert parse_record(raw, default_region="ap-shanghai").region == "ap-shanghai"
    assert parse_record(raw).region == "ap-guangzhou"  # from the url host
    no_url = copy.deepcopy(raw)
    del no_url["cos"]["cosObject"]["url"]
    with pytest.raises(EventError) as info:
        parse_record(no_url)
    assert "region" in info.value.message


def test_cos_region_wins_over_default_region():
    raw = load_event("put_single.json")["Records"][0]
    assert parse_record(raw, default_region="ap-beijing").region == "ap-guangzhou"


def test_iso_event_time_is_accepted():
    (record,) = _records("iso_event_time.json")
    assert record.event_time == datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", [[1], {"t": 1}, "yesterday", True, None, 10**20])
def test_bad_event_time_names_the_field(value):
    raw = load_event("put_single.json")["Records"][0]
    raw["event"]["eventTime"] = value
    with pytest.raises(EventError) as info:
        parse_record(raw)
    assert info.value.field == "event.eventTime"


def test_malformed_record_is_a_per_record_error_naming_the_field():
    (slot,) = list(iter_records(load_event("malformed.json")))
    assert slot.record is None
    assert isinstance(slot.error, EventError)
    assert slot.error.field == "cos.cosObject.key"
    assert "Records[0]" in slot.error.message


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        (load_event("not_cos_timer.json"), "no 'Records'"),
        ({"Records": []}, "empty"),
        ({"Records": {"a": 1}}, "must be a list"),
        ([], "JSON object"),
        ("Records", "JSON object"),
        (None, "JSON object"),
    ],
)
def test_non_cos_events_raise_a_typed_error(event, needle):
    with pytest.raises(EventError, match=needle) as info:
        list(iter_records(event))
    assert info.value.field == "Records"


def test_appid_as_integer_and_size_as_digit_string_are_accepted():
    raw = load_event("put_single.json")["Records"][0]
    raw["cos"]["cosBucket"]["appid"] = 1250000000
    raw["cos"]["cosObject"]["size"] = "48213"
    record = parse_record(raw)
    assert record.bucket == "photos-1250000000"
    assert record.size == 48213


def test_control_characters_in_key_are_refused():
    raw = load_event("put_single.json")["Records"][0]
    raw["cos"]["cosObject"]["key"] = "/1250000000/photos/a\nb.jpg"
    del raw["cos"]["cosObject"]["url"]
    with pytest.raises(EventError, match="line-break"):
        parse_record(raw)
