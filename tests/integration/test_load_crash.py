"""Load and crash, against `superres local` run as a separate process, the way a user runs it:
- 500 uploads at concurrency 16 through the SDK with the trigger on: 500 outputs, none lost or duplicated, and the
  stand-in's memory stays bounded;
- kill -9 during a burst of concurrent writes, restart on the same data folder: no partial or corrupt object, and
  every write that was acknowledged before the kill is there."""

from __future__ import annotations

import hashlib
import random
import signal
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from tests.integration.local_process import (
    BUCKET,
    cos_client,
    function_lines,
    list_all,
    png,
    superres_local,
    thread_clients,
    wait_for_outcomes,
)

MAX_RSS_GROWTH = 300 * 1024 * 1024

pytestmark = pytest.mark.slow


def test_500_uploads_at_concurrency_16_give_500_outputs_and_bounded_memory(tmp_path: Path):
    data_dir = tmp_path / "data"
    with superres_local(data_dir) as (proc, port):
        client = cos_client(port)
        # Warm up: SR engine loaded, function instances started, so "before" is the steady state.
        warm = {f"uploads/warm/{i}.png": png(i) for i in range(16)}
        for key, data in warm.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=data)
        wait_for_outcomes(data_dir, set(warm), timeout=120)
        standin = psutil.Process(proc.pid)
        rss_before = standin.memory_info().rss

        sources = {f"uploads/load/{i:03d}.png": png(i) for i in range(500)}
        clients = thread_clients(port)

        def upload(item: tuple[str, bytes]) -> None:
            clients().put_object(Bucket=BUCKET, Key=item[0], Body=item[1])

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(upload, sources.items()))
        wait_for_outcomes(data_dir, set(sources), timeout=480)
        rss_after = standin.memory_info().rss

        outputs = list_all(client, BUCKET, "superres/uploads/load/")
        keys = [obj["Key"] for obj in outputs]
        assert len(keys) == len(set(keys)) == 500
        assert set(keys) == {"superres/" + key + ".png" for key in sources}
        for obj in outputs[::25]:
            body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].get_raw_stream().read()
            assert obj["ETag"] == f'"{hashlib.md5(body).hexdigest()}"' and int(obj["Size"]) == len(body)

    reasons: dict[str, list[str]] = defaultdict(list)
    for line in function_lines(data_dir):
        reasons[line["key"]].append(line["reason"])
    for key in sources:
        # processed exactly once; a retried delivery may only find it already done
        assert reasons[key].count("processed") == 1, (key, reasons[key])
        assert set(reasons[key]) <= {"processed", "already_done"}, (key, reasons[key])
    assert rss_after - rss_before < MAX_RSS_GROWTH, (rss_before, rss_after)


def test_kill_9_during_concurrent_writes_leaves_no_partial_or_corrupt_object(tmp_path: Path):
    data_dir = tmp_path / "data"
    sent: dict[str, str] = {}  # every key a PUT was started for -> MD5 of its bytes
    acked: set[str] = set()  # keys whose PUT returned 200 before the kill
    lock = threading.Lock()
    stop = threading.Event()

    with superres_local(data_dir, "--no-trigger") as (proc, port):
        clients = thread_clients(port)

        def writer(worker: int) -> None:
            rng = random.Random(worker)
            for n in range(10_000):
                if stop.is_set():
                    return
                key = f"burst/w{worker}/{n:05d}.bin"
                body = rng.randbytes(rng.randint(1024, 200 * 1024))
                with lock:
                    sent[key] = hashlib.md5(body).hexdigest()
                try:
                    clients().put_object(Bucket=BUCKET, Key=key, Body=body)
                except (CosClientError, CosServiceError):
                    return  # the server is gone
                with lock:
                    acked.add(key)

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(8)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while len(acked) < 150:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-burst: eight writes in flight
        proc.wait()
        stop.set()
        for thread in threads:
            thread.join(30)
    acked_before_kill = set(acked)
    assert len(acked_before_kill) >= 150

    with superres_local(data_dir, "--no-trigger") as (_proc, port):
        client = cos_client(port)
        listed = list_all(client, BUCKET)
        keys = {obj["Key"] for obj in listed}
        assert acked_before_kill <= keys, f"lost acknowledged writes: {sorted(acked_before_kill - keys)[:5]}"
        for obj in listed:
            body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].get_raw_stream().read()
            md5 = hashlib.md5(body).hexdigest()
            assert obj["ETag"] == f'"{md5}"' and int(obj["Size"]) == len(body), obj["Key"]
            assert md5 == sent[obj["Key"]], f"{obj['Key']} holds bytes that were never sent"
    assert list(data_dir.rglob(".tmp-*")) == []  # interrupted writes were swept at restart
