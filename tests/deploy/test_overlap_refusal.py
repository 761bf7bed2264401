"""A trigger prefix that overlaps DEST_PREFIX is refused, with one message, by everything that would run the
function or deploy it: every result would trigger the function again (and be billed again in the cloud)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from superres.cli import main
from superres.deploy.deployment import overlap_message
from superres.scf.serverless import CosTrigger
from tests.deploy.project_copy import ROOT, edit, project_copy

MESSAGE = overlap_message(CosTrigger("photos-1250000000", "ap-guangzhou", ("cos:ObjectCreated:*",), "uploads/", "",
                                     True), "uploads/out/")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = project_copy(tmp_path_factory.mktemp("overlap"))
    edit(project / ".env.example", "DEST_PREFIX=superres/", "DEST_PREFIX=uploads/out/")
    return project


COMMANDS = {
    "local": lambda p, tmp: ["local", "--serverless", str(p / "serverless.yml"), "--port", "0",
                             "--data", str(tmp)],
    "demo": lambda p, tmp: ["demo", "--serverless", str(p / "serverless.yml"), "--engine", "bicubic",
                            "--out", str(tmp)],
    "backfill": lambda p, tmp: ["backfill", "--serverless", str(p / "serverless.yml"), "--dry-run",
                                "--endpoint", "http://127.0.0.1:9"],
    "replay": lambda p, tmp: ["replay", "--serverless", str(p / "serverless.yml"), "--engine", "bicubic",
                              str(ROOT / "events" / "put_single.json")],
    "deploy": lambda p, tmp: ["deploy", "--project", str(p), "--dry-run"],
    "cam-policy": lambda p, tmp: ["cam-policy", "--serverless", str(p / "serverless.yml")],
    "check": lambda p, tmp: ["check", "--project", str(p)],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_overlapping_prefixes_are_refused_with_one_message(project: Path, tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(main, COMMANDS[command](project, tmp_path / "out"),
                                env={"TENCENTCLOUD_SECRETID": None, "TENCENTCLOUD_SECRETKEY": None})
    assert result.exit_code != 0, result.output
    assert MESSAGE in result.stderr, result.stderr
    assert not (tmp_path / "out" / "trigger.db").exists()  # nothing started
