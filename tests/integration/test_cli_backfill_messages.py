"""What `superres backfill`, `reconcile` and `replay --deployed` tell a user when something is wrong, driven as a
user drives them (a subprocess: stderr and exit status): the real problem first, in one line naming what to do."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from superres.stack import LocalStack
from superres.standin.settings import DEMO_SECRET_ID
from tests.integration.local_process import free_port
from tests.integration.test_backfill import _upload, png  # noqa: F401
from tests.integration.test_cli_errors import assert_short_error, superres

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SERVERLESS = str(ROOT / "serverless.yml")
KEYS = {"TENCENTCLOUD_SECRETID": "AKIDpresent", "TENCENTCLOUD_SECRETKEY": "sup3r-secret-value"}


def _backfill(stack: LocalStack, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return superres("backfill", "--serverless", SERVERLESS, "--endpoint", stack.standin.endpoint_url, "--rate", "1000",
                    "--no-progress", *args, env=env)


# -- a checkpoint of another run, and the real problem -----------------------------------------------------------

def test_a_finished_checkpoint_does_not_hide_that_nothing_listens_at_the_other_endpoint(
        stack: LocalStack, png: bytes, tmp_path: Path) -> None:  # noqa: F811
    _upload(stack, ["uploads/msg3/a.png", "uploads/msg3/b.png"], png)
    checkpoint = str(tmp_path / "checkpoint.json")
    assert _backfill(stack, "--prefix", "uploads/msg3/", "--checkpoint", checkpoint).returncode == 0

    dead = f"http://127.0.0.1:{free_port()}"
    proc = _backfill(stack, "--prefix", "uploads/msg3/", "--endpoint", dead, "--checkpoint", checkpoint)
    assert_short_error(proc, f"cannot reach {dead}: connection refused (is `superres local` running there?)")
    assert "Resuming it would skip" not in proc.stderr  # a finished run resumes nothing


def test_a_finished_checkpoint_of_another_region_lets_the_real_problem_through(
        stack: LocalStack, png: bytes, tmp_path: Path) -> None:  # noqa: F811
    _upload(stack, ["uploads/msg3r/a.png"], png)
    checkpoint = tmp_path / "checkpoint.json"
    assert _backfill(stack, "--prefix", "uploads/msg3r/", "--checkpoint", str(checkpoint)).returncode == 0
    before = checkpoint.read_text()
    proc = _backfill(stack, "--prefix", "uploads/msg3r/", "--region", "ap-shanghai", "--checkpoint", str(checkpoint))
    assert_short_error(proc, f"{checkpoint} holds a finished backfill (region 'ap-guangzhou' (this run: "
                             "'ap-shanghai')): starting this one from the beginning",
                       "NoSuchBucket: bucket photos-1250000000 is in region ap-guangzhou")
    assert "Resuming it would skip" not in proc.stderr
    assert checkpoint.read_text() == before  # nothing was handled, nothing rewritten


def test_an_unfinished_checkpoint_and_a_dead_endpoint_are_both_said(
        stack: LocalStack, png: bytes, tmp_path: Path) -> None:  # noqa: F811
    _upload(stack, ["uploads/msg3u/a.png", "uploads/msg3u/b.png"], png)
    checkpoint = str(tmp_path / "checkpoint.json")
    assert _backfill(stack, "--prefix", "uploads/msg3u/", "--max-objects", "1", "--checkpoint",
                     checkpoint).returncode == 0
    dead = f"http://127.0.0.1:{free_port()}"
    proc = _backfill(stack, "--prefix", "uploads/msg3u/", "--endpoint", dead, "--checkpoint", checkpoint)
    assert_short_error(proc, f"cannot reach {dead}: connection refused", "; also, ",
                       "is the checkpoint of another backfill: endpoint ")


# -- wrong keys, unreachable SCF, impossible names ---------------------------------------------------------------

@pytest.mark.parametrize("command", ["backfill", "reconcile"])
def test_wrong_keys_say_which_keys_signed_and_how_to_set_them(stack: LocalStack, command: str) -> None:
    proc = superres(command, "--serverless", SERVERLESS, "--endpoint", stack.standin.endpoint_url, "--prefix",
                    "uploads/", *(["--no-progress", "--dry-run"] if command == "backfill" else []),
                    env={"TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": "not-the-key"})
    assert_short_error(proc, "SignatureDoesNotMatch",
                       "the requests were signed with the keys in TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY",
                       "or unset them to use the stand-in's demo keys")
    assert "not-the-key" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("command", [
    ["replay", "--deployed", "cos-superres-dev", str(EVENTS / "put_single.json")],
    ["backfill", "--serverless", SERVERLESS, "--deployed", "cos-superres-dev", "--bucket", "photos-1250000000",
     "--endpoint", "http://127.0.0.1:9", "--no-progress"],
])
def test_an_unreachable_scf_endpoint_is_one_line_naming_it(command: list[str]) -> None:
    port = free_port()
    proc = superres(*command, "--scf-endpoint", f"127.0.0.1:{port}", env=KEYS)
    assert_short_error(proc, f"cannot reach the SCF API at http://127.0.0.1:{port} (connection refused): check "
                             "--scf-endpoint or $SUPERRES_SCF_ENDPOINT")
    assert "HTTPConnectionPool" not in proc.stderr and "urllib3" not in proc.stderr


@pytest.mark.parametrize("command", [["backfill", "--dry-run"], ["reconcile"], ["local", "--port", "0"],
                                     ["replay", str(EVENTS / "put_single.json")]])
def test_a_region_that_cannot_be_one_names_region_and_its_form(command: list[str], tmp_path: Path) -> None:
    proc = superres(*command, env={"REGION": "nowhere", **KEYS}, cwd=ROOT)
    assert_short_error(proc, "region 'nowhere' (REGION in .env or the environment) is not a Tencent Cloud region: "
                             "it looks like ap-guangzhou")
    assert "unexpected" not in proc.stderr


@pytest.mark.parametrize("command", [["backfill", "--no-progress"], ["reconcile"],
                                     ["replay", str(EVENTS / "put_single.json")]])
def test_a_bucket_without_appid_is_refused_before_any_request(stack: LocalStack, command: list[str]) -> None:
    stack.standin.clear_requests()
    proc = superres(*command, "--endpoint", stack.standin.endpoint_url, "--bucket", "NoAppId")
    assert_short_error(proc, "'NoAppId' is not a COS bucket name: it is '<name>-<appid>'", code=2)
    assert stack.standin.count() == 0


def test_a_region_option_that_cannot_be_one_is_a_usage_error() -> None:
    proc = superres("backfill", "--region", "nowhere", "--dry-run")
    assert_short_error(proc, "'nowhere' is not a Tencent Cloud region: it looks like ap-guangzhou", code=2)


# -- help and hints ------------------------------------------------------------------------------------------------

def test_reconcile_help_does_not_speak_of_backfilling() -> None:
    proc = superres("reconcile", "--help")
    assert proc.returncode == 0
    assert "to backfill" not in proc.stdout and "The source bucket" in proc.stdout


class _RegionRecorder(BaseHTTPRequestHandler):
    """An SCF API that answers every call ResourceNotFound.FunctionName and remembers the X-TC-Region asked for."""

    regions: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).regions.append(self.headers.get("X-TC-Region", ""))
        body = json.dumps({"Response": {"Error": {"Code": "ResourceNotFound.FunctionName",
                                                  "Message": "no such function"}, "RequestId": "r-1"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scf_recorder() -> Iterator[tuple[str, list[str]]]:
    _RegionRecorder.regions = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RegionRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", _RegionRecorder.regions
    finally:
        server.shutdown()
        server.server_close()


def test_replay_deployed_takes_its_region_from_dotenv_like_the_other_commands(
        scf_recorder: tuple[str, list[str]], tmp_path: Path) -> None:
    endpoint, regions = scf_recorder
    dotenv = tmp_path / ".env"
    dotenv.write_text("REGION=ap-chengdu\n")
    proc = superres("replay", "--deployed", "cos-superres-dev", "--scf-endpoint", endpoint,
                    str(EVENTS / "put_single.json"), env={"SUPERRES_ENV_FILE": str(dotenv), **KEYS})
    assert_short_error(proc, "ResourceNotFound.FunctionName")
    assert regions == ["ap-chengdu"]


def test_the_resume_hint_keeps_every_option_the_run_was_given(stack: LocalStack, png: bytes,  # noqa: F811
                                                               tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from tests.integration.test_backfill import _wait_for

    _upload(stack, [f"uploads/hint/{i:02d}.png" for i in range(20)], png)
    log, checkpoint = tmp_path / "fn.jsonl", tmp_path / "checkpoint.json"
    serverless = tmp_path / "serverless.yml"
    shutil.copy(ROOT / "serverless.yml", serverless)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TENCENTCLOUD_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "superres", "backfill", "--serverless", str(serverless), "--endpoint",
         stack.standin.endpoint_url, "--no-progress", "--prefix", "uploads/hint/", "--rate", "4", "--log", str(log),
         "--no-resume", "--checkpoint", str(checkpoint)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: log.is_file() and log.stat().st_size > 0)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    hint = next(line for line in stderr.splitlines() if line.startswith("interrupted; to resume: "))
    assert f"--log {log}" in hint and f"--serverless {serverless}" in hint and "--rate 4" in hint
    assert f"--endpoint {stack.standin.endpoint_url}" in hint and f"--checkpoint {checkpoint}" in hint
    assert "--no-resume" not in hint  # it would start over
