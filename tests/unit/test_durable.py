"""Group commit of directory fsyncs (superres.standin.durable.DirSync), with os.fsync replaced by a fake that can
be held: callers that arrive while an fsync runs share the next one; none returns before an fsync that started
after it asked."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from superres.standin.durable import DirSync


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
