"""One JSON line per record on stdout (SCF collects stdout; some local runners treat stderr as failure)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import orjson

Emit = Callable[[dict[str, object]], None]


def emit_stdout(line: dict[str, object]) -> None:
    """Write one log line. Callers pass only fields they chose: never headers or credentials."""
    try:
        text = orjson.dumps(line, default=str).decode()
    except orjson.JSONEncodeError:
        # orjson refuses lone surrogates; json escapes them, so the record still gets its line.
        text = json.dumps(line, default=str)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
