"""The stand-in's on-disk store (crash recovery, listing) and its pure CI helpers, without HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from superres.standin import CosError, ObjectStore
from superres.standin.images import load_source_image
from superres.standin.pic_operations import parse_pic_operations, resolve_fileid

from .conftest import image_bytes

BUCKET = "photos-1250000000"


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    store = ObjectStore(tmp_path)
    store.create_bucket(BUCKET)
    return store


def _md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_restart_sweeps_interrupted_writes_and_keeps_the_committed_object(tmp_path: Path, store: ObjectStore) -> None:
    data = b"committed bytes"
    info = store.put(BUCKET, "in/a.jpg", data, "image/jpeg", {"x-cos-meta-k": "v"})
    data_dir, meta_dir = tmp_path / BUCKET / "data", tmp_path / BUCKET / "meta"
    # What a crash can leave: a half-written temp file in each directory, and a data file whose metadata
    # never landed (the crash hit between the two renames of an overwrite).
    (data_dir / ".tmp-deadbeef").write_bytes(b"half a wri")
    (meta_dir / ".tmp-cafebabe").write_bytes(b'{"key": "in/a.jp')
    orphan = data_dir / "0000-orphan.bin"
    orphan.write_bytes(b"new bytes whose metadata never landed")

    reopened = ObjectStore(tmp_path)

    assert sorted(p.name for p in data_dir.iterdir()) == [info.data_file]
    assert list(meta_dir.glob(".tmp-*")) == []
    got, read = reopened.read(BUCKET, "in/a.jpg")
    assert read == data
    assert got.etag == _md5(read) == info.etag
    assert (got.content_type, got.meta) == ("image/jpeg", {"x-cos-meta-k": "v"})


def test_overwrite_replaces_the_object_and_removes_the_old_data_file(tmp_path: Path, store: ObjectStore) -> None:
    first = store.put(BUCKET, "k", b"one")
    second = store.put(BUCKET, "k", b"two")
    assert store.read(BUCKET, "k")[1] == b"two"
    assert [p.name for p in (tmp_path / BUCKET / "data").iterdir()] == [second.data_file]
    assert first.data_file != second.data_file


def test_metadata_naming_a_missing_data_file_is_dropped_at_startup(tmp_path: Path, store: ObjectStore) -> None:
    info = store.put(BUCKET, "k", b"x")
    (tmp_path / BUCKET / "data" / info.data_file).unlink()
    reopened = ObjectStore(tmp_path)
    with pytest.raises(CosError) as err:
        reopened.head(BUCKET, "k")
    assert err.value.code == "NoSuchKey"


def test_keys_never_become_paths(tmp_path: Path, store: ObjectStore) -> None:
    keys = ["../../etc/passwd", "a/../../b", "/abs", "中文 +%#?😀"]
    for key in keys:
        store.put(BUCKET, key, key.encode())
    for key in keys:
        assert store.read(BUCKET, key)[1] == key.encode()
    names = {p.name for p in tmp_path.rglob("*")}
    assert not any(".." in name or "passwd" in name for name in names)
    assert {p.parent for p in (tmp_path / BUCKET).rglob("*.bin")} == {tmp_path / BUCKET / "data"}


def test_metadata_is_plain_json_naming_the_key(tmp_path: Path, store: ObjectStore) -> None:
    store.put(BUCKET, "k", b"x")
    (meta_file,) = (tmp_path / BUCKET / "meta").glob("*.json")
    assert json.loads(meta_file.read_text("utf-8"))["key"] == "k"


@pytest.mark.parametrize(("key", "code"), [("", "InvalidArgument"), ("é" * 426, "KeyTooLong")])
def test_bad_keys_are_refused(store: ObjectStore, key: str, code: str) -> None:
    with pytest.raises(CosError) as err:
        store.put(BUCKET, key, b"x")
    assert err.value.code == code


def test_850_byte_key_is_accepted(store: ObjectStore) -> None:
    store.put(BUCKET, "k" * 850, b"x")


def test_unknown_bucket_is_no_such_bucket(store: ObjectStore) -> None:
    with pytest.raises(CosError) as err:
        store.put("other-1250000000", "k", b"x")
    assert (err.value.status, err.value.code) == (404, "NoSuchBucket")


def test_listing_orders_keys_by_utf8_bytes_like_cos(store: ObjectStore) -> None:
    keys = ["b", "a", "中", "Z", "a/b", "a0", "😀"]
    for key in keys:
        store.put(BUCKET, key, b"x")
    listed = [info.key for info in store.list(BUCKET).contents]
    assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))


def test_listing_marker_and_prefix(store: ObjectStore) -> None:
    for key in ("a/1", "a/2", "b/1", "c"):
        store.put(BUCKET, key, b"x")
    page = store.list(BUCKET, prefix="a/", marker="a/1")
    assert [i.key for i in page.contents] == ["a/2"]
    assert not page.is_truncated
    grouped = store.list(BUCKET, delimiter="/", max_keys=1)
    assert (grouped.common_prefixes, grouped.is_truncated, grouped.next_marker) == (("a/",), True, "a/")
    after = store.list(BUCKET, delimiter="/", marker="a/")
    assert after.common_prefixes == ("b/",)
    assert [i.key for i in after.contents] == ["c"]


def test_concurrent_writers_to_one_key_leave_one_complete_object(tmp_path: Path, store: ObjectStore) -> None:
    bodies = [bytes([i]) * 10_000 for i in range(8)]
    threads = [threading.Thread(target=store.put, args=(BUCKET, "race", body)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    info, data = store.read(BUCKET, "race")
    assert data in bodies
    assert info.etag == _md5(data)
    assert len(list((tmp_path / BUCKET / "data").iterdir())) == 1
    assert ObjectStore(tmp_path).read(BUCKET, "race")[1] == data


def test_delete_removes_metadata_and_data(tmp_path: Path, store: ObjectStore) -> None:
    store.put(BUCKET, "k", b"x")
    assert store.delete(BUCKET, "k") is True
    assert store.delete(BUCKET, "k") is False
    assert list((tmp_path / BUCKET / "data").iterdir()) == []
    assert list((tmp_path / BUCKET / "meta").iterdir()) == []


# ---- pure CI helpers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fileid", "source", "expected"),
    [
        ("p2/test2.jpg", "p1/test1.jpg", "p1/p2/test2.jpg"),  # the doc's own example
        ("/p2/test2.jpg", "p1/test1.jpg", "p2/test2.jpg"),
        ("x.png", "top.jpg", "x.png"),
        ("../out/x.png", "in/a.jpg", "out/x.png"),
        ("./x.png", "in/a.jpg", "in/x.png"),
        ("/a/../b.png", "in/a.jpg", "b.png"),
    ],
)
def test_resolve_fileid(fileid: str, source: str, expected: str) -> None:
    assert resolve_fileid(fileid, source) == expected


@pytest.mark.parametrize("fileid", ["", "out/", "../x.png", "../../x.png", "/../x.png", "/a/.."])
def test_resolve_fileid_refusals(fileid: str) -> None:
    with pytest.raises(CosError) as err:
        resolve_fileid(fileid, "in/a.jpg" if fileid != "../x.png" else "a.jpg")
    assert (err.value.status, err.value.code) == (400, "InvalidArgument")


def test_empty_rules_are_valid() -> None:
    assert parse_pic_operations('{"rules": []}', "a.jpg").rules == ()
    assert parse_pic_operations("{}", "a.jpg").is_pic_info is False


@pytest.mark.parametrize(
    "header", ['{"is_pic_info": 2}', '{"rules": {}}', '{"rules": [1]}', '{"rules": [{"rule": "x"}]}']
)
def test_malformed_pic_operations(header: str) -> None:
    with pytest.raises(CosError) as err:
        parse_pic_operations(header, "a.jpg")
    assert err.value.code == "InvalidPicOperations"


def test_resolution_cap_is_orientation_independent() -> None:
    assert load_source_image(image_bytes(1080, 1920, "PNG", "L")).height == 1920
    assert load_source_image(image_bytes(1920, 1080, "PNG", "L")).width == 1920
