"""One JSON line per record on stdout (SCF collects stdout; some local runners treat stderr as failure)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import orjson

Emit = Callable[[dict[str, object]], None]


def emit_stdout(line: dict[str, object]) -> None:
    """Write one log line. Callers pass only fields they chose: never headers or credentials."""
    sys.stdout.write(orjson.dumps(line, default=str).decode() + "\n")
    sys.stdout.flush()
