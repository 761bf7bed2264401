"""Where `python -m bench` writes: untracked .superres/bench/ by default; the tracked bench/results.* and the
README's table only with --update-readme (`make bench-readme`), from a full run. The benchmarks themselves are
replaced by a fake runner here: what is under test is the writing, not the measuring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import Goal, Row, cli
from tests.conftest import ROOT

_README = "# project\n\n## Benchmarks\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\nprose after\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root holding a README with the markers and committed results, with every benchmark faked."""
    (tmp_path / "bench").mkdir()
    (tmp_path / "README.md").write_text(_README, encoding="utf-8")
    (tmp_path / "bench" / "results.json").write_text("[]\n", encoding="utf-8")
    (tmp_path / "bench" / "results.md").write_text("old table\n", encoding="utf-8")
    monkeypatch.setattr(cli, "_runner", lambda name: lambda quick: [Row(f"{name} figure", 1.5, "x", Goal("<=", 2))])
    return tmp_path


def _tracked(root: Path) -> dict[str, str]:
    return {p: (root / p).read_text(encoding="utf-8") for p in ("README.md", "bench/results.json", "bench/results.md")}


def test_a_run_without_the_flag_leaves_tracked_files_alone(project: Path) -> None:
    before = _tracked(project)
    assert cli.main([], root=project) == 0
    assert _tracked(project) == before
    rows = json.loads((project / ".superres" / "bench" / "results.json").read_text(encoding="utf-8"))["rows"]
    assert [row["name"] for row in rows] == [f"{name} figure" for name in cli.BENCHMARKS]
    assert (project / ".superres" / "bench" / "results.md").is_file()


def test_a_partial_run_leaves_tracked_files_alone(project: Path) -> None:
    before = _tracked(project)
    assert cli.main(["--only", "sr_speed", "--quick"], root=project) == 0
    assert _tracked(project) == before


def test_benchmarks_named_as_arguments_run_alone(project: Path) -> None:
    assert cli.main(["vs_moto", "--quick"], root=project) == 0
    rows = json.loads((project / ".superres" / "bench" / "results.json").read_text(encoding="utf-8"))["rows"]
    assert [row["name"] for row in rows] == ["vs_moto figure"]


def test_names_and_only_together_are_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["vs_moto", "--only", "cold_start"], root=project)
    assert exit_.value.code == 2
    assert "either as arguments or with --only" in capsys.readouterr().err


def test_update_readme_publishes_the_full_run_to_the_tracked_files(project: Path) -> None:
    assert cli.main(["--update-readme"], root=project) == 0
    table = (project / "bench" / "results.md").read_text(encoding="utf-8")
    assert "| cold_start figure | 1.50 | x | <= 2 | yes |" in table
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert "old table" not in readme and readme.endswith("<!-- bench:end -->\n\nprose after\n")
    assert readme.split("<!-- bench:start -->")[1].split("<!-- bench:end -->")[0].strip() == table.strip()
    assert len(json.loads((project / "bench" / "results.json").read_text(encoding="utf-8"))["rows"]) == len(
        cli.BENCHMARKS)
    assert not (project / ".superres").exists()


def test_the_default_output_is_ignored_by_git() -> None:
    done = subprocess.run(["git", "check-ignore", "--no-index", str(cli.UNTRACKED_OUT),
                           str(cli.UNTRACKED_OUT.with_suffix(".md"))], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 2


@pytest.mark.parametrize("extra", [["--only", "cold_start"], ["vs_moto"], ["--quick"], ["--out", "x.json"]])
def test_update_readme_refuses_a_partial_run(extra: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--update-readme", *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "--update-readme publishes a full run: it takes no --only, --quick or --out" in done.stderr


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_the_results_say_which_commit_they_were_measured_on(project: Path) -> None:
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "the measured source")
    head = _git(project, "rev-parse", "HEAD")
    assert cli.main(["--update-readme"], root=project) == 0
    published = json.loads((project / "bench" / "results.json").read_text(encoding="utf-8"))
    assert (published["commit"], published["uncommitted_changes"]) == (head, False)
    table = (project / "bench" / "results.md").read_text(encoding="utf-8")
    assert f"measured on commit {head[:12]} (generated" in table.splitlines()[0]
    assert f"commit {head[:12]}" in (project / "README.md").read_text(encoding="utf-8")


def test_uncommitted_changes_are_said_and_a_folder_outside_git_is_unknown(project: Path) -> None:
    assert cli.main([], root=project) == 0
    untracked = json.loads((project / ".superres" / "bench" / "results.json").read_text(encoding="utf-8"))
    assert (untracked["commit"], untracked["uncommitted_changes"]) == (None, None)
    assert "measured on an unknown commit" in (project / ".superres" / "bench" / "results.md").read_text("utf-8")
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "base")
    (project / "README.md").write_text(_README + "an edit\n", encoding="utf-8")
    assert cli.main(["--only", "cold_start"], root=project) == 0
    changed = json.loads((project / ".superres" / "bench" / "results.json").read_text(encoding="utf-8"))
    assert changed["commit"] == _git(project, "rev-parse", "HEAD") and changed["uncommitted_changes"] is True
    assert "with uncommitted changes" in (project / ".superres" / "bench" / "results.md").read_text("utf-8")
