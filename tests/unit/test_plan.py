from __future__ import annotations

import json

import pytest
from superres_fn import Settings, decide, parse_record, pic_operations_for

from tests.conftest import load_event

SETTINGS = Settings(dest_prefix="superres/", region="ap-guangzhou")


def _record(name: str = "put_single.json", **changes):
    raw = load_event(name)["Records"][0]
    obj = raw["cos"]["cosObject"]
    if "key" in changes:
        obj["key"] = "/1250000000/photos/" + changes.pop("key")
        obj.pop("url", None)
    obj.update(changes)
    return parse_record(raw)


@pytest.mark.parametrize(
    ("event_file", "reason"),
    [
        ("object_remove.json", "not_object_created"),
        ("under_dest_prefix.json", "under_destination_prefix"),
        ("non_image.json", "suffix_not_accepted"),
        ("oversize.json", "too_large"),
        ("folder_marker.json", "folder_marker"),
    ],
)
def test_skip_reasons_from_sample_events(event_file, reason):
    decision = decide(_record(event_file), SETTINGS)
    assert not decision.should_process
    assert decision.reason == reason


def test_zero_bytes_is_skipped():
    assert decide(_record(size=0), SETTINGS).reason == "empty_object"


def test_suffix_match_is_case_insensitive_and_needs_a_dot():
    assert decide(_record(key="a/B.JPG"), SETTINGS).should_process
    assert decide(_record(key="a/jpg"), SETTINGS).reason == "suffix_not_accepted"
    assert decide(_record(key="a.jpg/readme"), SETTINGS).reason == "suffix_not_accepted"


def test_duplicate_record_is_skipped():
    assert decide(_record(), SETTINGS, duplicate=True).reason == "duplicate_record"


def test_destination_key_over_cos_limit_is_skipped():
    assert decide(_record(key="k" * 846 + ".jpg"), SETTINGS).reason == "destination_key_too_long"


def pic_operations(decision, record_bucket: str, magnify: int) -> str:
    """The header the function sends for its one default output."""
    rule = f"ci-process=AISuperResolution&magnify={magnify}"
    return pic_operations_for([(decision.dest_bucket, decision.dest_key, rule)], record_bucket=record_bucket)


def test_pic_operations_fileid_is_absolute_under_dest_prefix():
    record = _record(key="a b/猫.jpg")
    ops = json.loads(pic_operations(decide(record, SETTINGS), record.bucket, 4))
    assert ops == {
        "is_pic_info": 1,
        "rules": [{"fileid": "/superres/a b/猫.jpg.png", "rule": "ci-process=AISuperResolution&magnify=4"}],
    }


def test_pic_operations_names_destination_bucket_when_set():
    record = _record()
    settings = SETTINGS.with_overrides(dest_bucket="results-1250000000")
    decision = decide(record, settings)
    ops = json.loads(pic_operations(decision, record.bucket, 2))
    assert decision.dest_bucket == "results-1250000000"
    assert ops["rules"][0]["bucket"] == "results-1250000000"


def test_pic_operations_header_is_ascii_even_for_cjk_and_emoji_keys():
    record = _record(key="猫/😀 a.jpg")
    header = pic_operations(decide(record, SETTINGS), record.bucket, 2)
    assert header.isascii()
    assert json.loads(header)["rules"][0]["fileid"] == "/superres/猫/😀 a.jpg.png"


@pytest.mark.parametrize("key", ["uploads/../../important.jpg", "uploads/a/../b.png", "uploads/./a.jpg", "../x.jpg"])
def test_keys_with_dot_segments_are_skipped_so_results_cannot_escape_dest_prefix(key):
    decision = decide(_record(key=key), SETTINGS)
    assert decision.reason == "unsafe_key"


def test_dots_inside_names_are_fine():
    assert decide(_record(key="uploads/..hidden/a..b.jpg"), SETTINGS).should_process
