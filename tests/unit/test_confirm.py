"""Backfill's look at existing results (superres.backfill.confirm): a result counts as done by what it says it was
made from, never by when it was written. A fake COS client answers the HEADs (pure logic; the integration tests in
tests/integration/test_adversary.py and test_backfill.py run it against the stand-in)."""

from __future__ import annotations

import threading

import pytest
from qcloud_cos.cos_exception import CosServiceError
from superres_fn.config import Output
from superres_fn.targets import source_folder

from superres.backfill.confirm import confirmed
from superres.backfill.plan import ListedObject, PlanItem

BUCKET = "photos-1250000000"
X2 = Output("superres/", 2, bucket=BUCKET)
X4 = Output("superres/x4/", 4, "webp", 80, bucket=BUCKET)
V1, V2 = "a" * 32, "b" * 32
OLD, NEW = "Thu, 01 Jan 1970 00:16:40 GMT", "Thu, 01 Jan 1970 00:16:41 GMT"  # 1000 s, 1001 s


class Heads:
    """head_object from a dict of key -> headers; a missing key is 404, a key in `refused` is 403."""

    def __init__(self, objects: dict[str, dict[str, str]], refused: frozenset[str] = frozenset()) -> None:
        self.objects, self.refused, self.asked = objects, refused, []
        self._lock = threading.Lock()

    def head_object(self, Bucket: str, Key: str) -> dict[str, str]:  # noqa: N803 (the SDK's names)
        with self._lock:
            self.asked.append(Key)
        if Key in self.refused:
            raise CosServiceError("HEAD", "", 403)
        if Key not in self.objects:
            raise CosServiceError("HEAD", "", 404)
        return self.objects[Key]


def stamped(version: str, rule: str, modified: str = NEW) -> dict[str, str]:
    return {"ETag": '"r"', "Content-Length": "5", "Last-Modified": modified,
            "x-cos-meta-superres-source": version, "x-cos-meta-superres-rule": rule}


def found(key: str, version: str = V1, outputs: tuple[Output, ...] = (X2,)) -> PlanItem:
    names = {X2: f"superres/{key}.png", X4: f"superres/x4/{key}.webp"}
    return PlanItem(ListedObject(key, 10, f'"{version}"', 1000.0), "confirm", "found",
                    tuple(names[o] for o in outputs))


def resolved(items: list[PlanItem], client: Heads, outputs: tuple[Output, ...] = (X2,)) -> list[tuple]:
    return [(i.obj.key, i.action, i.reason, i.todo) for i in confirmed(items, client, list(outputs), BUCKET)]


def test_a_result_made_from_the_current_version_by_the_current_rule_is_done() -> None:
    client = Heads({"superres/a.jpg.png": stamped(V1, "x2")})
    assert resolved([found("a.jpg")], client) == [("a.jpg", "skip", "already_done", ())]


def test_a_newer_result_made_from_an_older_version_is_stale() -> None:
    """The case the listing's clock got wrong: written after the source, made from the bytes before it."""
    client = Heads({"superres/a.jpg.png": stamped(V1, "x2")})
    assert resolved([found("a.jpg", V2)], client) == [("a.jpg", "process", "stale", ("superres/a.jpg.png",))]


def test_a_result_made_by_another_rule_is_stale_and_only_that_output_is_redone() -> None:
    client = Heads({"superres/a.jpg.png": stamped(V1, "x2"), "superres/x4/a.jpg.webp": stamped(V1, "x4:webp")})
    assert resolved([found("a.jpg", outputs=(X2, X4))], client, (X2, X4)) == [
        ("a.jpg", "process", "stale", ("superres/x4/a.jpg.webp",))]


def test_a_shared_name_holding_another_uploads_result_is_skipped_as_the_function_skips_it() -> None:
    """RESULT_NAMES=replace: cat.jpg's result holds the name cat.png's would take; the function leaves it
    (result_name_taken), so reconcile must not report it as work forever."""
    other = source_folder(BUCKET, "cat.jpg")
    client = Heads({"superres/cat.png.png": {**stamped(V1, "x2"), "x-cos-meta-superres-upload": other}})
    assert resolved([found("cat.png", V2)], client) == [("cat.png", "skip", "result_name_taken", ())]


def test_a_result_deleted_since_the_listing_is_missing() -> None:
    assert resolved([found("a.jpg")], Heads({})) == [("a.jpg", "process", "missing", ("superres/a.jpg.png",))]


def test_unstamped_results_follow_the_functions_rule_for_results_made_before_provenance() -> None:
    unstamped = {"ETag": '"r"', "Content-Length": "5"}
    client = Heads({"superres/new.jpg.png": {**unstamped, "Last-Modified": NEW},
                    "superres/same.jpg.png": {**unstamped, "Last-Modified": OLD}})
    assert resolved([found("new.jpg"), found("same.jpg")], client) == [
        ("new.jpg", "skip", "already_done", ()), ("same.jpg", "process", "stale", ("superres/same.jpg.png",))]


def test_order_is_kept_and_other_items_pass_through_unread() -> None:
    keys = [f"k{i:04d}.jpg" for i in range(700)]  # more than the read-ahead window
    items = [found(k) if i % 3 else PlanItem(ListedObject(k, 10, '"e"', 1.0), "process", "missing", ("x",))
             for i, k in enumerate(keys)]
    client = Heads({f"superres/{k}.jpg.png": stamped(V1, "x2") for k in keys} |
                   {f"superres/{k}.png": stamped(V1, "x2") for k in keys})
    out = resolved(items, client)
    assert [key for key, *_ in out] == keys
    assert [action for _, action, *_ in out] == ["process" if i % 3 == 0 else "skip" for i in range(len(keys))]
    assert len(client.asked) == len([i for i in items if i.action == "confirm"])


def test_a_refused_head_stops_the_plan_with_cos_error() -> None:
    with pytest.raises(CosServiceError):
        resolved([found("a.jpg")], Heads({}, refused=frozenset({"superres/a.jpg.png"})))
