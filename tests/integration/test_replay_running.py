"""`superres replay` as a subprocess: against a running `superres local` nothing is processed twice (a seed never
fires the running trigger), results do not depend on the order of the event files, and the local SCF API logs
every invocation, sync or async, the way the trigger logs its deliveries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY
from tests.integration.local_process import (
    BUCKET,
    cos_client,
    free_port,
    function_lines,
    png,
    superres_local,
    wait_for_outcomes,
)

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def superres(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    return subprocess.run([sys.executable, "-m", "superres", *args], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def outcomes(stdout: str) -> list[tuple[str, str]]:
    """(key, reason) of every record the function logged, in order."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"level"')]
    return [(line["key"], line["reason"]) for line in lines if line.get("logger") == "superres"]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:
    """`superres local` with its trigger on and the SCF API: (COS port, SCF API port, data folder)."""
    data = tmp_path_factory.mktemp("replay-running") / "data"
    api_port = free_port()
    with superres_local(data, "--scf-api-port", str(api_port)) as (_proc, port):
        yield port, api_port, data


def test_replay_against_a_running_stand_in_processes_a_seeded_object_once(running):
    port, _, data = running
    proc = superres("replay", "--endpoint", f"http://127.0.0.1:{port}", str(EVENTS / "post.json"))
    assert proc.returncode == 0, proc.stderr
    # uploads/coffee.png was missing: seeding it there would fire the running trigger, so the seed went outside it
    assert "seeded replay-seed/uploads/coffee.png for uploads/coffee.png" in proc.stdout
    assert outcomes(proc.stdout) == [("replay-seed/uploads/coffee.png", "processed")]
    cos = cos_client(port)
    assert not cos.object_exists(Bucket=BUCKET, Key="uploads/coffee.png")
    # The running trigger saw nothing of it: an upload made afterwards is processed, and it is the only one.
    cos.put_object(Bucket=BUCKET, Key="uploads/after-replay.png", Body=png(3))
    wait_for_outcomes(data, {"uploads/after-replay.png"}, timeout=120)
    assert [line["key"] for line in function_lines(data)] == ["uploads/after-replay.png"]


def test_replay_outcomes_do_not_depend_on_the_order_of_the_files(tmp_path: Path):
    files = [str(EVENTS / name) for name in ("put_single.json", "under_dest_prefix.json", "iso_event_time.json")]
    forward = superres("replay", "--engine", "bicubic", *files)
    backward = superres("replay", "--engine", "bicubic", *reversed(files))
    assert forward.returncode == 0 and backward.returncode == 0, forward.stderr + backward.stderr
    expected = {("uploads/astronaut.jpg", "processed"),
                ("superres/uploads/astronaut.jpg.png", "under_destination_prefix")}
    assert set(outcomes(forward.stdout)) == expected
    assert sorted(outcomes(forward.stdout)) == sorted(outcomes(backward.stdout))
    # a result under DEST_PREFIX is never seeded (it would pass for a result the function had written)
    assert "seeded superres/" not in forward.stdout + backward.stdout


def _log_records(data: Path, request_id: str) -> list[dict]:
    lines = []
    for text in (data / "function-log.jsonl").read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        if line.get("request_id") == request_id:
            lines.append(line)
    return lines


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_scf_api_invocation_is_logged_like_a_trigger_delivery(running, mode: str):
    _, api_port, data = running
    keys = {"TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEMO_SECRET_KEY}
    proc = superres("replay", "--deployed", "cos-superres-dev", "--scf-endpoint", f"127.0.0.1:{api_port}",
                    *(["--async"] if mode == "async" else []), str(EVENTS / "non_image.json"), env=keys)
    assert proc.returncode == 0, proc.stderr
    request_id = proc.stdout.split("FunctionRequestId: ", 1)[1].split()[0]
    deadline = time.monotonic() + 120
    while not any(line.get("logger") == "superres.scf" for line in _log_records(data, request_id)):
        assert time.monotonic() < deadline, f"no log line for {mode} invocation {request_id}"
        time.sleep(0.2)
    lines = _log_records(data, request_id)
    function_line = next(line for line in lines if line.get("logger") == "superres")
    summary = next(line for line in lines if line.get("logger") == "superres.scf")
    assert function_line["reason"] == "suffix_not_accepted"
    assert summary["ok"] is True and {"attempt", "duration_ms", "memory_bytes"} <= summary.keys()
    assert DEMO_SECRET_KEY not in (data / "function-log.jsonl").read_text(encoding="utf-8")
