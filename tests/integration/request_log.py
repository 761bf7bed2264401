"""Counting the requests the stand-in served, from its own request log (logger "superres.standin": one JSON line
per request with method, bucket, key and status), so a test can assert "no HEAD per object" or "one CI call per
object" for work done in this process or by a `superres` subprocess talking to this process's stand-in."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager


class RequestLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._lock_entries = threading.Lock()
        self.entries: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = json.loads(record.getMessage())
        except (TypeError, ValueError):
            return
        if isinstance(entry, dict) and "method" in entry and "status" in entry:
            with self._lock_entries:
                self.entries.append(entry)

    def clear(self) -> None:
        with self._lock_entries:
            self.entries.clear()

    def _snapshot(self) -> list[dict]:
        with self._lock_entries:
            return list(self.entries)

    def total(self) -> int:
        return len(self._snapshot())

    def count(self, method: str, prefix: str = "") -> int:
        """Requests of `method` (to keys starting with `prefix`)."""
        return sum(1 for e in self._snapshot() if e["method"] == method and e["key"].startswith(prefix))

    def ci_calls(self) -> Counter[str]:
        """Successful persistent-processing calls (POST to an object key: `ci_image_process`), per source key."""
        return Counter(e["key"] for e in self._snapshot() if e["method"] == "POST" and e["key"]
                       and e["status"] == 200)

    @classmethod
    @contextmanager
    def attached(cls) -> Iterator[RequestLog]:
        logger = logging.getLogger("superres.standin")
        handler = cls()
        level = logger.level
        logger.addHandler(handler)
        if not logger.isEnabledFor(logging.INFO):
            logger.setLevel(logging.INFO)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
