"""What the stand-in's writes cost on disk and whom they hold up: the fsyncs a PUT and a DELETE make (counted by
wrapping os.fsync in this process, where the stand-in serves), and that a write stuck in fsync stalls no other
request (the event loop never waits on disk or on a lock held across it)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from superres.standin import CosError, ObjectStore, StandIn

_STUCK_LIMIT_S = 20.0  # only reached when the test fails: the stuck fsync gives up and lets the PUT finish


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of every fsynced file or directory, in order (any thread of this process)."""
    calls: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return calls


def _shapes(calls: list[str], bucket_dir: Path) -> list[str]:
    """Each fsync under `bucket_dir`: 'data/' or 'meta/' for a folder, 'data/<file>' or 'meta/.tmp-' for a file."""
    shapes = []
    for path in calls:
        if path.startswith(str(bucket_dir)):
            folder, *name = Path(path).relative_to(bucket_dir).parts
            if not name:
                shapes.append(f"{folder}/")
            else:
                shapes.append(f"{folder}/{'.tmp-' if name[0].startswith('.tmp-') else '<file>'}")
    return shapes


def test_a_put_makes_four_fsyncs_the_metadata_folder_last(  # type: ignore[no-untyped-def]
        standin: StandIn, cos, bucket: str, fsyncs: list[str]) -> None:
    cos.put_object(Bucket=bucket, Key="a.bin", Body=b"x" * 10_000)
    shapes = _shapes(fsyncs, standin.settings.data_dir / bucket)
    # The data file, its folder and the new metadata (in any order: they run at once), then the folder whose
    # fsync makes the metadata's rename, the commit, durable.
    assert sorted(shapes[:3]) == ["data/", "data/<file>", "meta/.tmp-"]
    assert shapes[3:] == ["meta/"]


def test_a_delete_makes_one_fsync_of_the_metadata_directory(  # type: ignore[no-untyped-def]
        standin: StandIn, cos, bucket: str, fsyncs: list[str]) -> None:
    cos.put_object(Bucket=bucket, Key="a.bin", Body=b"x")
    fsyncs.clear()
    cos.delete_object(Bucket=bucket, Key="a.bin")
    assert _shapes(fsyncs, standin.settings.data_dir / bucket) == ["meta/"]


def test_a_put_stuck_in_its_metadata_fsync_holds_up_no_other_request(  # type: ignore[no-untyped-def]
        standin: StandIn, cos, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cos.put_object(Bucket=bucket, Key="other.bin", Body=b"other")
    meta_tmp = str(standin.settings.data_dir / bucket / "meta" / ".tmp-")
    stuck, release = threading.Event(), threading.Event()
    gave_up: list[bool] = []
    real = os.fsync

    def stalling(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(meta_tmp) and not stuck.is_set():
            stuck.set()
            gave_up.append(not release.wait(_STUCK_LIMIT_S))
        real(fd)

    monkeypatch.setattr(os, "fsync", stalling)
    writer = threading.Thread(target=lambda: cos.put_object(Bucket=bucket, Key="slow.bin", Body=b"slow"))
    writer.start()
    try:
        assert stuck.wait(_STUCK_LIMIT_S), "the PUT never reached its metadata fsync"
        # While the PUT is stuck: the same bucket answers a HEAD, a GET, a listing and a PUT of another key.
        others: list[Callable[[], object]] = [
            lambda: cos.head_object(Bucket=bucket, Key="other.bin"),
            lambda: cos.get_object(Bucket=bucket, Key="other.bin")["Body"].get_raw_stream().read(),
            lambda: cos.list_objects(Bucket=bucket),
            lambda: cos.put_object(Bucket=bucket, Key="third.bin", Body=b"third"),
        ]
        results = [call() for call in others]
        assert results[1] == b"other"
        assert gave_up == [] and writer.is_alive(), "other requests waited for the stuck PUT"
        assert [item["Key"] for item in results[2].get("Contents", [])] == ["other.bin"]  # not acknowledged yet
    finally:
        release.set()
        writer.join(timeout=_STUCK_LIMIT_S)
    assert gave_up == [False]
    listed = [item["Key"] for item in cos.list_objects(Bucket=bucket)["Contents"]]
    assert listed == ["other.bin", "slow.bin", "third.bin"]


def test_readers_during_overwrites_always_get_one_complete_body(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    store.create_bucket("race-1250000000")
    bodies = [bytes([i]) * 50_000 for i in range(6)]
    store.put("race-1250000000", "k", bodies[0])
    read: list[bytes] = []
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                read.append(store.read("race-1250000000", "k")[1])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    def writer() -> None:
        for body in bodies * 10:
            store.put("race-1250000000", "k", body)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(read) == 600 and set(read) <= set(bodies)


def test_a_refused_forbid_overwrite_put_leaves_no_file_behind(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    store.create_bucket("claims-1250000000")
    first = store.put("claims-1250000000", "k", b"first")
    staged = store.stage("claims-1250000000")
    staged.write(b"second")
    with pytest.raises(CosError) as refused:
        store.put_staged("claims-1250000000", "k", staged, forbid_overwrite=True)
    assert refused.value.code == "FileAlreadyExists"
    bucket_dir = tmp_path / "claims-1250000000"
    assert [p.name for p in (bucket_dir / "data").iterdir()] == [first.data_file]
    assert [p.name for p in (bucket_dir / "meta").iterdir()] == [f"{hashlib.sha256(b'k').hexdigest()}.json"]
    assert store.read("claims-1250000000", "k")[1] == b"first"
