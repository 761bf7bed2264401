"""The diff planner: a streaming merge of sorted sources with one sorted listing per output, the freshness rule,
the function's own filters, and the documented rate limits by region."""

from __future__ import annotations

import pytest
from superres_fn import load_settings
from superres_fn.config import Output

from superres.backfill.plan import (
    ListedObject,
    ci_rate_limit,
    estimated_output_bytes,
    is_fresh,
    outputs_for,
    parse_last_modified,
    plan,
)


def _output(bucket: str, prefix: str, magnify: int = 2) -> Output:
    """One output of the function (superres_fn.config.Output), in `bucket`."""
    return Output(prefix, magnify, bucket=bucket)


SETTINGS = load_settings({"DEST_PREFIX": "superres/"})
BUCKET = "photos-1250000000"


def _plan(sources: list[ListedObject], *listings: list[ListedObject], outputs: list[Output] | None = None):  # type: ignore[no-untyped-def]
    outs = outputs or [_output(BUCKET, "superres/")]
    return [(item.obj.key, item.action, item.reason, item.todo)
            for item in plan(sources, list(listings), outs, SETTINGS, bucket=BUCKET, region="ap-guangzhou")]


def src(key: str, modified: float | None = 1000.0, size: int = 10) -> ListedObject:
    """A listed object; results (keys with a folder) default to a second after the sources."""
    if modified == 1000.0 and "/" in key:
        modified = 1001.0
    return ListedObject(key, size, '"e"', modified)


def test_only_a_result_strictly_newer_than_its_source_is_not_a_candidate() -> None:
    assert not is_fresh(1000.9, 1000.1)  # same second: may predate a re-upload within it; the function decides
    assert is_fresh(1001.0, 1000.9)
    assert not is_fresh(999.99, 1000.0)
    assert not is_fresh(None, 1000.0) and not is_fresh(5.0, None)  # unknown times: a candidate


def test_missing_stale_and_done_results_are_found_by_one_merge() -> None:
    sources = [src("a.jpg"), src("b.jpg"), src("c.jpg"), src("d.jpg")]
    results = [src("superres/b.jpg.png", 1001.5), src("superres/bb.jpg.png"), src("superres/c.jpg.png", 999.0)]
    assert _plan(sources, results) == [
        ("a.jpg", "process", "missing", ("superres/a.jpg.png",)),
        ("b.jpg", "confirm", "found", ("superres/b.jpg.png",)),
        ("c.jpg", "process", "stale", ("superres/c.jpg.png",)),
        ("d.jpg", "process", "missing", ("superres/d.jpg.png",)),
    ]


def test_each_output_is_diffed_on_its_own_listing() -> None:
    outputs = [_output(BUCKET, "x2/", 2), _output(BUCKET, "x4/", 4)]
    sources = [src("a.png"), src("b.png")]
    assert _plan(sources, [src("x2/a.png.png"), src("x2/b.png.png")], [src("x4/b.png.png")], outputs=outputs) == [
        ("a.png", "process", "missing", ("x4/a.png.png",)),
        ("b.png", "confirm", "found", ("x2/b.png.png", "x4/b.png.png")),
    ]


def test_the_functions_own_filters_decide_what_is_an_image_to_process() -> None:
    sources = [src("a.txt"), src("b.png", size=0), src("superres/c.png"), src("x/../d.png")]
    assert [(k, a, r) for k, a, r, _ in _plan(sources, [])] == [
        ("a.txt", "skip", "suffix_not_accepted"),
        ("b.png", "skip", "empty_object"),
        ("superres/c.png", "skip", "under_destination_prefix"),
        ("x/../d.png", "skip", "unsafe_key"),
    ]


def test_unsorted_sources_are_refused() -> None:
    with pytest.raises(ValueError, match="not sorted"):
        _plan([src("b.png"), src("a.png")], [])


def test_cjk_keys_merge_in_utf8_byte_order_as_cos_lists_them() -> None:
    keys = sorted(["z.png", "照片.png", "ａ.png", "a.png"], key=lambda k: k.encode())
    assert keys == sorted(keys)  # Python's str order is UTF-8 byte order
    results = sorted((f"superres/{k}.png" for k in keys), key=lambda k: k.encode())
    plans = _plan([src(k) for k in keys], [src(k) for k in results])
    assert all(reason == "found" for _k, _a, reason, _t in plans)


def test_ci_rate_limit_follows_the_region() -> None:
    assert ci_rate_limit("ap-guangzhou") == ci_rate_limit("ap-beijing") == 100
    assert ci_rate_limit("ap-shanghai-fsi") == ci_rate_limit("ap-shenzhen-fsi") == 50
    assert ci_rate_limit("ap-singapore") == ci_rate_limit("na-siliconvalley") == ci_rate_limit("ap-hongkong") == 50


def test_outputs_come_from_the_single_output_settings() -> None:
    settings = load_settings({"DEST_PREFIX": "out/", "MAGNIFY": "4", "DEST_BUCKET": "results-1250000000"})
    assert outputs_for(settings, BUCKET) == [_output("results-1250000000", "out/", 4)]
    assert outputs_for(SETTINGS, BUCKET) == [_output(BUCKET, "superres/", 2)]


def test_output_bytes_estimate_scales_with_magnify_squared_and_format() -> None:
    assert estimated_output_bytes(src("a.jpg", size=100), [_output(BUCKET, "x/", 2)]) == 100 * 8 * 4
    assert estimated_output_bytes(src("a.png", size=100), [_output(BUCKET, "x/", 4)]) == 100 * 16


def test_last_modified_parses_cos_listing_and_inventory_formats() -> None:
    assert parse_last_modified("1970-01-01T00:00:10.000Z") == 10.0
    assert parse_last_modified("1970-01-01T00:00:10+00:00") == 10.0
    assert parse_last_modified("Thu, 01 Jan 1970 00:00:10 GMT") == 10.0
    assert parse_last_modified("10") == 10.0
    assert parse_last_modified("") is None and parse_last_modified("soon") is None


def test_outputs_follow_the_outputs_setting() -> None:
    settings = load_settings({"DEST_PREFIX": "out/", "OUTPUTS": "x2/:2,x4/:4:webp:80"})
    assert outputs_for(settings, BUCKET) == [_output(BUCKET, "out/x2/", 2),
                                             Output("out/x4/", 4, "webp", 80, bucket=BUCKET)]
