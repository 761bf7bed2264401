from __future__ import annotations

from pathlib import Path

import pytest

from superres.scf.serverless import CosTrigger, ServerlessConfigError, load_function_spec, read_env_files
from tests.conftest import ROOT


def test_project_serverless_yml_resolves_from_env_example():
    spec = load_function_spec(ROOT / "serverless.yml", environ={})
    assert spec.handler == "index.main_handler"
    assert spec.src == ROOT / "handler"
    assert spec.region == "ap-guangzhou"
    (trigger,) = spec.triggers
    assert trigger == CosTrigger("photos-1250000000", "ap-guangzhou", ("cos:ObjectCreated:*",), "uploads/", "", True)
    assert spec.environment["DEST_PREFIX"] == "superres/"


def test_process_environment_overrides_env_files():
    spec = load_function_spec(ROOT / "serverless.yml", environ={"DEST_PREFIX": "out/", "BUCKET": "x-1250000001"})
    assert spec.environment["DEST_PREFIX"] == "out/"
    assert spec.triggers[0].bucket == "x-1250000001"


def test_dotenv_wins_over_example(tmp_path: Path):
    (tmp_path / ".env.example").write_text("A=1\nB=2\n")
    (tmp_path / ".env").write_text("# comment\nexport B='3'\n")
    assert read_env_files(tmp_path, environ={}, env_file=tmp_path / ".env") == {"A": "1", "B": "3"}


def test_inline_comment_is_not_part_of_the_value(tmp_path: Path):
    (tmp_path / ".env").write_text("DEST_PREFIX=results/   # note\nQUOTED='a # b'\n")
    values = read_env_files(tmp_path, environ={}, env_file=tmp_path / ".env")
    assert values["DEST_PREFIX"] == "results/"
    assert values["QUOTED"] == "a # b"


def test_suite_reads_no_dotenv_of_the_user(tmp_path: Path):
    # tests/conftest.py sets SUPERRES_ENV_FILE="": a .env next to serverless.yml is not read.
    (tmp_path / ".env.example").write_text("BUCKET=photos-1250000000\n")
    (tmp_path / ".env").write_text("BUCKET=mybucket-1300000000\n")
    assert read_env_files(tmp_path, environ={}) == {"BUCKET": "photos-1250000000"}


def test_env_file_variable_names_the_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "other.env").write_text("BUCKET=other-1300000000\n")
    monkeypatch.setenv("SUPERRES_ENV_FILE", str(tmp_path / "other.env"))
    assert read_env_files(tmp_path, environ={}) == {"BUCKET": "other-1300000000"}


def test_missing_env_example_is_named(tmp_path: Path):
    (tmp_path / "serverless.yml").write_text("component: scf\ninputs:\n  region: ${env:REGION}\n")
    with pytest.raises(ServerlessConfigError, match=r"\.env\.example is missing"):
        load_function_spec(tmp_path / "serverless.yml", environ={})


def test_unset_variable_is_a_clear_error(tmp_path: Path):
    (tmp_path / "serverless.yml").write_text("component: scf\ninputs:\n  region: ${env:NOPE}\n")
    with pytest.raises(ServerlessConfigError, match=r"\$\{env:NOPE\} is not set"):
        load_function_spec(tmp_path / "serverless.yml", environ={})


def test_bad_trigger_bucket_is_a_clear_error(tmp_path: Path):
    (tmp_path / "serverless.yml").write_text(
        "component: scf\ninputs:\n  events:\n    - cos:\n        parameters:\n          bucket: mybucket\n")
    with pytest.raises(ServerlessConfigError, match="myqcloud.com"):
        load_function_spec(tmp_path / "serverless.yml", environ={})


@pytest.mark.parametrize(
    ("bucket", "event", "key", "fires"),
    [
        ("b-1", "cos:ObjectCreated:Put", "uploads/a.jpg", True),
        ("b-1", "cos:ObjectCreated:CompleteMultipartUpload", "uploads/a.jpg", True),
        ("b-1", "cos:ObjectRemove:Delete", "uploads/a.jpg", False),
        ("b-1", "cos:ObjectCreated:Put", "superres/uploads/a.jpg", False),
        ("b-2", "cos:ObjectCreated:Put", "uploads/a.jpg", False),
        ("b-1", "cos:ObjectCreated:Put", "uploads/a.png", False),
    ],
)
def test_trigger_matches_like_cos(bucket, event, key, fires):
    trigger = CosTrigger("b-1", "ap-guangzhou", ("cos:ObjectCreated:*",), "uploads/", ".jpg", True)
    assert trigger.matches(bucket, event, key) is fires


def test_disabled_trigger_never_fires():
    trigger = CosTrigger("b-1", "ap-guangzhou", ("cos:ObjectCreated:*",), "", "", False)
    assert not trigger.matches("b-1", "cos:ObjectCreated:Put", "a.jpg")
