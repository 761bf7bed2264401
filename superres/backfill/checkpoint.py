"""The backfill checkpoint: after every handled batch, the last key of the handled prefix of the sorted sources, the
totals, the CI calls used and the --max-calls cap, written atomically, with the identity of the run (endpoint,
region, mode, bucket, prefix) so that another run is never resumed from it by mistake."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from .options import BackfillError, Totals

VERSION = 2
IDENTITY_FIELDS = ("endpoint", "region", "mode", "bucket", "prefix")


def resume_point(path: Path, identity: Mapping[str, object], *, say: Callable[[str], None],
                 unreachable: Callable[[], str | None]) -> tuple[str | None, Totals, bool, int | None]:
    """(marker, earlier totals, resumed, stored --max-calls) from the checkpoint at `path`; a fresh start when there
    is none or it holds a finished run. A checkpoint of another unfinished run is refused, naming what differs
    (and, first, why the bucket cannot be listed, when that is the real problem)."""
    if not path.is_file():
        return None, Totals(), False, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise BackfillError(f"{path} is not a readable checkpoint ({exc}): delete it, or pass --no-resume to "
                            "start over") from None
    if data.get("version") != VERSION:
        raise BackfillError(f"{path} was written by another version of superres backfill (checkpoint version "
                            f"{data.get('version')!r}, this one reads {VERSION}): pass --no-resume to "
                            "start over (finished objects are found done)")
    theirs = {name: data.get(name) for name in IDENTITY_FIELDS}
    if theirs != {name: identity.get(name) for name in IDENTITY_FIELDS}:
        differs = ", ".join(f"{name} {theirs[name]!r} (this run: {identity.get(name)!r})" for name in IDENTITY_FIELDS
                            if theirs[name] != identity.get(name))
        if data.get("complete"):
            # A finished run resumes nothing, so nothing would be skipped: this run starts afresh.
            say(f"{path} holds a finished backfill ({differs}): starting this one from the beginning")
            return None, Totals(), False, None
        problem = unreachable()  # the real problem first: a wrong endpoint is often both
        raise BackfillError((f"{problem}; also, " if problem else "") +
                            f"{path} is the checkpoint of another backfill: {differs}. Resuming it would skip "
                            "objects this run has not handled: pass --checkpoint FILE for this run, or "
                            "--no-resume to start over")
    cap = data.get("max_calls")
    cap = int(cap) if isinstance(cap, int) else None
    if data.get("complete"):
        return None, Totals(), False, None  # the last run finished: start over (finished objects are skipped)
    return data.get("marker"), Totals.from_dict(data.get("totals") or {}), True, cap


def save(path: Path, identity: Mapping[str, object], *, marker: str | None, totals: Totals, max_calls: int | None,
         complete: bool) -> None:
    """Write the checkpoint atomically (temp file, fsync, rename)."""
    data = {"version": VERSION, **identity, "marker": marker, "complete": complete, "max_calls": max_calls,
            "totals": totals.as_dict(), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
