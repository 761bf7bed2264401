"""Durable file writes under the stand-in's object store: write to a temp file, fsync, rename, fsync the directory.

A rename is durable only once its directory is fsynced. `DirSync` shares that fsync among the threads that need it
at the same time (group commit): one fsync that starts after a thread's rename covers it, so under concurrent
writes one directory fsync serves many writes, and a lone write still gets its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".tmp-"
# Runs the fsyncs a write may do at once (see `together`); its tasks only fsync, never wait on a caller.
_FSYNCS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="superres-fsync")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirSync:
    """Makes the renames done in one directory durable, one fsync for every caller waiting at the time.

    `sync()` is called after the caller's rename. It takes a ticket; an fsync that starts after the ticket was taken
    covers it. If an fsync is running already (it started before this rename, so it may not cover it), the caller
    waits for it to end and then one waiting caller runs the next fsync for everyone who arrived meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition(threading.Lock())
        self._issued = 0  # tickets handed out
        self._covered = 0  # every ticket up to this one is durable
        self._running = False

    @property
    def issued(self) -> int:
        """Tickets handed out so far (callers that asked for a sync)."""
        with self._cond:
            return self._issued

    def sync(self) -> None:
        with self._cond:
            self._issued += 1
            ticket = self._issued
            while self._covered < ticket:
                if self._running:
                    self._cond.wait()
                    continue
                self._running, target = True, self._issued
                self._cond.release()
                try:
                    fsync_dir(self.path)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                self._covered = max(self._covered, target)  # not reached if the fsync raised: others try again


def write_atomically(target: Path, data: bytes, sync: DirSync | None = None) -> None:
    """Temp file in the same directory, fsync, rename over `target`, fsync the directory (through `sync` if given:
    it must be the DirSync of `target`'s directory)."""
    tmp = write_temp(target.parent, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _sync_dir(target.parent, sync)


def write_temp(directory: Path, data: bytes) -> Path:
    """`data` in a fresh `.tmp-*` file in `directory`, fsynced (a crash leaves it to the startup sweep)."""
    tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp


def together(*calls: Callable[[], object]) -> None:
    """Run `calls` at once (the first on this thread, the rest on fsync threads) and wait for all of them: the
    fsyncs one rename depends on need not wait for each other. Raises the first failure, after all have ended."""
    futures = [_FSYNCS.submit(call) for call in calls[1:]]
    errors: list[BaseException] = []
    try:
        calls[0]()
    except BaseException as exc:  # noqa: BLE001 - re-raised below, once the others have ended
        errors.append(exc)
    for future in futures:
        if (exc := future.exception()) is not None:
            errors.append(exc)
    if errors:
        raise errors[0]


def _sync_dir(path: Path, sync: DirSync | None) -> None:
    if sync is None:
        fsync_dir(path)
    else:
        assert sync.path == path, f"{sync.path} is not {path}"
        sync.sync()


class StagedFile:
    """A body being received: hashed as it goes, held in memory up to `SPILL_BYTES` and on disk past that (so
    creating one does no I/O, and a small body reaches the disk once, when committed), then committed by rename
    or discarded. The first write past the limit creates the file: call it off the event loop."""

    SPILL_BYTES = 1024 * 1024

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._md5 = hashlib.md5()
        self._held = bytearray()
        self._file: BinaryIO | None = None
        self._done = False

    def write(self, chunk: bytes | bytearray) -> None:
        assert not self._done
        self._md5.update(chunk)
        self.size += len(chunk)
        if self.holds(len(chunk)):
            self._held += chunk
            return
        self._spill().write(chunk)

    def holds(self, more: int) -> bool:
        """Whether writing `more` bytes stays in memory (no I/O: safe on the event loop)."""
        return self._file is None and len(self._held) + more <= self.SPILL_BYTES

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    @property
    def md5_digest(self) -> bytes:
        return self._md5.digest()

    def read_all(self) -> bytes:
        """The bytes received so far (for small bodies that must be decoded, e.g. a CI source)."""
        if self._file is None:
            return bytes(self._held)
        self._file.flush()
        return self.path.read_bytes()

    def reader(self) -> BinaryIO:
        """The bytes received so far, streamed (the caller closes it)."""
        if self._file is None:
            return io.BytesIO(bytes(self._held))
        self._file.flush()
        return open(self.path, "rb")  # noqa: SIM115

    def commit(self, target: Path, sync: DirSync | None = None) -> None:
        """fsync the bytes, rename them to `target`, fsync its directory (through `sync` if given)."""
        handle = self._spill()
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._file, self._done = None, True
        os.replace(self.path, target)
        _sync_dir(target.parent, sync)

    def write_out(self) -> None:
        """Put the bytes in the file at `path` (created now if they were held in memory), without fsync."""
        self._spill().flush()

    def seal(self) -> None:
        """fsync and close the file at `path`, which stays where it is (for a fresh, unique name nothing refers to
        yet: no rename is needed to make it appear whole). Call `write_out` first."""
        assert self._file is not None, "write_out first"
        os.fsync(self._file.fileno())
        self._file.close()
        self._file, self._done = None, True

    def discard(self) -> None:
        self._held = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._done = True

    def _spill(self) -> BinaryIO:
        """The file, created on first need with what was held in memory."""
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed by commit/discard
            self._file.write(self._held)
            self._held = bytearray()
        return self._file
