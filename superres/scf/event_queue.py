"""The trigger's durable queue of asynchronous invocations: one SQLite file in the data folder.

SCF keeps a function's async events durably (up to 100,000 queued, each kept at most its maximum event age,
6 h by default) and delivers each at least once. Locally the same holds across kill -9 and restarts:

- `put` commits the event before it returns, and the stand-in calls it before it acknowledges the upload;
- `claim` marks an event as being delivered by this process; a claim left by a process that died is released
  when the file is next opened, so that event is delivered again (at least once, never silently lost);
- the count of failed executions (SCF's retries) is stored with the event, so a restart does not reset it.

Durability: WAL with synchronous=FULL, so a commit is on disk (fsynced) before the upload is acknowledged,
matching the object store, which fsyncs every object. (NORMAL would survive kill -9 as well, since a committed
WAL frame is already in the OS's page cache, but could lose the last events on power loss.) One process owns
a queue file at a time (an exclusive flock next to it); its threads share one connection behind a lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAX_EVENT_AGE_S = 6 * 3600  # SCF's default Maximum Event Age (msgTTL 21600)
MAX_QUEUED_EVENTS = 100_000  # SCF's async queue limit per function

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL UNIQUE,  -- kept across SCF's retries and redeliveries
    event       TEXT NOT NULL,         -- the invocation's event, JSON
    enqueued_at REAL NOT NULL,         -- Unix time; the event's age counts from here
    not_before  REAL NOT NULL,         -- Unix time of the next delivery (retries wait SCF's interval)
    attempts    INTEGER NOT NULL DEFAULT 0,  -- failed executions so far (SCF's retry count)
    deliveries  INTEGER NOT NULL DEFAULT 0,  -- deliveries started, interrupted ones included
    claimed     INTEGER NOT NULL DEFAULT 0   -- 1 while this process delivers it
);
CREATE INDEX IF NOT EXISTS events_due ON events (claimed, not_before, id);
CREATE INDEX IF NOT EXISTS events_age ON events (enqueued_at);
"""


class QueueBusyError(RuntimeError):
    """Another process already delivers from this queue file."""


class QueueClosedError(RuntimeError):
    """The queue was closed; nothing more is stored."""


@dataclass(frozen=True)
class QueuedEvent:
    id: int
    request_id: str
    event: dict
    enqueued_at: float
    attempts: int  # failed executions before this delivery: 0 = first delivery, 1.. = SCF's retries
    deliveries: int  # deliveries started, this one included (more than attempts + 1: one was interrupted)


class EventQueue:
    """`EventQueue(path)` for a durable queue (None: in memory, for throwaway dispatchers)."""

    def __init__(self, path: Path | None, *, max_event_age_s: float = MAX_EVENT_AGE_S,
                 max_events: int = MAX_QUEUED_EVENTS, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.path = path
        self.max_event_age_s = max_event_age_s
        self.max_events = max_events
        self._clock = clock
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock_exclusively(path.with_name(path.name + ".lock"))
        try:
            self._db: sqlite3.Connection | None = sqlite3.connect(
                str(path) if path is not None else ":memory:", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            with _transaction(self._db):
                # Whatever a previous process was delivering when it died goes out again.
                self.interrupted_at_open = self._db.execute(
                    "UPDATE events SET claimed = 0 WHERE claimed = 1").rowcount
                ((self._count,),) = self._db.execute("SELECT COUNT(*) FROM events").fetchall()
        except BaseException:
            self.close()
            raise
        self.pending_at_open = self._count

    def __len__(self) -> int:
        """Events stored: queued, waiting for a retry or being delivered."""
        return self._count

    def put(self, request_id: str, event: dict) -> bool:
        """Store one event, committed (fsynced) before this returns; False when the queue is full."""
        payload = json.dumps(event, separators=(",", ":"))
        now = self._clock()
        with self._lock:
            db = self._open_db()
            if self._count >= self.max_events:
                return False
            with _transaction(db):
                db.execute("INSERT INTO events (request_id, event, enqueued_at, not_before) VALUES (?, ?, ?, ?)",
                           (request_id, payload, now, now))
            self._count += 1
            return True

    def claim(self) -> QueuedEvent | None:
        """The next due event, marked as being delivered; None when nothing is due."""
        with self._lock:
            db = self._open_db()
            with _transaction(db):
                rows = db.execute("SELECT id, request_id, event, enqueued_at, attempts, deliveries FROM events "
                                  "WHERE claimed = 0 AND not_before <= ? ORDER BY not_before, id LIMIT 1",
                                  (self._clock(),)).fetchall()
                if rows:
                    db.execute("UPDATE events SET claimed = 1, deliveries = deliveries + 1 WHERE id = ?",
                               (rows[0][0],))
        if not rows:
            return None
        row = rows[0]
        return QueuedEvent(id=row[0], request_id=row[1], event=json.loads(row[2]), enqueued_at=row[3],
                           attempts=row[4], deliveries=row[5] + 1)

    def next_due_in(self) -> float | None:
        """Seconds until the next unclaimed event is due (0 if one is), None if none is waiting."""
        with self._lock:
            ((due,),) = self._open_db().execute("SELECT MIN(not_before) FROM events WHERE claimed = 0").fetchall()
        return None if due is None else max(0.0, due - self._clock())

    def done(self, item: QueuedEvent) -> None:
        """Delivered, or given up on: the event leaves the queue."""
        with self._lock:
            db = self._open_db()
            with _transaction(db):
                deleted = db.execute("DELETE FROM events WHERE id = ?", (item.id,)).rowcount
            self._count -= deleted

    def retry(self, item: QueuedEvent, *, attempts: int, delay_s: float) -> None:
        """Back in the queue after `delay_s`, with `attempts` failed executions counted."""
        with self._lock:
            db = self._open_db()
            with _transaction(db):
                db.execute("UPDATE events SET claimed = 0, attempts = ?, not_before = ? WHERE id = ?",
                           (attempts, self._clock() + delay_s, item.id))

    def release(self, item: QueuedEvent) -> None:
        """An interrupted delivery: due again at once, its attempts unchanged."""
        with self._lock:
            db = self._open_db()
            with _transaction(db):
                db.execute("UPDATE events SET claimed = 0 WHERE id = ?", (item.id,))

    def expire(self) -> list[QueuedEvent]:
        """Remove and return the unclaimed events older than the maximum event age."""
        with self._lock:
            db = self._open_db()
            with _transaction(db):
                rows = db.execute("SELECT id, request_id, event, enqueued_at, attempts, deliveries FROM events "
                                  "WHERE claimed = 0 AND enqueued_at < ?",
                                  (self._clock() - self.max_event_age_s,)).fetchall()
                db.executemany("DELETE FROM events WHERE id = ?", [(row[0],) for row in rows])
            self._count -= len(rows)
        return [QueuedEvent(id=r[0], request_id=r[1], event=json.loads(r[2]), enqueued_at=r[3], attempts=r[4],
                            deliveries=r[5]) for r in rows]

    def close(self) -> None:
        with self._lock:
            if getattr(self, "_db", None) is not None:
                self._db.close()  # type: ignore[union-attr]
                self._db = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    def _open_db(self) -> sqlite3.Connection:
        if self._db is None:
            raise QueueClosedError(f"the trigger queue {self.path or '(in memory)'} is closed")
        return self._db


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One explicit write transaction. (In autocommit mode a statement left unfinished by another thread would
    hold the transaction open: every read here is fetched in full, and every write commits here.)"""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _lock_exclusively(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise QueueBusyError(f"{path.with_suffix('')} is in use by another process (another `superres local` on "
                             "the same data folder?); give each its own --data") from None
    return fd
