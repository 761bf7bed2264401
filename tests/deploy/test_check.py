"""`superres check`: passes on the shipped project (.env.example only), names each problem on a broken copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from superres.cli import main
from superres.deploy.layer import build_layer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built_layer() -> Path:
    """`make layer` for .env.example's RUNTIME (reused when unchanged); returns layers/."""
    build_layer(log=lambda line: None)
    return ROOT / "layers"


def _copy(tmp_path: Path, built_layer: Path) -> Path:
    project = tmp_path / "project"
    (project / "layers").mkdir(parents=True)
    for name in ("serverless.yml", ".env.example", "cam-policy.json", "layers/serverless.yml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "handler", project / "handler")
    for folder in ("build", "dist"):
        (project / "layers" / folder).symlink_to(built_layer / folder, target_is_directory=True)
    return project


# A user's own .env: their bucket (not .env.example's placeholder), and cam-policy.json regenerated for it.
OWN_ENV = "BUCKET=holiday-photos-1301234567\n"


def _own_env(project: Path) -> Path:
    (project / ".env").write_text(OWN_ENV, encoding="utf-8")
    result = CliRunner().invoke(main, ["cam-policy", "--serverless", str(project / "serverless.yml")],
                                env={"RUNTIME": None, "SUPERRES_ENV_FILE": str(project / ".env")})
    assert result.exit_code == 0, result.output
    (project / "cam-policy.json").write_text(result.stdout, encoding="utf-8")
    return project


def _check(project: Path) -> tuple[int, list[str], str]:
    args = ["check", "--project", str(project), "--env-file", str(project / ".env")]
    result = CliRunner().invoke(main, args, env={"RUNTIME": None})
    problems = [line.removeprefix("problem: ") for line in result.stderr.splitlines() if line.startswith("problem: ")]
    return result.exit_code, problems, result.stdout


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_shipped_project_with_its_own_env_passes(tmp_path: Path, built_layer: Path) -> None:
    code, problems, out = _check(_own_env(_copy(tmp_path, built_layer)))
    assert (code, problems) == (0, [])
    assert out.startswith("ok: ")


def test_a_fresh_clone_without_env_is_not_ready(tmp_path: Path, built_layer: Path) -> None:
    code, problems, _ = _check(_copy(tmp_path, built_layer))
    assert code == 1
    assert problems == ["no .env: run `cp .env.example .env` and set BUCKET (and REGION) for your account; "
                        ".env.example holds placeholders"]


def test_env_example_placeholder_bucket_is_a_problem(tmp_path: Path, built_layer: Path) -> None:
    project = _copy(tmp_path, built_layer)
    (project / ".env").write_text("MAGNIFY=4\n", encoding="utf-8")
    code, problems, _ = _check(project)
    assert code == 1
    assert problems == ["BUCKET=photos-1250000000 is .env.example's placeholder: set your own in .env"]


def test_a_layers_env_that_would_shadow_the_projects_is_a_problem(tmp_path: Path, built_layer: Path) -> None:
    project = _own_env(_copy(tmp_path, built_layer))
    (project / "layers" / ".env").write_text("TENCENT_SECRET_ID=x\n", encoding="utf-8")
    code, problems, _ = _check(project)
    assert code == 1 and len(problems) == 1 and problems[0].startswith("layers/.env exists"), problems


def test_broken_copy_names_each_problem_on_its_own_line(tmp_path: Path, built_layer: Path) -> None:
    project = _own_env(_copy(tmp_path, built_layer))
    _edit(project / ".env.example", "SCF_ROLE=cos-superres-role\n", "")
    _edit(project / ".env.example", "DEST_PREFIX=superres/", "DEST_PREFIX=uploads/out/")
    _edit(project / ".env.example", "ASYNC_RETRY_NUM=2", "ASYNC_RETRY_NUM=two")
    _edit(project / "layers" / "serverless.yml", "    - ${env:RUNTIME}", "    - Python3.10")
    _edit(project / "serverless.yml", "Super resolves", "Super-resolves (AI)")
    _edit(project / "serverless.yml", "enable: true", "enable: false")
    _edit(project / "cam-policy.json", "cos:GetObject", "cos:GetObjectAcl")
    code, problems, _ = _check(project)
    assert code == 1
    expected = {
        "unset variable": "${env:SCF_ROLE} is not set",
        "runtime mismatch": "the layer's runtimes ['Python3.10'] are not the function's runtime",
        "bad description": "serverless.yml description 'Super-resolves (AI)",
        "trigger disabled": "has enable: false",
        "stale policy": "cam-policy.json is not the policy",
        "bad retry setting": "ASYNC_RETRY_NUM must be a whole number",
    }
    for what, fragment in expected.items():
        assert sum(fragment in p for p in problems) == 1, (what, problems)
    # The disabled trigger cannot fire on its own results, so the overlap is reported once it is enabled again.
    _edit(project / "serverless.yml", "enable: false", "enable: true")
    code, problems, _ = _check(project)
    assert code == 1 and any("trigger the function again" in p for p in problems), problems


def test_runtime_without_a_built_layer_is_reported(tmp_path: Path, built_layer: Path) -> None:
    project = _own_env(_copy(tmp_path, built_layer))
    _edit(project / ".env.example", "RUNTIME=Python3.12", "RUNTIME=Python3.9")
    code, problems, _ = _check(project)
    assert code == 1
    assert problems == ["the layer for Python 3.9 is not built (no layers/build/Python3.9): run `make layer`"]


def test_runtime_that_is_not_python_is_reported(tmp_path: Path, built_layer: Path) -> None:
    project = _own_env(_copy(tmp_path, built_layer))
    _edit(project / ".env.example", "RUNTIME=Python3.12", "RUNTIME=Nodejs18.15")
    code, problems, _ = _check(project)
    assert code == 1 and any("RUNTIME must be an SCF Python runtime" in p for p in problems), problems
