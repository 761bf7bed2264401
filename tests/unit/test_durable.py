"""Group commit of directory fsyncs (superres.standin.durable.DirSync), with os.fsync replaced by a fake that can
be held: callers that arrive while an fsync runs share the next one; none returns before an fsync that started
after it asked."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from superres.standin.durable import DirSync, StagedFile, together


def test_callers_arriving_during_an_fsync_share_the_next_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    fsyncs: list[int] = []  # how many tickets had been issued when each fsync started

    sync = DirSync(tmp_path)

    def fake_fsync(fd: int) -> None:
        fsyncs.append(sync.issued)
        started.set()
        assert release.wait(10)

    monkeypatch.setattr(os, "fsync", fake_fsync)
    first = threading.Thread(target=sync.sync)
    first.start()
    assert started.wait(10)
    returned: list[str] = []
    later = [threading.Thread(target=lambda n=n: (sync.sync(), returned.append(n))) for n in ("b", "c", "d")]
    for thread in later:
        thread.start()
    while sync.issued < 4:  # every later caller holds a ticket, waiting behind the running fsync
        threading.Event().wait(0.001)
    assert returned == []  # the running fsync started before their renames: it cannot cover them
    release.set()
    for thread in (first, *later):
        thread.join(10)
    assert fsyncs == [1, 4]  # one fsync for the first caller, one shared by the three that came during it
    assert sorted(returned) == ["b", "c", "d"]


def test_a_lone_caller_gets_its_own_fsync_each_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    sync = DirSync(tmp_path)
    for _ in range(3):
        sync.sync()
    assert len(calls) == 3


def test_a_failed_fsync_raises_and_the_next_caller_tries_again(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes = iter([OSError(5, "I/O error"), None])

    def flaky(fd: int) -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(os, "fsync", flaky)
    sync = DirSync(tmp_path)
    with pytest.raises(OSError):
        sync.sync()
    sync.sync()


def test_together_waits_for_every_call_and_raises_the_first_failure() -> None:
    ended: list[str] = []
    slow_may_end = threading.Event()

    def failing() -> None:
        ended.append("failing")
        slow_may_end.set()
        raise ValueError("the first call failed")

    def slow() -> None:
        assert slow_may_end.wait(10)
        ended.append("slow")

    with pytest.raises(ValueError, match="the first call failed"):
        together(failing, slow)
    assert ended == ["failing", "slow"]  # it did not return before the other call had ended


def test_a_small_body_stays_in_memory_until_written_out(tmp_path: Path) -> None:
    staged = StagedFile(tmp_path / "a.bin")
    staged.write(b"x" * 1000)
    assert staged.holds(StagedFile.SPILL_BYTES - 1000) and not staged.holds(StagedFile.SPILL_BYTES)
    assert list(tmp_path.iterdir()) == []  # staging did no I/O
    assert staged.read_all() == b"x" * 1000
    staged.write_out()
    staged.seal()
    assert (tmp_path / "a.bin").read_bytes() == b"x" * 1000


def test_a_body_past_the_limit_spills_to_its_file_and_discard_removes_it(tmp_path: Path) -> None:
    staged = StagedFile(tmp_path / "a.bin")
    staged.write(b"x" * StagedFile.SPILL_BYTES)
    staged.write(b"y")
    assert not staged.holds(0)
    assert staged.read_all() == b"x" * StagedFile.SPILL_BYTES + b"y"
    assert staged.size == StagedFile.SPILL_BYTES + 1
    staged.discard()
    assert list(tmp_path.iterdir()) == []
