"""Shared test helpers: sample events from events/, and the function's code on sys.path like SCF's /var/user."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
HANDLER = ROOT / "handler"

if str(HANDLER) not in sys.path:
    sys.path.insert(0, str(HANDLER))


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))
