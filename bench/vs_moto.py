"""The stand-in against moto's S3 server, operation by operation, side by side.

Each server runs in a process of its own: the stand-in (`superres local --engine bicubic --no-trigger`) spoken to by
cos-python-sdk-v5, and `moto_server` spoken to by boto3. Both clients run here, 8 threads each, one SDK client and
connection pool per thread (kept alive across requests, as a test suite's client is). A round runs every phase on
one server, then on the other (the order rotates each round); a phase's ratio is moto's wall time over the
stand-in's in the same round, and the figure is the median of those per-round ratios (> 1: the stand-in is faster).

Phases of a round: PUT, GET, HEAD, LIST, DELETE of 2,000 x 10 KB objects (LIST: every thread walks the 2,000 keys in
pages of 100), then PUT and GET of 20 x 8 MB objects. The server's CPU (user + system, from /proc) is read around each
phase; peak RSS is the server's high-water mark (VmHWM) after the last round.

`python -m bench vs_moto` (or `--only vs_moto`) runs these rows alone; add `--quick` for a smoke run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import psutil
import requests

from .measure import ROOT, interleaved, median, progress
from .report import Goal, Row
from .standin_proc import BUCKET, StandinProcess, free_port

THREADS = 8
SMALL_BYTES = 10 * 1024
BIG_BYTES = 8 * 1024 * 1024
LIST_PAGE = 100
_READ_CHUNK = 1024 * 1024
_MOTO_REGION = "us-east-1"
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class _Sizes:
    small: int
    big: int
    rounds: int


@dataclass(frozen=True)
class _Phase:
    name: str  # row label
    ops: Callable[[_Sizes], int]  # requests the phase makes


_PHASES = (
    _Phase("PUT 10 KB", lambda s: s.small),
    _Phase("GET 10 KB", lambda s: s.small),
    _Phase("HEAD 10 KB", lambda s: s.small),
    _Phase("LIST (pages of 100)", lambda s: THREADS * -(-s.small // LIST_PAGE)),
    _Phase("DELETE 10 KB", lambda s: s.small),
    _Phase("PUT 8 MB", lambda s: s.big),
    _Phase("GET 8 MB", lambda s: s.big),
)


@dataclass(frozen=True)
class _Measured:
    wall_s: float
    cpu_s: float  # the server process's user + system CPU over the phase


class _Client(Protocol):
    """The five calls a phase makes, through one server's own SDK; one client per thread."""

    def put(self, key: str, body: bytes) -> None: ...
    def get(self, key: str) -> int: ...
    def head(self, key: str) -> int: ...
    def list_page(self, prefix: str, marker: str) -> tuple[list[str], str]: ...
    def delete(self, key: str) -> None: ...


class _CosClient:
    def __init__(self, standin: StandinProcess) -> None:
        self._client = standin.client()

    def put(self, key: str, body: bytes) -> None:
        self._client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def get(self, key: str) -> int:
        raw = self._client.get_object(Bucket=BUCKET, Key=key)["Body"].get_raw_stream()
        return _drain(raw.read)

    def head(self, key: str) -> int:
        return int(self._client.head_object(Bucket=BUCKET, Key=key)["Content-Length"])

    def list_page(self, prefix: str, marker: str) -> tuple[list[str], str]:
        page = self._client.list_objects(Bucket=BUCKET, Prefix=prefix, Marker=marker, MaxKeys=LIST_PAGE)
        keys = [item["Key"] for item in page.get("Contents", [])]
        return keys, (page.get("NextMarker") or keys[-1]) if page.get("IsTruncated") == "true" else ""

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=BUCKET, Key=key)


class _BotoClient:
    def __init__(self, endpoint: str) -> None:
        import boto3  # a dev dependency; imported here so the other benchmarks do not need it
        from botocore.config import Config

        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint, region_name=_MOTO_REGION, aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0}))

    def put(self, key: str, body: bytes) -> None:
        self._client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def get(self, key: str) -> int:
        return _drain(self._client.get_object(Bucket=BUCKET, Key=key)["Body"].read)

    def head(self, key: str) -> int:
        return int(self._client.head_object(Bucket=BUCKET, Key=key)["ContentLength"])

    def list_page(self, prefix: str, marker: str) -> tuple[list[str], str]:
        page = self._client.list_objects(Bucket=BUCKET, Prefix=prefix, Marker=marker, MaxKeys=LIST_PAGE)
        keys = [item["Key"] for item in page.get("Contents", [])]
        return keys, (page.get("NextMarker") or keys[-1]) if page.get("IsTruncated") else ""

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=BUCKET, Key=key)


def _drain(read: Callable[[int], bytes]) -> int:
    total = 0
    while chunk := read(_READ_CHUNK):
        total += len(chunk)
    return total


class _Server:
    """One server process, its clients (one per worker thread) and the thread pool that drives them."""

    def __init__(self, name: str, pid: int, make_client: Callable[[], _Client]) -> None:
        self.name = name
        self.process = psutil.Process(pid)
        self._make_client = make_client
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix=f"bench-{name}")

    def client(self) -> _Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_client()
        return client

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def peak_rss_mib(self) -> float:
        """The process's high-water mark (Linux's VmHWM): the peak, not a sample that could miss it."""
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmHWM in /proc/{self.process.pid}/status")

    def run(self, shards: Sequence[Callable[[_Client], None]]) -> _Measured:
        """Run one callable per worker thread, each with that thread's client; wall and server CPU time."""
        cpu0, t0 = self.cpu_s(), time.perf_counter()
        for future in [self._pool.submit(lambda s=shard: s(self.client())) for shard in shards]:
            future.result()
        return _Measured(time.perf_counter() - t0, self.cpu_s() - cpu0)

    def close(self) -> None:
        self._pool.shutdown()


def _shards(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i::THREADS] for i in range(THREADS)]


def _round(server: _Server, sizes: _Sizes, tag: str, small_body: bytes, big_body: bytes) -> dict[str, _Measured]:
    """Every phase once on `server`; the objects are gone again at the end."""
    prefix = f"{tag}/"
    small = [f"{prefix}small-{i:05d}" for i in range(sizes.small)]
    big = [f"{prefix}big-{i:03d}" for i in range(sizes.big)]

    def each(keys: Sequence[str], call: Callable[[_Client, str], object]) -> list[Callable[[_Client], None]]:
        def shard(part: Sequence[str]) -> Callable[[_Client], None]:
            def run(client: _Client) -> None:
                for key in part:
                    call(client, key)
            return run
        return [shard(part) for part in _shards(keys)]

    def walk(client: _Client) -> None:
        seen, marker = 0, ""
        while True:
            keys, marker = client.list_page(prefix + "small-", marker)
            seen += len(keys)
            if not marker:
                break
        if seen != len(small):
            raise RuntimeError(f"{server.name}: the listing gave {seen} keys, not {len(small)}")

    def sized(expected: int, read: Callable[[_Client, str], int]) -> Callable[[_Client, str], None]:
        def call(client: _Client, key: str) -> None:
            if (got := read(client, key)) != expected:
                raise RuntimeError(f"{server.name}: {key} came back with {got} bytes, not {expected}")
        return call

    runs = [  # in the order of _PHASES
        each(small, lambda c, k: c.put(k, small_body)),
        each(small, sized(SMALL_BYTES, lambda c, k: c.get(k))),
        each(small, sized(SMALL_BYTES, lambda c, k: c.head(k))),
        [walk] * THREADS,
        each(small, lambda c, k: c.delete(k)),
        each(big, lambda c, k: c.put(k, big_body)),
        each(big, sized(BIG_BYTES, lambda c, k: c.get(k))),
    ]
    measured = {phase.name: server.run(shards) for phase, shards in zip(_PHASES, runs, strict=True)}
    server.run(each(big, lambda c, k: c.delete(k)))
    return measured


@contextmanager
def _moto() -> Iterator[_Server]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    progress(f"starting moto_server on {endpoint}")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited at start-up ({proc.returncode}); is moto[server] installed?")
            try:
                requests.get(endpoint + "/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {endpoint}") from None
                time.sleep(0.1)
        server = _Server("moto", proc.pid, lambda: _BotoClient(endpoint))
        server.client()._client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        try:
            yield server
        finally:
            server.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _standin() -> Iterator[_Server]:
    with StandinProcess() as standin:
        server = _Server("stand-in", standin.pid, lambda: _CosClient(standin))
        try:
            yield server
        finally:
            server.close()


def run(quick: bool) -> list[Row]:
    sizes = _Sizes(small=400, big=8, rounds=2) if quick else _Sizes(small=2000, big=20, rounds=5)
    small_body, big_body = os.urandom(SMALL_BYTES), os.urandom(BIG_BYTES)
    with _standin() as standin, _moto() as moto:
        servers = {"stand-in": standin, "moto": moto}
        progress(f"vs moto: {sizes.rounds} interleaved rounds of {sizes.small} x 10 KB and {sizes.big} x 8 MB, "
                 f"{THREADS} client threads per server")
        results = interleaved(
            {name: (lambda r, s=server: _round(s, sizes, f"r{r + 1}", small_body, big_body))
             for name, server in servers.items()},
            sizes.rounds, warmup=1)
        peak = {name: server.peak_rss_mib() for name, server in servers.items()}
    return _rows(results, peak, sizes)


def _rows(results: dict[str, list[dict[str, _Measured]]], peak: dict[str, float], sizes: _Sizes) -> list[Row]:
    how = (f"moto's wall time / the stand-in's, median of {sizes.rounds} per-round ratios; "
           f"{THREADS} threads of cos-python-sdk-v5 -> stand-in, of boto3 -> moto_server")
    rows = []
    for phase in _PHASES:
        standin = [round_[phase.name] for round_ in results["stand-in"]]
        moto = [round_[phase.name] for round_ in results["moto"]]
        ratio = median([m.wall_s / s.wall_s for s, m in zip(standin, moto, strict=True)])
        ops = phase.ops(sizes)
        rate = f"{ops / median([m.wall_s for m in standin]):.0f} vs {ops / median([m.wall_s for m in moto]):.0f} req/s"
        rows.append(Row(f"vs moto: {phase.name}, stand-in speed / moto's", ratio, "x", Goal(">=", 1.0),
                        f"{how}; {rate} (stand-in vs moto, medians); next goal 2x"))
    for phase in _PHASES:
        ops = phase.ops(sizes)
        standin_cpu = median([round_[phase.name].cpu_s for round_ in results["stand-in"]]) / ops * 1000
        moto_cpu = median([round_[phase.name].cpu_s for round_ in results["moto"]]) / ops * 1000
        rows.append(Row(f"stand-in server CPU per 1,000 {phase.name} requests", standin_cpu, "CPU s",
                        note=f"moto_server: {moto_cpu:.2f} CPU s; median over rounds, user + system"))
    rows += [
        Row("peak RSS under 8 MB bodies: stand-in / moto", peak["stand-in"] / peak["moto"], "x", Goal("<=", 1.0),
            "each server process's VmHWM after every round (moto keeps bodies in memory)"),
        Row("peak RSS under 8 MB bodies: stand-in", peak["stand-in"], "MiB"),
        Row("peak RSS under 8 MB bodies: moto_server", peak["moto"], "MiB"),
    ]
    return rows
