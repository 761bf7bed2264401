"""The reconcile report: one JSON line per source whose results are missing or stale, sorted by key; written by
`superres reconcile`, read back by `superres backfill --from-report` as its sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .plan import ListedObject, PlanItem, parse_last_modified

# -- the reconcile report: one JSON line per source whose results are missing or stale, sorted by key ----------

def report_line(item: PlanItem) -> str:
    obj = item.obj
    return json.dumps({"key": obj.key, "size": obj.size, "etag": obj.etag, "last_modified": obj.last_modified,
                       "state": item.reason, "results": list(item.todo)}, ensure_ascii=False) + "\n"


@dataclass
class ReportSource:
    """A `superres reconcile` report as the backfill's sources (the report is written in key order)."""

    path: Path
    prefix: str = ""
    description: str = "report"

    def objects(self, after: str | None) -> Iterator[ListedObject]:
        with self.path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    obj = ListedObject(str(entry["key"]), int(entry.get("size") or 0), str(entry.get("etag") or ""),
                                       parse_last_modified(entry.get("last_modified")))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{self.path} line {number} is not a reconcile report line ({exc})") from None
                if obj.key.startswith(self.prefix) and (after is None or obj.key > after):
                    yield obj

    def total(self) -> int | None:
        with self.path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
