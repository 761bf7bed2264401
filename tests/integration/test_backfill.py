"""`superres backfill` against the stand-in (bicubic engine, trigger off): the function's code path in-process,
a checkpoint after every batch (honoured by --max-objects and Ctrl-C, refused for another run), a dry run that
writes nothing, and the --deployed fan-out through the local SCF API in UTF-8-sized async batches.

Requests are counted from the stand-in's own request log (logger "superres.standin", one JSON line each)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from superres_fn import CosGateway

from superres.backfill import (
    Backfill,
    BackfillInterrupted,
    BackfillOptions,
    RateLimiter,
    batches,
    cos_client,
    function_settings,
)
from superres.cli import main
from superres.scf.api import serve_scf_api
from superres.scf.invoke_api import ASYNC_EVENT_MAX_BYTES
from superres.stack import LocalStack
from tests.integration.request_log import RequestLog

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "photos-1250000000"


@pytest.fixture(scope="module")
def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 160, 40)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def requests_seen() -> Iterator[RequestLog]:
    with RequestLog.attached() as log:
        yield log


def _upload(stack: LocalStack, keys: list[str], body: bytes) -> None:
    client = stack.client()
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=body)


def _keys_under(stack: LocalStack, prefix: str) -> list[str]:
    client, keys, marker = stack.client(), [], ""
    while True:
        page = client.list_objects(Bucket=BUCKET, Prefix=prefix, Marker=marker, MaxKeys=1000)
        keys += [c["Key"] for c in page.get("Contents", [])]
        if page.get("IsTruncated") != "true":
            return keys
        marker = page["NextMarker"]


def _backfill(stack: LocalStack, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    result = CliRunner().invoke(main, ["backfill", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                       stack.standin.endpoint_url, "--rate", "1000", "--no-progress", *args],
                                env=env)
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return result.exit_code, summary, result.output


def _backfill_process(stack: LocalStack, *args: str) -> subprocess.Popen:
    """`python -m superres backfill` as a user runs it (own process, demo keys), for signals and exit codes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    return subprocess.Popen(
        [sys.executable, "-m", "superres", "backfill", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
         stack.standin.endpoint_url, "--no-progress", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_every_object_is_processed_once_without_a_head_and_a_second_run_skips_all(
        stack: LocalStack, png: bytes, tmp_path: Path, requests_seen: RequestLog) -> None:
    keys = [f"uploads/all/{i:03d}.png" for i in range(200)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    requests_seen.clear()

    code, first, output = _backfill(stack, "--prefix", "uploads/all/", "--page-size", "50", "--checkpoint",
                                    str(checkpoint))
    assert code == 0, output
    assert (first["listed"], first["processed"], first["skipped"], first["failed"]) == (200, 200, {}, 0)
    assert sorted(_keys_under(stack, "superres/uploads/all/")) == sorted(f"superres/{k}.png" for k in keys)
    saved = json.loads(checkpoint.read_text())
    assert saved["complete"] is True
    assert {k: saved[k] for k in ("endpoint", "region", "mode", "bucket", "prefix")} == {
        "endpoint": stack.standin.endpoint_url, "region": "ap-guangzhou", "mode": "local", "bucket": BUCKET,
        "prefix": "uploads/all/"}
    # the work was found by listing; the only HEADs are the function's own two looks per object under its claim
    # (the result's provenance and the source's version), the same path as the trigger's
    assert requests_seen.count("HEAD") == 2 * len(keys)
    assert requests_seen.ci_calls() == Counter(keys)

    code, second, output = _backfill(stack, "--prefix", "uploads/all/", "--page-size", "50", "--checkpoint",
                                     str(checkpoint))
    assert code == 0, output
    assert (second["listed"], second["processed"], second["skipped"]) == (200, 0, {"already_done": 200})


def test_max_objects_chunks_process_each_of_60_objects_exactly_once(
        stack: LocalStack, png: bytes, tmp_path: Path, requests_seen: RequestLog) -> None:
    keys = [f"uploads/chunks/{i:02d}.png" for i in range(60)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    requests_seen.clear()

    runs = []
    while True:
        code, summary, output = _backfill(stack, "--prefix", "uploads/chunks/", "--max-objects", "7",
                                          "--checkpoint", str(checkpoint))
        assert code == 0, output
        runs.append(summary)
        if not summary.get("stopped_after_max_objects"):
            break
        assert len(runs) < 12, "the chunks never finished"
        assert json.loads(checkpoint.read_text())["marker"] == keys[7 * len(runs) - 1]
    assert [r["processed"] for r in runs] == [7] * 8 + [4]
    assert requests_seen.ci_calls() == Counter(keys)  # each object's CI call exactly once
    assert json.loads(checkpoint.read_text())["totals"]["processed"] == 60


def test_ctrl_c_finishes_the_in_flight_objects_and_the_resume_processes_each_once(
        stack: LocalStack, png: bytes, tmp_path: Path, requests_seen: RequestLog) -> None:
    keys = [f"uploads/ctrlc/{i:02d}.png" for i in range(40)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    requests_seen.clear()

    proc = _backfill_process(stack, "--prefix", "uploads/ctrlc/", "--rate", "8", "--concurrency", "4",
                             "--page-size", "10", "--checkpoint", str(checkpoint))
    _wait_for(lambda: sum(requests_seen.ci_calls().values()) >= 3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    notice = next(line for line in stderr.splitlines() if line.startswith("finishing "))
    in_flight = int(notice.split()[1])
    assert notice == f"finishing {in_flight} in-flight objects (Ctrl-C again to stop now)"
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] is True and summary["finished_in_flight"] <= in_flight
    assert summary["processed"] == sum(requests_seen.ci_calls().values())  # every call made is counted
    assert "to resume: superres backfill --bucket photos-1250000000 --prefix uploads/ctrlc/" in stderr
    assert 0 < summary["processed"] < 40

    code, resumed, output = _backfill(stack, "--prefix", "uploads/ctrlc/", "--page-size", "10", "--checkpoint",
                                      str(checkpoint))
    assert code == 0, output
    assert resumed["resumed"] is True
    assert requests_seen.ci_calls() == Counter(keys)
    assert resumed["totals_with_earlier_runs"]["processed"] == 40


def test_a_second_ctrl_c_exits_130_at_once_with_the_summary_and_the_resume_command(
        stack: LocalStack, png: bytes, tmp_path: Path, requests_seen: RequestLog) -> None:
    keys = [f"uploads/twice/{i:02d}.png" for i in range(30)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    requests_seen.clear()

    proc = _backfill_process(stack, "--prefix", "uploads/twice/", "--rate", "2", "--concurrency", "8",
                             "--checkpoint", str(checkpoint))
    _wait_for(lambda: sum(requests_seen.ci_calls().values()) >= 1)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert sum(requests_seen.ci_calls().values()) < len(keys)  # it did not wait for the rate-limited work
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] is True and "abandoned_in_flight" in summary
    assert f"to resume: superres backfill --bucket {BUCKET} --prefix uploads/twice/" in stderr
    assert "Traceback" not in stderr
    saved = json.loads(checkpoint.read_text())
    assert saved["complete"] is False

    code, resumed, output = _backfill(stack, "--prefix", "uploads/twice/", "--checkpoint", str(checkpoint))
    assert code == 0, output
    assert sorted(_keys_under(stack, "superres/uploads/twice/")) == [f"superres/{k}.png" for k in keys]
    assert max(requests_seen.ci_calls().values()) == 1  # nothing redone


@pytest.mark.parametrize(("option", "value", "field"), [
    ("--endpoint", "http://127.0.0.1:9", "endpoint"),
    ("--region", "ap-shanghai", "region"),
    ("--prefix", "uploads/", "prefix"),
])
def test_a_checkpoint_of_another_run_is_refused_with_a_clear_message(
        stack: LocalStack, png: bytes, tmp_path: Path, option: str, value: str, field: str) -> None:
    _upload(stack, ["uploads/mismatch/a.png", "uploads/mismatch/b.png"], png)
    checkpoint = tmp_path / "checkpoint.json"
    code, _summary, output = _backfill(stack, "--prefix", "uploads/mismatch/", "--max-objects", "1",
                                       "--checkpoint", str(checkpoint))
    assert code == 0, output
    before = checkpoint.read_text()

    args = {"--prefix": "uploads/mismatch/", option: value}
    # (_backfill_process passes the stand-in's --endpoint first; a later --endpoint wins)
    proc = _backfill_process(stack, *[x for pair in args.items() for x in pair], "--checkpoint", str(checkpoint))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert f"is the checkpoint of another backfill: {field} " in stderr
    assert "pass --checkpoint FILE for this run, or --no-resume to start over" in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert checkpoint.read_text() == before


def test_a_checkpoint_of_the_other_mode_is_refused(stack: LocalStack, png: bytes, tmp_path: Path) -> None:
    _upload(stack, ["uploads/modes/a.png", "uploads/modes/b.png"], png)
    checkpoint = tmp_path / "checkpoint.json"
    code, _summary, output = _backfill(stack, "--prefix", "uploads/modes/", "--max-objects", "1", "--checkpoint",
                                       str(checkpoint))
    assert code == 0, output
    credentials = {k: v for k, v in stack.function_env().items() if k.startswith("TENCENTCLOUD_")}
    # (--reserved-concurrency: no SCF API call before the checkpoint is read; an unreachable API is said first)
    code, _summary, output = _backfill(stack, "--prefix", "uploads/modes/", "--deployed", stack.spec.name,
                                       "--scf-endpoint", "127.0.0.1:9", "--reserved-concurrency", "1024",
                                       "--checkpoint", str(checkpoint),
                                       env=credentials)
    assert code == 1
    assert "mode 'local' (this run: 'deployed')" in output


def test_a_truncated_checkpoint_is_a_clear_error(stack: LocalStack, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_text('{"version": 2, "bucket": "photos-12')
    proc = _backfill_process(stack, "--prefix", "uploads/none/", "--checkpoint", str(checkpoint))
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"{checkpoint} is not a readable checkpoint" in stderr and "--no-resume" in stderr
    assert "Traceback" not in stderr


def test_an_unwritable_log_is_refused_before_any_work(stack: LocalStack, png: bytes, tmp_path: Path,
                                                      requests_seen: RequestLog) -> None:
    _upload(stack, ["uploads/log/a.png"], png)
    requests_seen.clear()
    proc = _backfill_process(stack, "--prefix", "uploads/log/", "--log", str(tmp_path / "missing" / "log.jsonl"),
                             "--checkpoint", str(tmp_path / "checkpoint.json"))
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--log" in stderr and "cannot write" in stderr and "Traceback" not in stderr
    assert requests_seen.total() == 0  # not even a listing


def test_stopping_through_request_stop_checkpoints_the_handled_prefix(
        stack: LocalStack, png: bytes, tmp_path: Path, requests_seen: RequestLog) -> None:
    keys = [f"uploads/resume/{i:03d}.png" for i in range(120)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    requests_seen.clear()
    credentials = {k: v for k, v in stack.function_env().items() if k.startswith("TENCENTCLOUD_")}
    settings = function_settings(stack.spec, region="ap-guangzhou", endpoint=stack.standin.endpoint_url)
    job: Backfill

    def stop_after_30(obj, outcome, reason) -> None:  # type: ignore[no-untyped-def]
        if sum(requests_seen.ci_calls().values()) >= 30:
            job.request_stop()  # what the first Ctrl-C does

    options = BackfillOptions(bucket=BUCKET, prefix="uploads/resume/", endpoint=stack.standin.endpoint_url,
                              concurrency=4, rate=1000, page_size=50, checkpoint=checkpoint, progress=False,
                              on_outcome=stop_after_30)
    job = Backfill(options, stack.spec, settings, cos_client("ap-guangzhou", credentials, settings.endpoint),
                   CosGateway(settings, environ=credentials), say=lambda text: None)
    with pytest.raises(BackfillInterrupted) as stopped:
        job.run()
    assert stopped.value.summary["interrupted"] is True and not stopped.value.forced
    saved = json.loads(checkpoint.read_text())
    done = stopped.value.summary["processed"]
    assert saved["marker"] == keys[done - 1] and saved["complete"] is False  # exactly the handled prefix
    assert saved["totals"]["processed"] == done == sum(requests_seen.ci_calls().values())

    code, resumed, output = _backfill(stack, "--prefix", "uploads/resume/", "--page-size", "50", "--checkpoint",
                                      str(checkpoint))
    assert code == 0, output
    assert resumed["listed"] == 120 - done and resumed["processed"] == 120 - done
    assert requests_seen.ci_calls() == Counter(keys)


def test_dry_run_prints_the_plan_and_the_cost_and_writes_nothing(stack: LocalStack, png: bytes,
                                                                 tmp_path: Path) -> None:
    _upload(stack, ["uploads/dry/a.png", "uploads/dry/b.png"], png)
    time.sleep(1.05 - time.time() % 1)  # the planner skips only a result written in a later second than its source
    _upload(stack, ["superres/uploads/dry/b.png.png"], png)
    _upload(stack, ["uploads/dry/notes.txt"], b"not an image")
    _upload(stack, ["uploads/dry/empty.png"], b"")
    checkpoint = tmp_path / "checkpoint.json"

    code, summary, output = _backfill(stack, "--prefix", "uploads/dry/", "--dry-run", "--checkpoint",
                                      str(checkpoint))
    assert code == 0, output
    plan = [line.split("\t") for line in output.splitlines() if "\t" in line]
    assert plan == [
        ["process", "missing", "uploads/dry/a.png -> superres/uploads/dry/a.png.png"],
        ["skip", "already_done", "uploads/dry/b.png -> superres/uploads/dry/b.png.png"],
        ["skip", "empty_object", "uploads/dry/empty.png -> superres/uploads/dry/empty.png.png"],
        ["skip", "suffix_not_accepted", "uploads/dry/notes.txt -> superres/uploads/dry/notes.txt.png"],
    ]
    assert summary["mode"] == "dry_run" and summary["to_process"] == 1 and summary["ci_calls"] == 1
    assert summary["estimated_output_bytes"] == len(png) * 4  # PNG source, x2: area x4, about PNG-sized
    assert "dry run: 1 objects to process, 1 CI calls, about" in output
    assert summary["skipped"] == {"already_done": 1, "empty_object": 1, "suffix_not_accepted": 1}
    assert _keys_under(stack, "superres/uploads/dry/") == ["superres/uploads/dry/b.png.png"]
    assert not checkpoint.exists()


def test_deployed_sends_records_without_a_local_head_in_utf8_sized_batches(
        stack: LocalStack, png: bytes, tmp_path: Path, requests_seen: RequestLog) -> None:
    # CJK keys (~800 bytes, under COS's 850 with the prefix): each record has more UTF-8 bytes than characters,
    # so batches filled to 128 K characters would be over 128 KB and refused (InvalidParameterValue.ClientContext).
    keys = [f"uploads/fanout/{'照片' * 130}-{i:03d}.png" for i in range(60)]
    _upload(stack, keys, png)
    requests_seen.clear()
    credentials = {k: v for k, v in stack.function_env().items() if k.startswith("TENCENTCLOUD_")}
    with serve_scf_api(stack) as api:
        code, summary, output = _backfill(stack, "--prefix", "uploads/fanout/", "--deployed", stack.spec.name,
                                          "--batch-size", "1000", "--scf-endpoint", api.endpoint, "--checkpoint",
                                          str(tmp_path / "checkpoint.json"), env=credentials)
        assert code == 0, output
        assert api.wait_idle(120)
        calls = list(api.calls)
        results = api.functions[("default", stack.spec.name)].async_results
    assert summary["mode"] == "deployed" and summary["processed"] == 60 and summary["failed"] == 0
    assert summary["invocations"] == len(calls) >= 2
    assert all(c.invocation_type == "Event" and c.client_context_bytes <= ASYNC_EVENT_MAX_BYTES for c in calls)
    assert sum(c.records for c in calls) == 60
    assert all(r.ok for r in results)
    assert len(_keys_under(stack, "superres/uploads/fanout/")) == 60
    # the function's own looks (the result's provenance, the source's version), none from the backfill
    assert requests_seen.count("HEAD") == 2 * 60
    # The local SCF API serves Invoke only: the reserved concurrency is asked for, and its absence said.
    assert f"could not read {stack.spec.name}'s reserved concurrency (InvalidAction)" in output


def test_batches_respect_count_and_utf8_byte_limits() -> None:
    records = [{"k": "x" * 1000} for _ in range(30)]
    by_count = list(batches(records, 7))
    assert [len(b) for b in by_count] == [7, 7, 7, 7, 2]
    cjk = [{"k": "照" * 1000} for _ in range(30)]  # 1,000 characters, 3,000 bytes each
    by_bytes = list(batches(cjk, 1000, max_bytes=10_000))
    assert all(len(json.dumps({"Records": b}, ensure_ascii=False, separators=(",", ":")).encode()) <= 10_000
               for b in by_bytes)
    assert [len(b) for b in by_bytes][:2] == [3, 3] and sum(len(b) for b in by_bytes) == 30


def test_rate_limiter_spaces_acquisitions_by_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(50, clock=lambda: now[0], sleep=sleep)
    for _ in range(11):
        limiter.acquire()
    assert now[0] == pytest.approx(10 / 50)  # the first token is free, then one per 1/50 s
    limiter.acquire(5)
    assert now[0] == pytest.approx(15 / 50)


def test_a_missing_bucket_or_an_unreachable_endpoint_is_one_clear_line(stack: LocalStack, tmp_path: Path) -> None:
    code, _summary, output = _backfill(stack, "--bucket", "nosuch-1250000000", "--prefix", "x/", "--checkpoint",
                                       str(tmp_path / "a.json"))
    assert code == 1
    assert "Error: the backfill stopped: NoSuchBucket: " in output and "Traceback" not in output
    result = CliRunner().invoke(main, ["backfill", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                       "http://127.0.0.1:9", "--prefix", "x/", "--checkpoint",
                                       str(tmp_path / "b.json"), "--no-progress"])
    assert result.exit_code == 1
    assert ("Error: the backfill stopped: cannot reach http://127.0.0.1:9: connection refused (is `superres local` "
            "running there?)") in result.output
    result = CliRunner().invoke(main, ["reconcile", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                       stack.standin.endpoint_url, "--bucket", "nosuch-1250000000"])
    assert result.exit_code == 1 and "Error: reconcile stopped: NoSuchBucket: " in result.output


def test_deployed_max_calls_caps_the_records_sent(stack: LocalStack, png: bytes, tmp_path: Path) -> None:
    keys = [f"uploads/capped/{i:02d}.png" for i in range(60)]
    _upload(stack, keys, png)
    credentials = {k: v for k, v in stack.function_env().items() if k.startswith("TENCENTCLOUD_")}
    with serve_scf_api(stack) as api:
        code, summary, output = _backfill(stack, "--prefix", "uploads/capped/", "--deployed", stack.spec.name,
                                          "--batch-size", "10", "--max-calls", "25", "--scf-endpoint", api.endpoint,
                                          "--checkpoint", str(tmp_path / "checkpoint.json"), env=credentials)
        assert code == 0, output
        assert api.wait_idle(120)
        calls = list(api.calls)
    assert summary["processed"] == summary["calls"] == 25 and summary["stopped_after_max_calls"] is True
    assert sorted(c.records for c in calls) == [5, 10, 10]
    assert json.loads((tmp_path / "checkpoint.json").read_text())["marker"] == keys[24]
