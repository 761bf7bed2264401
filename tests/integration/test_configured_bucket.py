"""A `.env` written for the deployment (another bucket, appid and region) works locally, and never reaches the
test suite: the stand-in serves the configured bucket's appid and region (and any bucket it is asked to create),
`superres demo` runs against it, and the suite run in a copy of the project with such a `.env` still passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError

from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from superres.standin import StandIn
from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY
from tests.integration.local_process import output_log, superres_local, wait_for_outcomes

ROOT = Path(__file__).resolve().parents[2]
USER_ENV = "BUCKET=mybucket-1300000000\nREGION=ap-shanghai\nDEST_PREFIX=results/   # where results go\n"


def _user_environment() -> dict[str, str]:
    """The environment a user's shell has: no SUPERRES_ENV_FILE, so the .env next to serverless.yml is read."""
    return {k: v for k, v in os.environ.items() if k != "SUPERRES_ENV_FILE" and not k.startswith("TENCENTCLOUD_")}


def _project_with_user_env(tmp_path: Path) -> Path:
    """serverless.yml, .env.example, handler/ and a user's .env in a folder of their own."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("serverless.yml", ".env.example"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "handler", project / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".env").write_text(USER_ENV, encoding="utf-8")
    return project


def _client(standin: StandIn, region: str) -> CosS3Client:
    return CosS3Client(CosConfig(Region=region, SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY, IP="127.0.0.1",
                                 Port=standin.port, Scheme="http"), retry=0)


def test_stack_serves_the_appid_and_region_of_the_configured_bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = _project_with_user_env(tmp_path)
    monkeypatch.setenv("SUPERRES_ENV_FILE", str(project / ".env"))
    options = StackOptions(data_dir=tmp_path / "data", serverless=project / "serverless.yml",
                           engine=load_engine("bicubic"))
    with LocalStack(options) as stack:
        assert (stack.settings.appid, stack.settings.region) == ("1300000000", "ap-shanghai")
        client = stack.client()
        assert client.head_bucket(Bucket="mybucket-1300000000")["x-cos-bucket-region"] == "ap-shanghai"
        client.put_object(Bucket="mybucket-1300000000", Key="uploads/a.png", Body=_png())
        assert stack.trigger.wait_idle(120)
        assert client.object_exists(Bucket="mybucket-1300000000", Key="results/uploads/a.png.png")


def test_any_appid_can_create_a_bucket_which_then_answers_in_its_own_region_only(standin: StandIn):
    shanghai, guangzhou = _client(standin, "ap-shanghai"), _client(standin, "ap-guangzhou")
    shanghai.create_bucket(Bucket="elsewhere-1300000001")
    shanghai.put_object(Bucket="elsewhere-1300000001", Key="k.txt", Body=b"hello")
    assert shanghai.head_bucket(Bucket="elsewhere-1300000001")["x-cos-bucket-region"] == "ap-shanghai"
    with pytest.raises(CosServiceError) as wrong_region:
        guangzhou.get_object(Bucket="elsewhere-1300000001", Key="k.txt")
    assert wrong_region.value.get_error_code() == "NoSuchBucket"
    assert "ap-shanghai" in wrong_region.value.get_error_msg()
    with pytest.raises(CosServiceError) as missing:
        shanghai.get_object(Bucket="nothere-1300000001", Key="k.txt")
    assert missing.value.get_error_code() == "NoSuchBucket"


def test_a_bucket_keeps_its_region_across_restarts(tmp_path: Path):
    from superres.standin import StandinSettings

    settings = StandinSettings(data_dir=tmp_path / "data")
    with StandIn(settings) as first:
        _client(first, "ap-beijing").create_bucket(Bucket="north-1250000000")
    with StandIn(settings) as again:
        assert _client(again, "ap-beijing").head_bucket(Bucket="north-1250000000")["x-cos-bucket-region"] == \
            "ap-beijing"


def test_demo_uses_the_configured_bucket_and_keeps_what_it_did_not_create(tmp_path: Path):
    project = _project_with_user_env(tmp_path)
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "data" / "mine.txt").write_text("a user's file\n")
    (out / "notes.txt").write_text("also mine\n")
    proc = subprocess.run([sys.executable, "-m", "superres", "demo", "--engine", "bicubic", "--out", str(out),
                           "--serverless", str(project / "serverless.yml")],
                          cwd=project, env=_user_environment(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.split("ProcessResults (parsed from the function's log line):\n", 1)[1]
                         .split("\noriginal:", 1)[0])
    assert results["key"] == "results/uploads/astronaut.jpg.png"  # the inline comment is not part of DEST_PREFIX
    assert results["location"] == "mybucket-1300000000.cos.ap-shanghai.myqcloud.com/results/uploads/astronaut.jpg.png"
    assert (out / "data" / "mine.txt").read_text() == "a user's file\n"
    assert (out / "notes.txt").read_text() == "also mine\n"
    assert sorted(p.name for p in out.iterdir()) == ["ai-astronaut.png", "before-after.png", "data",
                                                     "function-log.jsonl", "index.html", "input-astronaut.jpg",
                                                     "notes.txt"]


def test_superres_local_serves_the_bucket_of_the_users_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = _project_with_user_env(tmp_path)
    monkeypatch.setenv("SUPERRES_ENV_FILE", str(project / ".env"))
    data = tmp_path / "data"
    with superres_local(data, "--serverless", str(project / "serverless.yml")) as (_proc, port):
        client = CosS3Client(CosConfig(Region="ap-shanghai", SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY,
                                       IP="127.0.0.1", Port=port, Scheme="http"), retry=0)
        client.put_object(Bucket="mybucket-1300000000", Key="uploads/x.png", Body=_png())
        wait_for_outcomes(data, {"uploads/x.png"}, timeout=120)
        assert client.object_exists(Bucket="mybucket-1300000000", Key="results/uploads/x.png.png")
    banner = output_log(data, port).read_text(encoding="utf-8")
    assert "appid 1300000000  region ap-shanghai" in banner
    assert "buckets: mybucket-1300000000" in banner


def _tracked_copy(tmp_path: Path) -> Path:
    """The repository's tracked files in a folder of their own (a fresh clone without .git)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    copy = tmp_path / "clone"
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def test_suite_passes_with_a_user_env_naming_another_bucket_and_region(tmp_path: Path):
    clone = _tracked_copy(tmp_path)
    (clone / ".env").write_text(USER_ENV, encoding="utf-8")
    env = {**_user_environment(), "BUCKET": "shell-1300000002", "REGION": "ap-beijing"}  # and in the shell too
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/unit/test_serverless.py", "tests/unit/test_deploy_config.py",
         "tests/integration/test_trigger_e2e.py::test_output_does_not_trigger_more_work"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((32, 24)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()
