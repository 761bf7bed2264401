"""Backfill: super-resolve the images already in a bucket, with the function's own rules and code path.

Each listed object becomes a synthesized COS upload record (the shape the trigger delivers) and then either
- goes through `superres_fn.handle_event` in this process, with a CosGateway and the function's Settings
  loaded from serverless.yml's environment (the same decision, HEAD, CI call and log line as in SCF), or
- with `deployed`, is planned here (the same `decide`, including the skip-if-done HEAD) and sent to the
  deployed function in batches through SCF async invocations (InvocationType=Event, each request's
  ClientContext under SCF's 128 KB async limit), so the cloud does the work in parallel.

Listing is paginated (Marker/MaxKeys). After every fully handled page a checkpoint (the page's NextMarker and
the running totals) is written atomically; a later run resumes after it. Objects handled on an interrupted page
are met again on resume and skipped as `already_done` (the destination exists), so each is processed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from qcloud_cos import CosS3Client
from superres_fn import (
    CosGateway,
    CosRecord,
    Decision,
    Endpoint,
    Invocation,
    Settings,
    SuperresError,
    cos_config,
    decide,
    handle_event,
    load_settings,
    parse_record,
)
from tqdm import tqdm

from .scf.client import ASYNC_EVENT_MAX_BYTES, InvokeError, Target, encode_event, invoke
from .scf.serverless import FunctionSpec
from .scf.trigger import build_cos_event
from .standin.events import ObjectCreated

T = TypeVar("T")
CHECKPOINT_VERSION = 1
# The SCF API's default rate limit for Invoke is 20 requests/s.
SCF_INVOKE_MAX_RATE = 20.0
BACKFILL_EVENT_NAME = "cos:ObjectCreated:Put"


class BackfillError(RuntimeError):
    """A checkpoint that belongs to another listing, or a listing that failed."""


class BackfillInterrupted(Exception):
    """Ctrl-C (or an injected KeyboardInterrupt): the summary so far; the checkpoint is the last full page."""

    def __init__(self, summary: dict[str, object]) -> None:
        super().__init__("interrupted")
        self.summary = summary


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str


@dataclass
class Totals:
    listed: int = 0
    processed: int = 0  # handled by the function in-process, or handed to the deployed function
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    invocations: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"listed": self.listed, "processed": self.processed, "skipped": dict(sorted(self.skipped.items())),
                "failed": self.failed, "invocations": self.invocations}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Totals:
        return cls(int(data.get("listed", 0)), int(data.get("processed", 0)),  # type: ignore[arg-type]
                   Counter(data.get("skipped") or {}), int(data.get("failed", 0)),  # type: ignore[arg-type]
                   int(data.get("invocations", 0)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Deployed:
    client: object  # tencentcloud ScfClient
    target: Target
    batch_size: int = 10


@dataclass
class BackfillOptions:
    bucket: str
    prefix: str = ""
    region: str = "ap-guangzhou"
    concurrency: int = 8
    rate: float = 50.0  # objects per second; Cloud Infinite's persistent processing allows 100 QPS
    page_size: int = 1000
    checkpoint: Path | None = None
    resume: bool = True
    dry_run: bool = False
    max_objects: int | None = None  # stop after this many objects (a chunk of work; resume continues)
    deployed: Deployed | None = None
    progress: bool | None = None  # None: only on a terminal
    log_path: Path | None = None  # the function's JSON log lines (in-process mode)
    on_outcome: Callable[[ListedObject, str, str], None] | None = None  # (object, outcome, reason), main thread


class RateLimiter:
    """Token bucket: at most `rate` acquisitions per second on average, bursts of `burst`."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst = rate, max(1.0, burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1  # reserve now; a negative balance is the wait owed
            wait_s = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait_s > 0:
            self._sleep(wait_s)


def function_settings(spec: FunctionSpec, *, region: str, endpoint: str | None) -> Settings:
    """Settings exactly as the deployed function loads them from serverless.yml, plus where COS is."""
    env = dict(spec.environment)
    env["TENCENTCLOUD_REGION"] = region
    if endpoint:
        env["COS_ENDPOINT_URL"] = endpoint
    return load_settings(env)


def cos_client(region: str, credentials: Mapping[str, str], endpoint: Endpoint | None) -> CosS3Client:
    """The listing client: configured like the function's own (cos_config), with the SDK's retries on."""
    config = cos_config(region, credentials["TENCENTCLOUD_SECRETID"], credentials["TENCENTCLOUD_SECRETKEY"],
                        credentials.get("TENCENTCLOUD_SESSIONTOKEN") or None, endpoint=endpoint)
    return CosS3Client(config, retry=3)


def default_checkpoint(bucket: str, prefix: str) -> Path:
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:10]
    return Path(".superres") / "backfill" / f"{bucket}-{digest}.json"


class Backfill:
    def __init__(self, options: BackfillOptions, spec: FunctionSpec, settings: Settings, client: CosS3Client,
                 gateway: CosGateway, *, appid: str | None = None, echo: Callable[[str], None] = print) -> None:
        self.options = options
        self.spec = spec
        self.settings = settings
        self.client = client
        self.gateway = gateway
        self.appid = appid or options.bucket.rpartition("-")[2]
        self.echo = echo
        self._log_lock = threading.Lock()

    # -- listing ---------------------------------------------------------------------------------------------

    def pages(self, marker: str | None) -> Iterator[tuple[list[ListedObject], str | None]]:
        """(objects, marker after this page) per page; the last page's marker is None."""
        while True:
            kwargs: dict[str, object] = {"Bucket": self.options.bucket, "Prefix": self.options.prefix,
                                         "MaxKeys": self.options.page_size}
            if marker:
                kwargs["Marker"] = marker
            page = self.client.list_objects(**kwargs)
            contents = page.get("Contents") or []
            if isinstance(contents, dict):
                contents = [contents]
            objects = [ListedObject(c["Key"], int(c.get("Size") or 0), c.get("ETag") or "") for c in contents]
            truncated = str(page.get("IsTruncated", "false")).lower() == "true"
            if truncated:
                next_marker = page.get("NextMarker") or (objects[-1].key if objects else None)
                if not next_marker:
                    raise BackfillError("the listing is truncated but names no NextMarker")
            else:
                next_marker = None
            yield objects, next_marker
            if next_marker is None:
                return
            marker = next_marker

    def record(self, obj: ListedObject) -> dict:
        """The COS event record the trigger would have delivered for this object's upload."""
        created = ObjectCreated(bucket=self.options.bucket, key=obj.key, size=obj.size, etag=obj.etag,
                                content_type="", meta={}, event_name=BACKFILL_EVENT_NAME,
                                request_id=f"backfill-{uuid.uuid4().hex[:16]}", source_ip="", authorization="")
        return build_cos_event(created, appid=self.appid, region=self.options.region, function_name=self.spec.name)

    # -- the three ways to handle an object ------------------------------------------------------------------

    def plan(self, obj: ListedObject) -> tuple[dict, CosRecord, Decision]:
        raw = self.record(obj)
        record = parse_record(raw, default_region=self.options.region)
        decision = decide(record, self.settings,
                          exists=lambda bucket, key: self.gateway.exists(bucket, key, record.region))
        return raw, record, decision

    def process(self, obj: ListedObject) -> tuple[str, str]:
        """Through handle_event, as the function runs it; returns (outcome, reason)."""
        lines: list[dict[str, object]] = []
        invocation = Invocation(settings=self.settings, gateway=self.gateway, emit=lines.append)
        context = {"request_id": f"backfill-{uuid.uuid4()}", "time_limit_in_ms": self.spec.timeout_s * 1000,
                   "function_name": self.spec.name}
        try:
            handle_event({"Records": [self.record(obj)]}, context, invocation)
        except SuperresError:
            pass  # RecordsFailedError: the record's own log line says why
        self._write_log(lines)
        line = next((entry for entry in reversed(lines) if "outcome" in entry), {})
        outcome = str(line.get("outcome") or "failed")
        return ("failed" if outcome == "invalid" else outcome), str(line.get("reason") or "no_log_line")

    # -- the run ---------------------------------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        opts = self.options
        started = time.monotonic()
        checkpoint_path = opts.checkpoint
        marker, earlier, resumed = self._resume_point(checkpoint_path)
        run = Totals()
        stopped_early = False
        rate = min(opts.rate, SCF_INVOKE_MAX_RATE) if opts.deployed else opts.rate
        limiter = RateLimiter(rate)
        bar = tqdm(total=0, unit="obj", file=sys.stderr, disable=(not opts.progress) if opts.progress is not None
                   else None, dynamic_ncols=True, desc="dry run" if opts.dry_run else "backfill")
        executor = ThreadPoolExecutor(max_workers=max(1, opts.concurrency), thread_name_prefix="backfill")
        try:
            for objects, next_marker in self.pages(marker):
                budget = None if opts.max_objects is None else opts.max_objects - run.listed
                if budget is not None and budget < len(objects):
                    objects, stopped_early = objects[:max(0, budget)], True
                run.listed += len(objects)
                bar.total = (bar.total or 0) + len(objects)
                bar.refresh()
                if opts.dry_run:
                    self._dry_run_page(objects, executor, run, bar)
                elif opts.deployed:
                    self._deployed_page(objects, executor, limiter, run, bar)
                else:
                    self._local_page(objects, executor, limiter, run, bar)
                if stopped_early:
                    break
                if not opts.dry_run and checkpoint_path is not None:
                    self._save_checkpoint(checkpoint_path, next_marker, _add(earlier, run), complete=next_marker
                                          is None)
        except KeyboardInterrupt:
            executor.shutdown(wait=True, cancel_futures=True)
            bar.close()
            raise BackfillInterrupted(self._summary(run, earlier, started, resumed, interrupted=True)) from None
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return self._summary(run, earlier, started, resumed, stopped_early=stopped_early)

    def _local_page(self, objects: list[ListedObject], executor: ThreadPoolExecutor, limiter: RateLimiter,
                    run: Totals, bar: tqdm) -> None:
        def work(obj: ListedObject) -> tuple[str, str]:
            limiter.acquire()
            return self.process(obj)

        for obj, (outcome, reason) in self._completed(executor, work, objects):
            if outcome == "processed":
                run.processed += 1
            elif outcome == "skipped":
                run.skipped[reason] += 1
            else:
                run.failed += 1
                bar.write(f"failed: {obj.key}: {reason}", file=sys.stderr)
            self._tick(bar, run, obj, outcome, reason)

    def _deployed_page(self, objects: list[ListedObject], executor: ThreadPoolExecutor, limiter: RateLimiter,
                       run: Totals, bar: tqdm) -> None:
        deployed = self.options.deployed
        assert deployed is not None
        to_send: list[tuple[ListedObject, dict]] = []
        for obj, planned in self._completed(executor, self._plan_or_error, objects):
            if isinstance(planned, SuperresError):
                run.failed += 1
                bar.write(f"failed: {obj.key}: {planned.code}", file=sys.stderr)
                self._tick(bar, run, obj, "failed", planned.code)
                continue
            raw, decision = planned
            if decision.should_process:
                to_send.append((obj, raw))
            else:
                run.skipped[decision.reason] += 1
                self._tick(bar, run, obj, "skipped", decision.reason)
        offset = 0
        for batch in batches([raw for _, raw in to_send], deployed.batch_size):
            sent, offset = [obj for obj, _ in to_send[offset:offset + len(batch)]], offset + len(batch)
            limiter.acquire()
            try:
                invoke(deployed.client, deployed.target, {"Records": batch}, invocation_type="Event")  # type: ignore[arg-type]
            except InvokeError as exc:
                run.failed += len(batch)
                bar.write(f"failed: an Event invocation of {len(batch)} records: {exc}", file=sys.stderr)
                outcome, reason = "failed", exc.code
            else:
                run.invocations += 1
                run.processed += len(batch)
                outcome, reason = "processed", "submitted"
            for obj in sent:
                self._tick(bar, run, obj, outcome, reason)

    def _dry_run_page(self, objects: list[ListedObject], executor: ThreadPoolExecutor, run: Totals,
                      bar: tqdm) -> None:
        # executor.map keeps the listing order, so the plan reads like the bucket.
        for obj, planned in zip(objects, executor.map(self._plan_or_error, objects), strict=True):
            if isinstance(planned, SuperresError):
                run.failed += 1
                self.echo(f"failed\t{planned.code}\t{obj.key}")
                self._tick(bar, run, obj, "failed", planned.code)
                continue
            decision = planned[1]
            if decision.should_process:
                run.processed += 1
            else:
                run.skipped[decision.reason] += 1
            self.echo(f"{decision.action}\t{decision.reason}\t{obj.key} -> {decision.dest_key}")
            self._tick(bar, run, obj, decision.action, decision.reason)

    @staticmethod
    def _completed(executor: ThreadPoolExecutor, fn: Callable[[ListedObject], T], objects: list[ListedObject]
                   ) -> Iterator[tuple[ListedObject, T]]:
        """Run fn over objects on the pool; yield (object, result) as each finishes, in the calling thread."""
        pending: dict[Future[T], ListedObject] = {executor.submit(fn, obj): obj for obj in objects}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()

    def _plan_or_error(self, obj: ListedObject) -> tuple[dict, Decision] | SuperresError:
        try:
            raw, _record, decision = self.plan(obj)
        except SuperresError as exc:  # the HEAD failed (after the gateway's own typing); count it, go on
            return exc
        return raw, decision

    def _tick(self, bar: tqdm, run: Totals, obj: ListedObject, outcome: str, reason: str) -> None:
        bar.update(1)
        bar.set_postfix(skipped=sum(run.skipped.values()), failed=run.failed, refresh=False)
        if self.options.on_outcome is not None:
            self.options.on_outcome(obj, outcome, reason)

    def _write_log(self, lines: list[dict[str, object]]) -> None:
        if self.options.log_path is None or not lines:
            return
        text = "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
        with self._log_lock, self.options.log_path.open("a", encoding="utf-8") as fh:
            fh.write(text)

    # -- checkpoint ------------------------------------------------------------------------------------------

    def _resume_point(self, path: Path | None) -> tuple[str | None, Totals, bool]:
        if path is None or not self.options.resume or self.options.dry_run or not path.is_file():
            return None, Totals(), False
        data = json.loads(path.read_text(encoding="utf-8"))
        if (data.get("bucket"), data.get("prefix")) != (self.options.bucket, self.options.prefix):
            raise BackfillError(f"{path} is the checkpoint of {data.get('bucket')}/{data.get('prefix')}*, not "
                                f"{self.options.bucket}/{self.options.prefix}*: pass another --checkpoint or "
                                "--no-resume")
        if data.get("complete"):
            return None, Totals(), False  # the last run finished: start over (finished objects are skipped)
        return data.get("marker"), Totals.from_dict(data.get("totals") or {}), True

    def _save_checkpoint(self, path: Path, marker: str | None, totals: Totals, *, complete: bool) -> None:
        data = {"version": CHECKPOINT_VERSION, "bucket": self.options.bucket, "prefix": self.options.prefix,
                "mode": "deployed" if self.options.deployed else "local", "marker": marker, "complete": complete,
                "totals": totals.as_dict(), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _summary(self, run: Totals, earlier: Totals, started: float, resumed: bool, *, interrupted: bool = False,
                 stopped_early: bool = False) -> dict[str, object]:
        summary: dict[str, object] = {"bucket": self.options.bucket, "prefix": self.options.prefix,
                                      "mode": "dry_run" if self.options.dry_run else
                                      "deployed" if self.options.deployed else "local"}
        summary.update(run.as_dict())
        if not self.options.deployed:
            summary.pop("invocations")
        if self.options.dry_run:
            summary["to_process"] = summary.pop("processed")
        summary["seconds"] = round(time.monotonic() - started, 3)
        summary["resumed"] = resumed
        if resumed:
            summary["totals_with_earlier_runs"] = _add(earlier, run).as_dict()
        if interrupted:
            summary["interrupted"] = True
        if stopped_early:
            summary["stopped_after_max_objects"] = True
        return summary


def batches(records: list[dict], batch_size: int, max_bytes: int = ASYNC_EVENT_MAX_BYTES) -> Iterator[list[dict]]:
    """Groups of at most batch_size records whose {"Records": [...]} event encodes to at most max_bytes."""
    overhead = len(encode_event({"Records": []}))
    batch: list[dict] = []
    size = overhead
    for record in records:
        record_bytes = len(encode_event(record)) + 1  # + the comma between records
        if record_bytes + overhead > max_bytes:
            raise BackfillError(f"one record alone encodes to {record_bytes} bytes, over the {max_bytes}-byte "
                                "async limit")
        if batch and (len(batch) >= batch_size or size + record_bytes > max_bytes):
            yield batch
            batch, size = [], overhead
        batch.append(record)
        size += record_bytes
    if batch:
        yield batch


def _add(a: Totals, b: Totals) -> Totals:
    return Totals(a.listed + b.listed, a.processed + b.processed, a.skipped + b.skipped, a.failed + b.failed,
                  a.invocations + b.invocations)


