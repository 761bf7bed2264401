"""The CLI's error boundary, driven as a user drives it (a subprocess): every known failure is one or two lines on
stderr naming what is wrong and what to do, with a non-zero exit status and no traceback; `--debug` shows it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from superres.standin.settings import DEMO_SECRET_ID
from tests.integration.local_process import cos_client, free_port, superres_local

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def superres(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
             timeout: float = 180) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    return subprocess.run([sys.executable, "-m", "superres", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def assert_short_error(proc: subprocess.CompletedProcess[str], *fragments: str, code: int = 1) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 1 <= len(error_lines) <= 3, proc.stderr  # the error itself, maybe a progress line before it
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A `superres local` of its own (bicubic), and its data folder."""
    data = tmp_path_factory.mktemp("cli-errors") / "data"
    with superres_local(data) as (_proc, port):
        yield port, data


def test_replay_with_a_wrong_secret_key_prints_the_cos_code_and_message(running):
    port, _ = running
    proc = superres("replay", "--endpoint", f"http://127.0.0.1:{port}", str(EVENTS / "put_single.json"),
                    env={"TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": "not-the-key"})
    assert_short_error(proc, "SignatureDoesNotMatch", "TENCENTCLOUD_SECRETKEY")
    assert "Unknown" not in proc.stderr
    assert "not-the-key" not in proc.stderr + proc.stdout


def test_replay_with_an_unknown_secret_id_names_invalid_access_key_id(running):
    port, _ = running
    proc = superres("replay", "--endpoint", f"http://127.0.0.1:{port}", str(EVENTS / "put_single.json"),
                    env={"TENCENTCLOUD_SECRETID": "AKIDnobodyKNOWSthis000000000000000000",
                         "TENCENTCLOUD_SECRETKEY": "whatever-key"})
    assert_short_error(proc, "InvalidAccessKeyId")


def test_replay_with_a_mistyped_bucket_refuses_and_creates_nothing(running):
    port, _ = running
    proc = superres("replay", "--endpoint", f"http://127.0.0.1:{port}", "--bucket", "photoz-1250000000",
                    str(EVENTS / "put_single.json"))
    assert_short_error(proc, "bucket photoz-1250000000 does not exist", "--create-bucket")
    assert not cos_client(port).bucket_exists(Bucket="photoz-1250000000")


def test_replay_creates_a_missing_bucket_only_when_asked(running):
    port, _ = running
    proc = superres("replay", "--endpoint", f"http://127.0.0.1:{port}", "--bucket", "other-1250000000",
                    "--create-bucket", str(EVENTS / "non_image.json"))
    assert proc.returncode == 0, proc.stderr
    assert "bucket other-1250000000 (created)" in proc.stdout
    assert cos_client(port).bucket_exists(Bucket="other-1250000000")


def test_replay_against_a_stand_in_that_is_not_running_names_the_endpoint():
    port = free_port()
    proc = superres("replay", "--endpoint", f"http://127.0.0.1:{port}", str(EVENTS / "put_single.json"))
    assert_short_error(proc, f"http://127.0.0.1:{port}", "connection refused", f"superres local --port {port}")


def test_backfill_against_a_stand_in_that_is_not_running_names_the_endpoint():
    port = free_port()
    proc = superres("backfill", "--endpoint", f"http://127.0.0.1:{port}", "--dry-run", "--no-progress",
                    timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and "superres local" in proc.stderr, proc.stderr


def test_backfill_of_a_missing_bucket_says_it_does_not_exist(running):
    port, _ = running
    proc = superres("backfill", "--endpoint", f"http://127.0.0.1:{port}", "--bucket", "nosuch-1250000000",
                    "--prefix", "uploads/", "--dry-run", "--no-progress", "--checkpoint", os.devnull)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "nosuch-1250000000" in proc.stderr and "NoSuchBucket" in proc.stderr, proc.stderr


def test_local_on_a_port_in_use_says_so(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = superres("local", "--engine", "bicubic", "--port", str(port), "--data", str(tmp_path / "data"))
    assert_short_error(proc, f"port {port} on 127.0.0.1 is already in use", "--port")


def test_local_scf_api_port_in_use_names_its_option(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = superres("local", "--engine", "bicubic", "--port", "0", "--scf-api-port", str(port),
                        "--data", str(tmp_path / "data"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr and "--scf-api-port" in proc.stderr


def _project_without_env_example(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "serverless.yml", tmp_path / "serverless.yml")
    return tmp_path / "serverless.yml"


@pytest.mark.parametrize("command", [["local", "--engine", "bicubic", "--port", "0"], ["cam-policy"]])
def test_missing_env_example_is_named(tmp_path: Path, command: list[str]):
    serverless = _project_without_env_example(tmp_path)
    proc = superres(*command, "--serverless", str(serverless), *(["--data", str(tmp_path / "d")]
                                                                  if command[0] == "local" else []))
    assert_short_error(proc, ".env.example is missing", "is not set")


def test_missing_serverless_yml_is_named(tmp_path: Path):
    proc = superres("cam-policy", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "serverless.yml" in proc.stderr and "does not exist" in proc.stderr


def test_demo_into_a_path_that_cannot_be_a_folder_names_it(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    proc = superres("demo", "--engine", "bicubic", "--out", str(blocker / "out"))
    assert_short_error(proc, str(blocker / "out"))


def test_local_data_folder_under_a_file_names_it(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    proc = superres("local", "--engine", "bicubic", "--port", "0", "--data", str(blocker / "data"))
    assert_short_error(proc, str(blocker / "data"))


def test_cam_policy_check_of_a_non_json_file_says_so(tmp_path: Path):
    bad = tmp_path / "cam-policy.json"
    bad.write_text("{ truncated")
    proc = superres("cam-policy", "--check", str(bad))
    assert_short_error(proc, f"{bad} is not a JSON policy", "superres cam-policy >")


def test_local_refuses_an_invalid_magnify_at_start(tmp_path: Path):
    proc = superres("local", "--engine", "bicubic", "--port", "0", "--data", str(tmp_path / "d"),
                    env={"MAGNIFY": "3"})
    assert_short_error(proc, "MAGNIFY", "2 or 4")
    assert "Ctrl-C to stop" not in proc.stderr  # refused before serving, not at the first upload


def test_debug_shows_the_traceback(tmp_path: Path):
    proc = superres("--debug", "local", "--engine", "bicubic", "--port", "0", "--data", str(tmp_path / "d"),
                    env={"MAGNIFY": "3"})
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr
