"""`superres check --cloud` against the local cloud API (real tencentcloud-sdk-python and cos-python-sdk-v5 over
HTTP): a healthy account passes; an account with every problem at once gets each on its own line, in one run."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from superres.cli import main
from superres.scf.api import ScfApiServer, serve_scf_api
from superres.scf.client import make_client
from superres.stack import LocalStack, StackOptions
from tests.deploy.project_copy import edit, project_copy


def _stack(project: Path, data_dir: Path, roles: dict | None) -> LocalStack:
    return LocalStack(StackOptions(data_dir=data_dir, serverless=project / "serverless.yml", function=False,
                                   engine=object(), cam_roles=roles))


def _check(project: Path, stack: LocalStack, api: ScfApiServer) -> tuple[int, list[str]]:
    cred = stack.settings.credentials[0]
    result = CliRunner().invoke(main, ["check", "--cloud", "--project", str(project), "--env-file",
                                       str(project / ".env"), "--endpoint", api.endpoint,
                                       "--cos-endpoint", stack.standin.endpoint_url],
                                env={"TENCENTCLOUD_SECRETID": cred.secret_id, "TENCENTCLOUD_SECRETKEY": cred.secret_key,
                                     "RUNTIME": None})
    return result.exit_code, [line.removeprefix("problem: ") for line in result.stderr.splitlines()]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    # The check --cloud lines are about the account; the offline ones (layer built, .env) are kept out of the way.
    return project_copy(tmp_path, env="BUCKET=photos-1250000000\n")


def _offline(problems: list[str]) -> list[str]:
    """Drop the offline check's lines that these tests do not set up (the built layer, the placeholder bucket)."""
    return [p for p in problems if "layer for Python" not in p and "placeholder" not in p]


def test_a_ready_account_passes_the_cloud_checks(project: Path, tmp_path: Path) -> None:
    with _stack(project, tmp_path / "data", None) as stack, serve_scf_api(stack) as api:
        code, problems = _check(project, stack, api)
    assert _offline(problems) == []


@pytest.fixture
def broken(project: Path, tmp_path: Path) -> Iterator[tuple[Path, LocalStack, ScfApiServer]]:
    """No role, the bucket not bound to CI, the function already deployed with Python3.10, prefixes overlapping."""
    edit(project / ".env.example", "DEST_PREFIX=superres/", "DEST_PREFIX=uploads/superres/")
    with _stack(project, tmp_path / "data", {}) as stack, serve_scf_api(stack) as api:
        stack.ai_buckets.clear()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("index.py", "def main_handler(event, context):\n    return 'old'\n")
        client = make_client(stack.settings.region, scf_endpoint=api.endpoint, environ=stack.function_env())
        client.call_json("CreateFunction", {"FunctionName": "cos-superres-dev", "Runtime": "Python3.10",
                                            "Handler": "index.main_handler",
                                            "Code": {"ZipFile": base64.b64encode(buffer.getvalue()).decode()}})
        yield project, stack, api


def test_every_account_problem_is_one_line_in_one_run(broken: tuple[Path, LocalStack, ScfApiServer]) -> None:
    project, stack, api = broken
    code, problems = _check(project, stack, api)
    assert code == 1
    expected = {
        "CI not bound": "Cloud Infinite is not bound to photos-1250000000 with AI processing on",
        "missing role": "the execution role cos-superres-role (SCF_ROLE) does not exist",
        "runtime mismatch": "function cos-superres-dev runs Python3.10, RUNTIME is Python3.12",
        "overlap": "prefix 'uploads/' overlaps DEST_PREFIX 'uploads/superres/'",
    }
    for what, fragment in expected.items():
        assert sum(fragment in p for p in problems) == 1, (what, problems)


def test_a_role_without_the_policy_is_named(project: Path, tmp_path: Path) -> None:
    with _stack(project, tmp_path / "data", {"cos-superres-role": {"other": {"version": "2.0", "statement": [
            {"effect": "allow", "action": ["cos:GetObject"], "resource": ["*"]}]}}}) as stack, \
            serve_scf_api(stack) as api:
        _, problems = _check(project, stack, api)
    (line,) = _offline(problems)
    assert line.startswith("the execution role cos-superres-role lacks cam-policy.json's grants of ci:")


def test_wrong_keys_are_one_line(project: Path, tmp_path: Path) -> None:
    with _stack(project, tmp_path / "data", None) as stack, serve_scf_api(stack) as api:
        result = CliRunner().invoke(main, ["check", "--cloud", "--project", str(project), "--env-file",
                                           str(project / ".env"), "--endpoint", api.endpoint, "--cos-endpoint",
                                           stack.standin.endpoint_url],
                                    env={"TENCENTCLOUD_SECRETID": "AKIDnobody", "TENCENTCLOUD_SECRETKEY": "x"})
    problems = _offline([line.removeprefix("problem: ") for line in result.stderr.splitlines()])
    assert problems == [p for p in problems if "AuthFailure.SecretIdNotFound" in p] and len(problems) == 1, problems
