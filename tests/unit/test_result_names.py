"""RESULT_NAMES: how a result is named from its upload (append, replace, keep), and everything that follows the
name: the published Content-Type, the recursion guard, claims shared by uploads that share names under `replace`
(never overwriting another upload's result), and backfill's planner, whose merge must pair results whose names do
not sort like their sources' keys. Pure logic on the in-memory COS; the stand-in runs: test_outputs_e2e.py."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from superres_fn import ConfigError, RecordsFailedError, Settings, decide, handle_event, load_settings
from superres_fn.config import Output
from superres_fn.events import parse_record
from superres_fn.targets import claim_folder, claim_root, name_stem, result_key

from superres.backfill import plan as plan_mod
from superres.backfill.plan import ListedObject, plan, result_listing
from tests.conftest import load_event
from tests.unit.fakes import make_invocation

CONTEXT = {"request_id": "req-1", "time_limit_in_ms": 30_000}
BUCKET = "photos-1250000000"
PNG = Output("superres/", 2)
WEBP = Output("superres/x4/", 4, "webp", 80)


def _settings(names: str | None = None, outputs: str | None = None) -> Settings:
    env = {"DEST_PREFIX": "superres/", "TENCENTCLOUD_REGION": "ap-guangzhou"}
    if names is not None:
        env["RESULT_NAMES"] = names
    if outputs is not None:
        env["OUTPUTS"] = outputs
    return load_settings(env)


def _event(key: str, etag: str) -> dict:
    event = copy.deepcopy(load_event("put_single.json"))
    obj = event["Records"][0]["cos"]["cosObject"]
    obj["key"] = f"/1250000000/photos/{key}"
    obj["url"] = f"http://{BUCKET}.cos.ap-guangzhou.myqcloud.com/{key}"
    obj["meta"]["ETag"] = f'"{etag}"'
    return event


# -- the setting and the names --------------------------------------------------------------------------------


def test_the_default_appends_the_format_extension_and_a_bad_value_names_the_choices() -> None:
    assert _settings().result_names == "append" and _settings(" Replace ").result_names == "replace"
    with pytest.raises(ConfigError) as info:
        _settings("rename")
    assert info.value.variable == "RESULT_NAMES" and "append" in str(info.value) and "keep" in str(info.value)


@pytest.mark.parametrize(("names", "key", "png", "webp"), [
    ("append", "uploads/cat.jpg", "superres/uploads/cat.jpg.png", "superres/x4/uploads/cat.jpg.webp"),
    ("replace", "uploads/cat.jpg", "superres/uploads/cat.png", "superres/x4/uploads/cat.webp"),
    ("keep", "uploads/cat.jpg", "superres/uploads/cat.jpg", "superres/x4/uploads/cat.jpg.webp"),
    ("replace", "uploads/cat.tar.jpg", "superres/uploads/cat.tar.png", "superres/x4/uploads/cat.tar.webp"),
    ("replace", "uploads/.jpg", "superres/uploads/.jpg.png", "superres/x4/uploads/.jpg.webp"),  # no stem: appended
    ("replace", "a.b/c", "superres/a.b/c.png", "superres/x4/a.b/c.webp"),  # a dot in a folder is no extension
])
def test_result_names(names: str, key: str, png: str, webp: str) -> None:
    assert (result_key(PNG, key, names), result_key(WEBP, key, names)) == (png, webp)


def test_name_stem_drops_only_the_last_segments_extension() -> None:
    assert [name_stem(k) for k in ("a/b.c/d.e.jpg", "x.jpg", "x", "dir.v2/x", "照片/猫.webp")] == [
        "a/b.c/d.e", "x", "x", "dir.v2/x", "照片/猫"]


@pytest.mark.parametrize("names", ["append", "replace", "keep"])
def test_every_result_name_is_under_dest_prefix_so_its_own_event_is_skipped(names: str) -> None:
    settings = _settings(names, "x2/:2,x4/:4:webp:80")
    for target_key in (result_key(o, "uploads/cat.jpg", names) for o in settings.outputs):
        record = parse_record(_event(target_key, "a" * 32)["Records"][0])
        assert decide(record, settings).reason == "under_destination_prefix"


# -- what the function publishes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("names", "keys"), [
    ("append", ["superres/x2/uploads/astronaut.jpg.png", "superres/x4/uploads/astronaut.jpg.webp"]),
    ("replace", ["superres/x2/uploads/astronaut.png", "superres/x4/uploads/astronaut.webp"]),
    ("keep", ["superres/x2/uploads/astronaut.jpg", "superres/x4/uploads/astronaut.jpg.webp"]),
])
def test_results_are_published_under_their_names_with_their_formats_content_type(names: str, keys: list) -> None:
    invocation, lines, gateway, _ = make_invocation(_settings(names, "x2/:2,x4/:4:webp:80"))
    handle_event(load_event("put_single.json"), CONTEXT, invocation)
    assert [o["dest_key"] for o in lines[0]["outputs"]] == keys and lines[0]["dest_key"] == keys[0]
    assert [gateway.content_types[(BUCKET, k)] for k in keys] == ["image/png", "image/webp"]
    assert all(gateway.objects[(BUCKET, k)].meta["x-cos-meta-superres-upload"] for k in keys)


def test_under_replace_an_upload_never_overwrites_the_result_of_another_that_shares_its_name() -> None:
    invocation, lines, gateway, _ = make_invocation(_settings("replace"))
    gateway.put(BUCKET, "uploads/cat.jpg", b"a jpeg")
    gateway.put(BUCKET, "uploads/cat.png", b"a png")
    handle_event(_event("uploads/cat.jpg", gateway.objects[(BUCKET, "uploads/cat.jpg")].etag[1:-1]), CONTEXT,
                 invocation)
    made = gateway.objects[(BUCKET, "superres/uploads/cat.png")]
    handle_event(_event("uploads/cat.png", gateway.objects[(BUCKET, "uploads/cat.png")].etag[1:-1]), CONTEXT,
                 invocation)
    assert [line["reason"] for line in lines] == ["processed", "result_name_taken"]
    assert "superres/uploads/cat.png" in lines[1]["detail"] and "RESULT_NAMES=append" in lines[1]["detail"]
    assert len(gateway.calls) == 1 and gateway.objects[(BUCKET, "superres/uploads/cat.png")] is made
    gateway.delete(BUCKET, "superres/uploads/cat.png", "ap-guangzhou")  # what the skip says to do
    handle_event(_event("uploads/cat.png", gateway.objects[(BUCKET, "uploads/cat.png")].etag[1:-1]), CONTEXT,
                 invocation)
    assert lines[-1]["reason"] == "processed" and gateway.objects[(BUCKET, "superres/uploads/cat.png")].body.startswith(
        b"a png")


def test_under_replace_uploads_sharing_names_share_one_claim() -> None:
    settings = _settings("replace")
    assert claim_folder(settings, BUCKET, "uploads/cat.jpg") == claim_folder(settings, BUCKET, "uploads/cat.png")
    assert claim_folder(settings, BUCKET, "uploads/cat.jpg") != claim_folder(settings, BUCKET, "uploads/dog.jpg")
    append = _settings()
    assert claim_folder(append, BUCKET, "uploads/cat.jpg") != claim_folder(append, BUCKET, "uploads/cat.png")
    # cat.jpg's claim is live: cat.png waits for it, and gives up (retryable) when its time runs short
    invocation, lines, gateway, _ = make_invocation(settings)
    root = claim_root(settings, claim_folder(settings, BUCKET, "uploads/cat.jpg"))
    gateway.put(BUCKET, root, b"held", {"x-cos-meta-superres-ttl": "600"})
    gateway.put(BUCKET, "uploads/cat.png", b"a png")
    with pytest.raises(RecordsFailedError):
        handle_event(_event("uploads/cat.png", gateway.objects[(BUCKET, "uploads/cat.png")].etag[1:-1]),
                     {"request_id": "r", "time_limit_in_ms": 8_000}, invocation)
    assert gateway.calls == [] and lines[0]["error"]["code"] == "WorkInProgress", lines[0]


def test_same_bytes_under_two_names_sharing_a_result_are_already_done() -> None:
    invocation, lines, gateway, _ = make_invocation(_settings("replace"))
    etag = gateway.put(BUCKET, "uploads/cat.jpg", b"same")[1:-1]
    gateway.put(BUCKET, "uploads/cat.png", b"same")
    handle_event(_event("uploads/cat.jpg", etag), CONTEXT, invocation)
    handle_event(_event("uploads/cat.png", etag), CONTEXT, invocation)
    assert [line["reason"] for line in lines] == ["processed", "already_done"] and len(gateway.calls) == 1


# -- backfill's planner --------------------------------------------------------------------------------------------


def _obj(key: str, modified: float = 1000.0) -> ListedObject:
    return ListedObject(key, 10, '"e"', modified)


def _plan(keys: list[str], results: list[str], names: str, outputs: list[Output] | None = None) -> dict:
    outs = outputs or [Output("superres/", 2, bucket=BUCKET)]
    settings = _settings(names)
    listings = [sorted((_obj(r, 2000.0) for r in results if r.startswith(o.prefix)), key=lambda o: o.key)
                for o in outs]
    # "found": every result exists (confirm.confirmed then reads what each was made from)
    return {item.obj.key: (item.reason, () if item.action == "confirm" else item.todo)
            for item in plan([_obj(k) for k in sorted(keys)], listings, outs, settings, bucket=BUCKET,
                             region="ap-guangzhou")}


def test_append_names_that_sort_apart_from_their_sources_are_still_paired() -> None:
    keys = ["a.jpg", "a.jpg-2.jpg", "a.jpg 3.jpg", "b.jpg"]
    results = ["superres/a.jpg.png", "superres/a.jpg-2.jpg.png", "superres/a.jpg 3.jpg.png"]
    assert sorted(results) != [f"superres/{k}.png" for k in sorted(keys) if k != "b.jpg"]  # the order flips
    assert _plan(keys, results, "append") == {
        "a.jpg": ("found", ()), "a.jpg-2.jpg": ("found", ()), "a.jpg 3.jpg": ("found", ()),
        "b.jpg": ("missing", ("superres/b.jpg.png",))}


def test_replace_names_shared_by_two_sources_answer_both() -> None:
    assert _plan(["cat.jpg", "cat.png", "dog.jpg"], ["superres/cat.png"], "replace") == {
        "cat.jpg": ("found", ()), "cat.png": ("found", ()),
        "dog.jpg": ("missing", ("superres/dog.png",))}


def test_a_result_forgotten_past_the_lookback_makes_a_candidate_never_a_skip(monkeypatch) -> None:
    monkeypatch.setattr(plan_mod, "_LOOKBACK", 2)
    keys = ["a.jpg"] + [f"a.jpg-{i}.jpg" for i in range(5)]
    results = [f"superres/{k}.png" for k in keys]
    planned = _plan(keys, results, "append")
    # Looking for a.jpg.png passes over the five a.jpg-N.jpg.png (they list first) and remembers the last two.
    forgotten = {f"a.jpg-{i}.jpg": ("missing", (f"superres/a.jpg-{i}.jpg.png",)) for i in range(3)}
    assert planned == {**forgotten, "a.jpg": ("found", ()), "a.jpg-3.jpg": ("found", ()),
                       "a.jpg-4.jpg": ("found", ())}


# Keys made of pieces that make result names sort apart from their sources (a '-' or ' ' after a name, an
# extension inside a name, a folder with a dot), ending in an accepted extension.
KEY = st.tuples(st.lists(st.sampled_from(["a", "b", "-", " ", "/", ".jpg", ".png", "x.y/"]), min_size=1, max_size=5),
                st.sampled_from([".jpg", ".png"])).map(lambda parts: "".join(parts[0]) + parts[1])


@hsettings(max_examples=300, deadline=None)
@given(keys=st.sets(KEY, min_size=1, max_size=12), present=st.data(), names=st.sampled_from(["append", "replace",
                                                                                            "keep"]))
def test_the_plan_pairs_every_source_with_exactly_its_results(keys, present, names) -> None:
    settings = _settings(names)
    keys = [k for k in keys if decide(parse_record(_event(k, "a" * 32)["Records"][0]), settings).should_process]
    outs = [Output("superres/", 2, bucket=BUCKET), Output("superres/x4/", 4, "webp", bucket=BUCKET)]
    wanted = sorted({result_key(o, k, names) for o in outs for k in keys})
    results = present.draw(st.lists(st.sampled_from(wanted), unique=True)) if wanted else []
    planned = _plan(keys, results, names, outs)
    for key in keys:
        missing = tuple(result_key(o, key, names) for o in outs if result_key(o, key, names) not in results)
        assert planned[key] == (("found", ()) if not missing else ("missing", missing))


@hsettings(max_examples=300, deadline=None)
@given(keys=st.lists(KEY, min_size=2, max_size=10, unique=True), cut=st.data(),
       names=st.sampled_from(["append", "replace", "keep"]))
def test_a_resumed_listing_holds_the_results_of_every_source_after_the_marker(keys, cut, names) -> None:
    keys = sorted(keys)
    chosen = cut.draw(st.sampled_from(keys))
    prefix = chosen[: cut.draw(st.integers(0, len(chosen)))]  # --prefix: any start of a key, even mid-extension
    under = [k for k in keys if k.startswith(prefix)]
    after = cut.draw(st.sampled_from([None, *under]))  # a fresh run, or a resume after one of them
    for out in (PNG, WEBP):
        listed, marker = result_listing(out, prefix, after, names)
        for key in (k for k in under if after is None or k > after):
            name = result_key(out, key, names)
            assert name.startswith(listed) and (marker is None or name > marker), (key, name, listed, marker)


def test_the_same_key_from_two_source_buckets_into_one_dest_bucket_never_overwrites_the_first() -> None:
    settings = load_settings({"DEST_PREFIX": "superres/", "DEST_BUCKET": "results-1250000000",
                              "TENCENTCLOUD_REGION": "ap-guangzhou"})
    invocation, lines, gateway, _ = make_invocation(settings)
    photos = _event("uploads/cat.jpg", gateway.put(BUCKET, "uploads/cat.jpg", b"from photos")[1:-1])
    other = copy.deepcopy(photos)
    cos = other["Records"][0]["cos"]
    cos["cosBucket"]["name"] = "other"
    cos["cosObject"]["key"] = "/1250000000/other/uploads/cat.jpg"
    cos["cosObject"]["url"] = "http://other-1250000000.cos.ap-guangzhou.myqcloud.com/uploads/cat.jpg"
    cos["cosObject"]["meta"]["ETag"] = gateway.put("other-1250000000", "uploads/cat.jpg", b"from other")
    handle_event(photos, CONTEXT, invocation)
    handle_event(other, CONTEXT, invocation)
    assert [line["reason"] for line in lines] == ["processed", "result_name_taken"] and len(gateway.calls) == 1
    assert "another source bucket" in lines[1]["detail"]
    assert gateway.objects[("results-1250000000", "superres/uploads/cat.jpg.png")].body.startswith(b"from photos")
