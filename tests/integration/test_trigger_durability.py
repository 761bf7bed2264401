"""The trigger's queue is durable, as SCF's async queue is: an acknowledged upload's event survives kill -9,
Ctrl-C and restarts and is delivered at least once; failed attempts stay counted across a restart; events past
the maximum event age or beyond the queue's cap are dropped with a log line, never silently."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from superres.scf.container import ContainerOptions
from superres.scf.event_queue import EventQueue, QueueBusyError
from superres.scf.serverless import FunctionSpec, load_function_spec
from superres.scf.trigger import TriggerDispatcher
from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from tests.integration.local_process import (
    BUCKET,
    ROOT,
    SUCCESS,
    cos_client,
    function_lines,
    output_log,
    png,
    superres_local,
    thread_clients,
    wait_for_outcomes,
)

# A function that records each delivery's request id; "fail" always raises, "hang" blocks until RELEASE exists.
HANDLER = '''
import os, time
HERE = os.path.dirname(__file__)
def main_handler(event, context):
    with open(os.path.join(HERE, "calls.txt"), "a") as fh:
        fh.write(context["request_id"] + "\\n")
    if event.get("mode") == "fail":
        raise RuntimeError("always fails")
    if event.get("mode") == "hang":
        with open(os.path.join(HERE, "started.txt"), "w") as fh:
            fh.write(str(os.getpid()))
        while not os.path.exists(os.path.join(HERE, "RELEASE")):
            time.sleep(0.05)
    return "ok"
'''

# Runs a dispatcher on a queue file in its own process, to be killed with -9 mid-delivery.
DISPATCHER_SCRIPT = '''
import sys, time
from dataclasses import replace
from pathlib import Path
from superres.scf.container import ContainerOptions
from superres.scf.event_queue import EventQueue
from superres.scf.serverless import load_function_spec
from superres.scf.trigger import TriggerDispatcher
root, code, db = sys.argv[1:4]
spec = replace(load_function_spec(Path(root) / "serverless.yml", environ={}), src=Path(code), timeout_s=120)
dispatcher = TriggerDispatcher(spec, ContainerOptions(), region="ap-guangzhou", instances=1,
                               queue=EventQueue(Path(db)))
dispatcher.submit({"mode": "hang"}, request_id="in-flight-at-kill")
time.sleep(600)
'''


@pytest.fixture
def spec(tmp_path: Path) -> FunctionSpec:
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text(HANDLER)
    return replace(load_function_spec(ROOT / "serverless.yml", environ={}), src=code, timeout_s=30)


def _calls(spec: FunctionSpec) -> list[str]:
    path = spec.src / "calls.txt"
    return path.read_text().split() if path.exists() else []


def _dispatcher(spec: FunctionSpec, db: Path, **kwargs: object) -> TriggerDispatcher:
    queue = EventQueue(db, **{k: kwargs.pop(k) for k in ("max_event_age_s", "max_events") if k in kwargs})
    return TriggerDispatcher(spec, ContainerOptions(), region="ap-guangzhou", instances=1, queue=queue,
                             **kwargs)  # type: ignore[arg-type]


def _dropped(dispatcher: TriggerDispatcher) -> list[dict]:
    lines = [json.loads(line) for line in dispatcher.log_lines if line.startswith("{")]
    return [line for line in lines if "dropped" in line]


def _queued_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def _wait(condition, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# ---- in one process: the queue file across dispatcher restarts ----------------------------------------------------

def test_upload_event_is_committed_before_the_upload_is_acknowledged(tmp_path: Path):
    with LocalStack(StackOptions(data_dir=tmp_path / "data", engine=load_engine("bicubic"))) as stack:
        stack.trigger.stop()  # nothing delivers now, so whatever the queue holds stays there
        stack.client().put_object(Bucket=BUCKET, Key="uploads/kept.png", Body=png(1))
        # A second connection sees only committed rows.
        with sqlite3.connect(tmp_path / "data" / "trigger.db") as conn:
            (event,) = [json.loads(row[0]) for row in conn.execute("SELECT event FROM events")]
    assert event["Records"][0]["cos"]["cosObject"]["key"] == "/1250000000/photos/uploads/kept.png"


def test_failed_attempts_stay_counted_across_a_restart(spec, tmp_path: Path):
    db = tmp_path / "trigger.db"
    first = _dispatcher(spec, db, retry_interval_s=3.0)  # the restart comes well before the first retry
    try:
        first.submit({"mode": "fail"}, request_id="always-fails")
        _wait(lambda: len(first.deliveries) == 1)
    finally:
        first.close()
    assert _queued_rows(db) == 1  # waiting for its first retry

    second = _dispatcher(spec, db, retry_interval_s=0.05)
    try:
        assert second.wait_idle(60)
    finally:
        second.close()
    # SCF's two retries in all, not two more after the restart
    assert [d.attempt for d in second.deliveries] == [1, 2]
    assert _calls(spec) == ["always-fails"] * 3
    (dropped,) = _dropped(second)
    assert dropped["dropped"] == "retries_exhausted" and dropped["request_id"] == "always-fails"
    assert "after 2 retries" in dropped["detail"] and "always fails" in dropped["detail"]
    assert _queued_rows(db) == 0


def test_event_in_flight_at_kill_9_is_delivered_again_after_restart(spec, tmp_path: Path):
    db = tmp_path / "trigger.db"
    proc = subprocess.Popen([sys.executable, "-c", DISPATCHER_SCRIPT, str(ROOT), str(spec.src), str(db)], cwd=ROOT)
    started = spec.src / "started.txt"
    try:
        _wait(started.exists)
    finally:
        proc.kill()
        proc.wait()
    # The orphaned instance (its own session) would go on hanging: end it, as the dead parent no longer can.
    psutil.Process(int(started.read_text())).kill()
    (spec.src / "RELEASE").touch()

    dispatcher = _dispatcher(spec, db)
    try:
        assert dispatcher.queue.interrupted_at_open == 1
        assert dispatcher.wait_idle(60)
    finally:
        dispatcher.close()
    assert _calls(spec) == ["in-flight-at-kill", "in-flight-at-kill"]  # at least once: twice here
    (delivery,) = dispatcher.deliveries
    assert delivery.result.ok and delivery.result.request_id == "in-flight-at-kill"
    assert delivery.attempt == 0  # the platform's crash is not the function's failure: no retry used up


def test_events_older_than_the_maximum_event_age_are_dropped_and_logged(spec, tmp_path: Path):
    dispatcher = _dispatcher(spec, tmp_path / "trigger.db", max_event_age_s=0.3, start=False)
    try:
        dispatcher.submit({"Records": [{"cos": {"cosObject": {"key": "/1250000000/photos/uploads/old.png"}}}]},
                          request_id="too-old")
        time.sleep(0.5)
        dispatcher.start()
        assert dispatcher.wait_idle(30)
    finally:
        dispatcher.close()
    assert _calls(spec) == [] and not dispatcher.deliveries
    (dropped,) = _dropped(dispatcher)
    assert dropped == {"logger": "superres.scf", "request_id": "too-old", "dropped": "max_event_age",
                       "detail": "older than the maximum event age (0.3 s)",
                       "keys": ["/1250000000/photos/uploads/old.png"]}


def test_event_waiting_for_a_retry_past_the_maximum_event_age_is_dropped(spec, tmp_path: Path):
    dispatcher = _dispatcher(spec, tmp_path / "trigger.db", max_event_age_s=1.5, retry_interval_s=3.0)
    try:
        dispatcher.submit({"mode": "fail"}, request_id="expires-before-retry")
        assert dispatcher.wait_idle(30)
    finally:
        dispatcher.close()
    assert [d.attempt for d in dispatcher.deliveries] == [0]
    assert [line["dropped"] for line in _dropped(dispatcher)] == ["max_event_age"]


def test_a_full_queue_drops_new_events_and_logs_them(spec, tmp_path: Path):
    dispatcher = _dispatcher(spec, tmp_path / "trigger.db", max_events=3, start=False)
    try:
        for i in range(5):
            dispatcher.submit({"n": i}, request_id=f"event-{i}")
        assert len(dispatcher.queue) == 3
        dispatcher.start()
        assert dispatcher.wait_idle(30)
    finally:
        dispatcher.close()
    assert sorted(_calls(spec)) == ["event-0", "event-1", "event-2"]
    assert [(line["request_id"], line["dropped"]) for line in _dropped(dispatcher)] == [
        ("event-3", "queue_full"), ("event-4", "queue_full")]
    assert "maximum of 3 events" in _dropped(dispatcher)[0]["detail"]


def test_a_second_process_on_the_same_queue_file_is_refused(tmp_path: Path):
    queue = EventQueue(tmp_path / "trigger.db")
    try:
        with pytest.raises(QueueBusyError, match="give each its own --data"):
            EventQueue(tmp_path / "trigger.db")
    finally:
        queue.close()
    EventQueue(tmp_path / "trigger.db").close()  # free again once closed


# ---- `superres local` as a user runs it -----------------------------------------------------------------------------

def _upload(port: int, keys: list[str]) -> None:
    """Upload concurrently; every put_object returning is an acknowledged upload."""
    clients = thread_clients(port)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i_key: clients().put_object(Bucket=BUCKET, Key=i_key[1], Body=png(i_key[0])),
                      enumerate(keys)))


def _outcomes(data_dir: Path) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = {}
    for line in function_lines(data_dir):
        reasons.setdefault(line["key"], []).append(line["reason"])
    return reasons


def _instances(proc: subprocess.Popen) -> list[psutil.Process]:
    return [p for p in psutil.Process(proc.pid).children(recursive=True) if "runtime.py" in " ".join(p.cmdline())]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_right_after_100_acknowledged_uploads_then_restart_delivers_all_100(tmp_path: Path):
    data_dir = tmp_path / "data"
    keys = [f"uploads/crash/{i:03d}.png" for i in range(100)]
    with superres_local(data_dir) as (proc, port):
        _upload(port, keys)
        instances = _instances(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for instance in instances:  # orphans in their own sessions; they end once their stdin closes
        try:
            instance.wait(30)
        except psutil.NoSuchProcess:
            pass
    left = _queued_rows(data_dir / "trigger.db")
    assert left > 0, "every event was delivered before the kill: this test did not test anything"

    with superres_local(data_dir) as (_proc, port):
        wait_for_outcomes(data_dir, set(keys), timeout=300)
        client = cos_client(port)
        for key in keys:
            assert client.object_exists(Bucket=BUCKET, Key="superres/" + key + ".png"), key
    banner = output_log(data_dir, port).read_text()
    assert f"({left} events from the last run" in banner
    for key, reasons in _outcomes(data_dir).items():
        # CI ran at most once per key: an event redelivered after being cut off mid-delivery (its result stored,
        # its log line lost with the process) finds it already done
        # An event whose delivery was cut off by the kill may first find that delivery's claim still live: it then
        # fails as WorkInProgress (retryable) and a retry ends it once the claim has expired.
        assert reasons.count("processed") <= 1 and set(reasons) <= {*SUCCESS, "WorkInProgress"}, (key, reasons)
        assert reasons[-1] in SUCCESS, (key, reasons)
    assert _queued_rows(data_dir / "trigger.db") == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_keeps_queued_events_says_so_and_the_next_start_delivers_them(tmp_path: Path, sig: signal.Signals):
    data_dir = tmp_path / "data"
    keys = [f"uploads/stop/{i:02d}.png" for i in range(40)]
    with superres_local(data_dir) as (proc, port):
        _upload(port, keys)
        instances = _instances(proc)
        assert instances, "no function instance was running: nothing for Ctrl-C to reach"
        os.killpg(proc.pid, sig)  # as the terminal does: the whole foreground process group
        assert proc.wait(60) == 0
    output = output_log(data_dir, port).read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert not [p for p in instances if _alive(p)], "function instances outlived `superres local`"
    message = re.search(r"stopped: (\d+) queued trigger events kept in (\S+)trigger\.db", output)
    assert message, output
    assert int(message.group(1)) == _queued_rows(data_dir / "trigger.db") > 0
    assert "the next `superres local --data" in output

    with superres_local(data_dir):
        wait_for_outcomes(data_dir, set(keys), timeout=300)


def test_drain_delivers_the_queue_before_exiting(tmp_path: Path):
    data_dir = tmp_path / "data"
    keys = [f"uploads/drain/{i:02d}.png" for i in range(30)]
    with superres_local(data_dir, "--drain", "300") as (proc, port):
        _upload(port, keys)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(300) == 0
    output = output_log(data_dir, port).read_text()
    assert "stopped: the trigger queue is empty (drained: every event delivered)" in output, output
    assert "Traceback" not in output
    assert set(keys) <= {line["key"] for line in function_lines(data_dir) if line["reason"] in SUCCESS}
    assert _queued_rows(data_dir / "trigger.db") == 0


def test_a_second_ctrl_c_cuts_the_drain_short_and_keeps_the_rest(tmp_path: Path):
    data_dir = tmp_path / "data"
    keys = [f"uploads/cut/{i:02d}.png" for i in range(60)]
    with superres_local(data_dir, "--drain", "300") as (proc, port):
        _upload(port, keys)
        os.killpg(proc.pid, signal.SIGINT)
        _wait(lambda: "stopping: delivering" in output_log(data_dir, port).read_text())
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    output = output_log(data_dir, port).read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    message = re.search(r"stopped: (\d+) queued trigger events kept in ", output)
    assert message and int(message.group(1)) == _queued_rows(data_dir / "trigger.db") > 0, output
