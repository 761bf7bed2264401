"""Several outputs per upload (OUTPUTS): one CI call for every super-resolution, a conversion call per output with a
format, skip-if-done and freshness per output, ambiguity per rule. Pure logic with an injected fake gateway (the
same against the stand-in: tests/integration/test_outputs_e2e.py)."""

from __future__ import annotations

import json

import pytest
from superres_fn import ConfigError, CosCallError, RecordsFailedError, handle_event, load_settings, plan_targets
from superres_fn.targets import claim_root, source_folder

from tests.conftest import load_event
from tests.unit.fakes import make_invocation

CONTEXT = {"request_id": "req-1", "time_limit_in_ms": 30_000}
BUCKET = "photos-1250000000"
X2 = "superres/x2/uploads/astronaut.jpg.png"
X4 = "superres/x4/uploads/astronaut.jpg.webp"  # RESULT_NAMES=append: the result format's extension is appended
X4_JPG = "superres/x4/uploads/astronaut.jpg.jpg"
X4_PNG = "superres/x4/uploads/astronaut.jpg.png"


def _settings(outputs: str = "x2/:2,x4/:4:webp:80", **env: str):
    return load_settings({"DEST_PREFIX": "superres/", "OUTPUTS": outputs, "TENCENTCLOUD_REGION": "ap-guangzhou",
                          **env})


def _rules(call: tuple) -> list[tuple[str, str]]:
    return [(rule["fileid"], rule["rule"]) for rule in json.loads(call[3])["rules"]]


VERSION = "9a0364b9e99bb480dd25e1f0284c8555"  # put_single.json's ETag


def _targets(settings):
    return {t.key: t for t in plan_targets(BUCKET, "uploads/astronaut.jpg", settings)}


def _staged(settings, key: str, fmt: str | None = None) -> str:
    return _targets(settings)[key].staged(settings, source_folder(BUCKET, "uploads/astronaut.jpg"), VERSION, fmt)


def _stamp(rule: str) -> dict[str, str]:
    return {"x-cos-meta-superres-source": VERSION, "x-cos-meta-superres-rule": rule}


def test_two_outputs_are_one_super_resolution_call_and_one_conversion():
    settings = _settings()
    invocation, lines, gateway, _ = make_invocation(settings)
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    png2, png4, webp4 = _staged(settings, X2), _staged(settings, X4, "png"), _staged(settings, X4)
    first, second = gateway.calls
    assert first[1] == "uploads/astronaut.jpg" and _rules(first) == [
        ("/" + png2, "ci-process=AISuperResolution&magnify=2"), ("/" + png4, "ci-process=AISuperResolution&magnify=4")]
    assert second[1] == png4 and _rules(second) == [("/" + webp4, "imageMogr2/format/webp/quality/80!")]
    assert json.loads(second[3])["is_pic_info"] == 0
    assert gateway.keys("superres/.staging/") == []  # staged objects deleted after publishing
    assert gateway.objects[(BUCKET, X4)].meta["x-cos-meta-superres-rule"] == "x4:webp:q80"
    (line,) = lines
    assert line["outcome"] == "processed" and line["attempts"] == 2
    assert [(o["dest_key"], o["magnify"], o["format"], o["status"]) for o in line["outputs"]] == [
        (X2, 2, None, "processed"), (X4, 4, "webp", "processed")]
    assert line["outputs"][1]["result"]["format"] == "webp" and line["result"]["key"] == X2


def test_freshness_applies_per_output():
    invocation, lines, gateway, _ = make_invocation(_settings())
    gateway.put(BUCKET, X2, b"x2", _stamp("x2"))  # x2 done, x4 not
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert [rule for _, rule in _rules(gateway.calls[0])] == ["ci-process=AISuperResolution&magnify=4"]
    assert [o["status"] for o in lines[0]["outputs"]] == ["already_done", "processed"]
    handle_event(load_event("put_single.json"), CONTEXT, invocation)  # SCF's retry: both done
    assert lines[1]["reason"] == "already_done" and len(gateway.calls) == 2
    assert [o["status"] for o in lines[1]["outputs"]] == ["already_done", "already_done"]


def test_a_staged_png_from_an_earlier_try_is_only_converted():
    settings = _settings("x4/:4:jpg:70")
    invocation, lines, gateway, _ = make_invocation(settings)
    gateway.put(BUCKET, _staged(settings, X4_JPG, "png"), b"png")  # the SR call landed, the conversion did not
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    (call,) = gateway.calls
    assert _rules(call) == [("/" + _staged(settings, X4_JPG), "imageMogr2/format/jpg/quality/70!")]
    assert lines[0]["outcome"] == "processed" and lines[0]["attempts"] == 1


def test_after_a_partial_landing_the_retry_calls_only_for_what_did_not_land():
    settings = _settings("x2/:2,x4/:4")
    invocation, lines, gateway, clock = make_invocation(settings)
    original = gateway.image_process

    def half_lands(bucket, key, region, operations, timeout=None):
        rules = json.loads(operations)["rules"]
        if len(rules) == 2:  # the first call: x2 is written, then the connection drops
            gateway.put(BUCKET, rules[0]["fileid"].lstrip("/"), b"x2 png")
            gateway.calls.append((bucket, key, region, operations))
            raise CosCallError("reset", code="ConnectionError", retryable=True, ambiguous=True)
        return original(bucket, key, region, operations, timeout)

    gateway.image_process = half_lands  # type: ignore[method-assign]
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("put_single.json"), CONTEXT, invocation)
    clock.now += settings.ci_landing_bound_s + 5  # SCF's retry, once the first call can no longer land
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert [len(_rules(call)) for call in gateway.calls] == [2, 1]
    assert _rules(gateway.calls[1]) == [("/" + _staged(settings, X4_PNG), "ci-process=AISuperResolution&magnify=4")]
    outputs = lines[1]["outputs"]
    assert outputs[0]["confirmed_by"] == "staging" and "confirmed_by" not in outputs[1]
    assert "confirmed_by" not in lines[1]  # not every output came from staging


def test_default_is_one_x2_output_under_dest_prefix():
    settings = load_settings({"DEST_PREFIX": "superres/"})
    assert [(o.prefix, o.magnify, o.format) for o in settings.outputs] == [("superres/", 2, None)]
    invocation, lines, gateway, _ = make_invocation(settings)
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert "outputs" not in lines[0] and len(gateway.calls) == 1


@pytest.mark.parametrize("raw", ["x2/:3", "a:2,a/b:4", ":2,x:4", ".c:2", "x:2:gif", "x:2::80", "x:2:jpg:101",
                                 "1:2,2:2,3:2,4:2,5:2,6:2", "x", "x/../y:2"])
def test_bad_outputs_setting_names_the_variable(raw: str):
    with pytest.raises(ConfigError) as info:
        _settings(raw)
    assert info.value.variable == "OUTPUTS"


def test_an_output_may_go_to_another_bucket():
    settings = _settings("x2/:2,x4/:4:webp:80@results-1250000000")
    invocation, lines, gateway, _ = make_invocation(settings)
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    png4 = _staged(settings, X4, "png")
    first, second = gateway.calls
    assert json.loads(first[3])["rules"] == [
        {"fileid": "/" + _staged(settings, X2), "rule": "ci-process=AISuperResolution&magnify=2"},
        {"fileid": "/" + png4, "rule": "ci-process=AISuperResolution&magnify=4", "bucket": "results-1250000000"}]
    assert (second[0], second[1]) == ("results-1250000000", png4)  # converted where it was staged
    assert gateway.has("results-1250000000", X4) and gateway.has(BUCKET, X2)
    assert ("results-1250000000", png4) in gateway.deletes
    assert [o["dest_bucket"] for o in lines[0]["outputs"]] == [BUCKET, "results-1250000000"]


def test_outputs_bucket_must_be_name_appid():
    with pytest.raises(ConfigError, match="bucket 'Results' of 'x4/:4' must be"):
        _settings("x4/:4@Results")


def test_a_claim_holder_that_stored_only_some_outputs_leaves_the_rest_to_do():
    settings = _settings("x2/:2,x4/:4")
    invocation, lines, gateway, _ = make_invocation(settings)
    root = claim_root(settings, source_folder(BUCKET, "uploads/astronaut.jpg"))
    gateway.put(BUCKET, root, b"dead", {"x-cos-meta-superres-ttl": "60"}, last_modified=int(gateway.cos_now()) - 600)
    gateway.put(BUCKET, X2, b"x2", _stamp("x2"))  # the holder published x2, then died
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert lines[0]["outcome"] == "processed", lines[0]
    assert [o["status"] for o in lines[0]["outputs"]] == ["already_done", "processed"]
    assert [rule for _, rule in _rules(gateway.calls[0])] == ["ci-process=AISuperResolution&magnify=4"]


def test_without_claims_each_output_is_looked_at_once():
    invocation, _, gateway, _ = make_invocation(_settings("x2/:2,x4/:4", CLAIM_WORK="false"))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert sorted(k for k in gateway.heads if k[1] != "uploads/astronaut.jpg") == [(BUCKET, X2), (BUCKET, X4_PNG)]
