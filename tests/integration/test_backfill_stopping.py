"""Ctrl-C during `superres backfill`, run as a user runs it (its own process, SIGINT): exit 130 and "interrupted"
even with --max-calls, and the numbers on screen, in the summary, in the checkpoint and in the stand-in's request
log (`standin.count(ci=True)`: what CI would bill) agree, abandoned calls included.

CI calls are held at the stand-in (an inject rule's latency) so that objects are surely in flight when the signal
comes; the stand-in serves a held request even when its client has gone, as the real CI would bill it."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from superres.stack import LocalStack
from tests.integration.test_backfill import _backfill, _backfill_process, _upload, _wait_for, png  # noqa: F401


@pytest.fixture
def held_ci(stack: LocalStack) -> Iterator[None]:
    stack.standin.clear_requests()
    yield
    stack.standin.set_injections([])


def _ci_served(stack: LocalStack) -> int:
    assert stack.standin.wait_idle(60)
    return stack.standin.count(ci=True)


def _finishing(stderr: str) -> int:
    notice = next(line for line in stderr.splitlines() if line.startswith("finishing "))
    assert notice.endswith(" in-flight objects (Ctrl-C again to stop now)"), notice
    return int(notice.split()[1])


def test_ctrl_c_under_max_calls_is_interrupted_exit_130_and_every_count_agrees(
        stack: LocalStack, png: bytes, tmp_path: Path, held_ci: None) -> None:  # noqa: F811
    keys = [f"uploads/capint/{i:02d}.png" for i in range(40)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    stack.standin.clear_requests()
    stack.standin.set_injections(["op=ci,latency=0.4"])

    # The cap (30) fits in one batch: every capped object is scheduled at once, most wait for the rate limiter.
    proc = _backfill_process(stack, "--prefix", "uploads/capint/", "--max-calls", "30", "--rate", "5",
                             "--concurrency", "4", "--checkpoint", str(checkpoint))
    _wait_for(lambda: stack.standin.count(ci=True) >= 3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr
    assert "--max-calls 30 reached" not in stderr
    assert "interrupted; to resume: superres backfill" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] is True and "stopped_after_max_calls" not in summary
    served = _ci_served(stack)
    saved = json.loads(checkpoint.read_text())
    assert summary["calls"] == saved["totals"]["calls"] == served < 30
    assert summary["calls_left"] == 30 - served
    assert _finishing(stderr) == summary["finished_in_flight"]

    code, resumed, output = _backfill(stack, "--prefix", "uploads/capint/", "--checkpoint", str(checkpoint))
    assert code == 0, output
    assert resumed["stopped_after_max_calls"] is True and resumed["calls_left"] == 0
    assert _ci_served(stack) == 30  # the cap, over both runs


def test_a_second_ctrl_c_charges_the_abandoned_calls_to_the_cap(
        stack: LocalStack, png: bytes, tmp_path: Path, held_ci: None) -> None:  # noqa: F811
    keys = [f"uploads/abandon/{i:02d}.png" for i in range(30)]
    _upload(stack, keys, png)
    checkpoint = tmp_path / "checkpoint.json"
    stack.standin.clear_requests()
    stack.standin.set_injections(["op=ci,latency=3"])

    # The cap (8) is two waves of four: the first is answered, the second is held when the signals come.
    proc = _backfill_process(stack, "--prefix", "uploads/abandon/", "--max-calls", "8", "--rate", "1000",
                             "--concurrency", "4", "--checkpoint", str(checkpoint))
    _wait_for(lambda: stack.standin.count(ci=True) >= 4)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["abandoned_in_flight"] > 0
    assert _finishing(stderr) == summary["finished_in_flight"] + summary["abandoned_in_flight"]
    served = _ci_served(stack)  # the abandoned requests were served (and would be billed) after the exit
    saved = json.loads(checkpoint.read_text())
    assert served <= saved["totals"]["calls"] == summary["calls"]
    assert summary["calls_left"] == 8 - summary["calls"]

    # The abandoned objects' claims are still live, so a resume would wait them out: with the cap spent, it must
    # not even begin them.
    stack.standin.set_injections([])
    code, resumed, output = _backfill(stack, "--prefix", "uploads/abandon/", "--checkpoint", str(checkpoint))
    assert code == 0, output
    assert resumed["stopped_after_max_calls"] is True and resumed["calls"] == 0
    assert "stopped: --max-calls 8 reached; raise it to continue" in output
    assert _ci_served(stack) == served <= 8  # the hard cap holds over both runs
