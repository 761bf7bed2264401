"""Shared test helpers: sample events from events/, and the function's code on sys.path like SCF's /var/user."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
HANDLER = ROOT / "handler"

if str(HANDLER) not in sys.path:
    sys.path.insert(0, str(HANDLER))

# ---- hermetic: the user's deployment settings never reach the suite ---------------------------------------------
# serverless.yml resolves ${env:...} from .env.example, then .env, then the process environment. The suite sees
# .env.example only: no .env (SUPERRES_ENV_FILE="" names none) and none of its variables from the shell. Set here,
# at import, so every `superres` subprocess a test starts inherits it.
os.environ["SUPERRES_ENV_FILE"] = ""
for _name in dotenv_values(ROOT / ".env.example"):
    os.environ.pop(_name, None)


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))


# ---- no secret in any log line of the suite ------------------------------------------------------------------------
# Every log record of the `superres` loggers (stand-in, local SCF) is scanned as it is emitted, and at the end of the
# session every function log the suite wrote (function-log.jsonl, `superres local` output) is read back. A test that
# uses its own keys adds them with `register_secret`. "q-signature=" is in every Authorization value.
SECRET_MARKERS: set[str] = {"q-signature=", "q-sign-algorithm="}


def register_secret(*values: str | None) -> None:
    SECRET_MARKERS.update(v for v in values if v)


def leaked_secrets(text: str) -> list[str]:
    return sorted(marker for marker in SECRET_MARKERS if marker in text)


class _SecretScanner(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.leaks: list[tuple[str, list[str]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            found = leaked_secrets(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not ours to judge
            return
        if found:
            self.leaks.append((record.name, found))


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SecretScanner]:
    from superres.standin.settings import DEMO_SECRET_KEY

    register_secret(DEMO_SECRET_KEY)
    scanner = _SecretScanner()
    logger = logging.getLogger("superres")
    level = logger.level
    logger.addHandler(scanner)
    logger.setLevel(logging.DEBUG)
    try:
        yield scanner
    finally:
        logger.removeHandler(scanner)
        logger.setLevel(level)
    base = tmp_path_factory.getbasetemp()
    files = [*base.rglob("function-log.jsonl"), *base.rglob("superres-local-*.log")]
    leaks = [(str(path), found) for path in files
             if (found := leaked_secrets(path.read_text(encoding="utf-8", errors="replace")))]
    assert not scanner.leaks and not leaks, f"secrets in log lines: {scanner.leaks[:5]} {leaks[:5]}"
