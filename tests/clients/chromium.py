"""Debian's Chromium driven from node by puppeteer-core (tests/clients/browser, pinned by its lockfile and installed
by `make test`; .ci/run installs chromium): where things are, the skip when they are not, and running a script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER_DIR = Path(__file__).parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

requires_chromium = pytest.mark.skipif(
    not (shutil.which("node") and Path(CHROMIUM).exists() and (BROWSER_DIR / "node_modules").is_dir()),
    reason="node, chromium or tests/clients/browser/node_modules missing: run `make test` (npm ci) after .ci/run "
           "installed chromium",
)


def run_script(script: str, *args: str, timeout: float = 400) -> dict:
    """`node browser/SCRIPT ARGS...` and the JSON it prints (the test fails with its stderr when it exits non-zero)."""
    done = subprocess.run(["node", str(BROWSER_DIR / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=BROWSER_DIR, env={**os.environ, "CHROMIUM_PATH": CHROMIUM})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)
