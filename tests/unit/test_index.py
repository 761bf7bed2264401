"""The SCF entry point imports with only the handler folder on the path, and fails loudly on bad settings."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import HANDLER

IMPORT = "import sys; sys.path.insert(0, sys.argv[1]); import index; print(callable(index.main_handler))"


def _import(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DEST_PREFIX", "MAGNIFY"}}
    return subprocess.run([sys.executable, "-c", IMPORT, str(HANDLER)], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_index_imports_with_valid_settings():
    proc = _import({"DEST_PREFIX": "superres/"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_missing_dest_prefix_fails_at_cold_start_naming_the_variable():
    proc = _import({})
    assert proc.returncode != 0
    assert "DEST_PREFIX" in proc.stderr
    # the same message is also the one JSON log line on stdout
    assert '"variable":"DEST_PREFIX"' in proc.stdout


def test_invalid_magnify_names_variable_and_allowed_values():
    proc = _import({"DEST_PREFIX": "superres/", "MAGNIFY": "8"})
    assert proc.returncode != 0
    assert "MAGNIFY: allowed values are 2 or 4" in proc.stderr
