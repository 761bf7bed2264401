"""`superres backfill` against the stand-in (bicubic engine, trigger off): the function's code path in-process,
resumable by checkpoint, a dry run that writes nothing, and the --deployed fan-out through the local SCF API."""

from __future__ import annotations

import io
import json
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
from superres.scf.api import ASYNC_EVENT_MAX_BYTES, serve_scf_api
from superres.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "photos-1250000000"


@pytest.fixture(scope="module")
def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (90, 160, 40)).save(buffer, "PNG")
    return buffer.getvalue()


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


def test_every_object_is_processed_once_and_a_second_run_skips_all(stack: LocalStack, png: bytes,
                                                                  tmp_path: Path) -> None:
    keys = [f"uploads/all/{i:03d}.png" for i in range(200)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"

    code, first, output = _backfill(stack, "--prefix", "uploads/all/", "--page-size", "50", "--checkpoint",
                                    str(checkpoint))
    assert code == 0, output
    assert (first["listed"], first["processed"], first["skipped"], first["failed"]) == (200, 200, {}, 0)
    assert sorted(_keys_under(stack, "superres/uploads/all/")) == sorted(f"superres/{k}" for k in keys)
    assert json.loads(checkpoint.read_text())["complete"] is True

    code, second, output = _backfill(stack, "--prefix", "uploads/all/", "--page-size", "50", "--checkpoint",
                                     str(checkpoint))
    assert code == 0, output
    assert (second["listed"], second["processed"], second["skipped"]) == (200, 0, {"already_done": 200})


def test_interrupted_run_resumes_from_the_checkpoint_and_processes_each_object_once(
        stack: LocalStack, png: bytes, tmp_path: Path) -> None:
    keys = [f"uploads/resume/{i:03d}.png" for i in range(200)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    seen = []

    def interrupt_after_70(obj, outcome, reason) -> None:  # type: ignore[no-untyped-def]
        seen.append(obj.key)
        if len(seen) == 70:
            raise KeyboardInterrupt  # what Ctrl-C does to the main thread

    credentials = {k: v for k, v in stack.function_env().items() if k.startswith("TENCENTCLOUD_")}
    settings = function_settings(stack.spec, region="ap-guangzhou", endpoint=stack.standin.endpoint_url)
    options = BackfillOptions(bucket=BUCKET, prefix="uploads/resume/", concurrency=4, rate=1000, page_size=50,
                              checkpoint=checkpoint, progress=False, on_outcome=interrupt_after_70)
    job = Backfill(options, stack.spec, settings, cos_client("ap-guangzhou", credentials, settings.endpoint),
                   CosGateway(settings, environ=credentials))
    with pytest.raises(BackfillInterrupted) as stopped:
        job.run()
    assert stopped.value.summary["interrupted"] is True
    saved = json.loads(checkpoint.read_text())
    assert saved["marker"] == keys[49] and saved["complete"] is False  # the last fully handled page
    assert saved["totals"]["processed"] == 50

    done_before = len(_keys_under(stack, "superres/uploads/resume/"))
    assert 70 <= done_before < 200
    code, resumed, output = _backfill(stack, "--prefix", "uploads/resume/", "--page-size", "50", "--checkpoint",
                                      str(checkpoint))
    assert code == 0, output
    assert resumed["resumed"] is True and resumed["listed"] == 150  # pages 2-4 only
    # Nothing is processed twice: what the interrupted run finished on page 2 is found done.
    assert resumed["processed"] == 200 - done_before
    assert resumed["skipped"] == {"already_done": done_before - 50}
    assert len(_keys_under(stack, "superres/uploads/resume/")) == 200
    assert resumed["totals_with_earlier_runs"]["processed"] == 50 + resumed["processed"]


def test_dry_run_prints_the_plan_and_writes_nothing(stack: LocalStack, png: bytes, tmp_path: Path) -> None:
    _upload(stack, ["uploads/dry/a.png", "uploads/dry/b.png", "superres/uploads/dry/b.png"], png)
    _upload(stack, ["uploads/dry/notes.txt"], b"not an image")
    _upload(stack, ["uploads/dry/empty.png"], b"")
    checkpoint = tmp_path / "checkpoint.json"

    code, summary, output = _backfill(stack, "--prefix", "uploads/dry/", "--dry-run", "--checkpoint",
                                      str(checkpoint))
    assert code == 0, output
    plan = [line.split("\t") for line in output.splitlines() if "\t" in line]
    assert plan == [
        ["process", "accepted", "uploads/dry/a.png -> superres/uploads/dry/a.png"],
        ["skip", "already_done", "uploads/dry/b.png -> superres/uploads/dry/b.png"],
        ["skip", "empty_object", "uploads/dry/empty.png -> superres/uploads/dry/empty.png"],
        ["skip", "suffix_not_accepted", "uploads/dry/notes.txt -> superres/uploads/dry/notes.txt"],
    ]
    assert summary["mode"] == "dry_run" and summary["to_process"] == 1
    assert summary["skipped"] == {"already_done": 1, "empty_object": 1, "suffix_not_accepted": 1}
    assert _keys_under(stack, "superres/uploads/dry/") == ["superres/uploads/dry/b.png"]
    assert not checkpoint.exists()


def test_deployed_fans_out_in_async_batches_under_128_kb(stack: LocalStack, png: bytes, tmp_path: Path) -> None:
    # Long keys make each synthesized record ~2.5 KB, so 60 of them cannot fit one 128 KB async request.
    keys = [f"uploads/fanout/{'k' * 700}-{i:03d}.png" for i in range(60)]
    _upload(stack, keys, png)
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


def test_batches_respect_count_and_byte_limits() -> None:
    records = [{"k": "x" * 1000} for _ in range(30)]
    by_count = list(batches(records, 7))
    assert [len(b) for b in by_count] == [7, 7, 7, 7, 2]
    by_bytes = list(batches(records, 1000, max_bytes=5000))
    assert all(len(json.dumps({"Records": b}, separators=(",", ":"))) <= 5000 for b in by_bytes)
    assert sum(len(b) for b in by_bytes) == 30


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
