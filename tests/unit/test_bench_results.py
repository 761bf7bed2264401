"""bench/ writes results.json rows of a fixed shape (the README's table comes from them). No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_quick_cold_start_run_writes_rows_of_the_documented_shape(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "cold_start", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    if (ROOT / ".git").exists():  # a clone (a worktree's .git is a file); an exported tree has no commit
        assert isinstance(document["commit"], str) and len(document["commit"]) == 40
    rows = document["rows"]
    assert rows and all({"name", "value", "unit", "goal", "meets"} <= set(row) for row in rows)
    for row in rows:
        assert isinstance(row["name"], str) and isinstance(row["unit"], str)
        assert row["value"] is None or isinstance(row["value"], (int, float))
        assert (row["goal"] is None) == (row["meets"] is None)
        assert row["meets"] is None or isinstance(row["meets"], bool)
    assert any(row["goal"] == "<= 1.10" for row in rows)
    assert out.with_suffix(".md").read_text(encoding="utf-8").count("\n|") == len(rows) + 2  # header, separator, rows
    assert rows[0]["name"] in done.stdout


def test_unknown_benchmark_name_is_refused() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "unknown benchmark" in done.stderr


def test_readme_quotes_the_committed_bench_table_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = readme.split("<!-- bench:start -->", 1)[1].split("<!-- bench:end -->", 1)[0]
    assert quoted.strip() == (ROOT / "bench" / "results.md").read_text(encoding="utf-8").strip()
