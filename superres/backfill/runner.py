"""Backfill: super-resolve the images already in a bucket, with the function's own rules and code path.

Finding the work (plan.py): the sources (a listing of the bucket, a COS Inventory report, or a
`superres reconcile` report), sorted by key, are merged with one listing of each destination prefix: no HEAD per
object. A source is work when a result is missing, or older than the source (freshness, whole seconds).

Doing it, one object batch at a time:
- in this process, through `superres_fn.process_event` with a CosGateway and the function's Settings loaded
  from serverless.yml's environment (the same CI call and log line as in SCF; the planner has already checked
  the destination, so the function is told not to HEAD it again), or
- with `deployed`, as synthesized COS upload records sent to the deployed function through SCF async
  invocations (InvocationType=Event, each request's ClientContext at most 128 KB of UTF-8), where the function
  decides (and HEADs) as on any upload.

Rates: CI persistent processing allows 100 requests/s in mainland regions and 50/s in finance and overseas ones;
SCF's Invoke API 100 requests/s; with a reserved concurrency, at most what its instances can absorb.

After every handled batch a checkpoint (the last key of the handled prefix of the sorted sources, the totals,
the CI calls used and the --max-calls cap) is written atomically; it records the endpoint, region, mode, bucket
and prefix and refuses to resume a different run. Ctrl-C stops taking new objects and finishes those in flight;
a second Ctrl-C stops at once, charging the abandoned objects' calls to the cap (stopping.py). Either way the
checkpoint covers exactly what was handled, and its CI calls are the summary's.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError
from superres_fn import CosGateway, Invocation, Settings, process_event
from superres_fn.config import Output
from superres_fn.targets import result_key
from tqdm import tqdm

from ..scf.client import InvokeError, invoke
from ..scf.serverless import FunctionSpec
from ..scf.trigger import build_cos_event
from ..standin.events import ObjectCreated
from . import checkpoint
from .options import (
    BackfillError,
    BackfillInterrupted,
    BackfillOptions,
    ListingSource,
    RateLimiter,
    Source,
    Totals,
    batches,
    describe_cos_error,
)
from .plan import (
    BACKFILL_EVENT_NAME,
    SCF_INVOKE_MAX_RATE,
    ListedObject,
    PlanItem,
    bucket_listing,
    ci_rate_limit,
    estimated_output_bytes,
    outputs_for,
    plan,
    result_listing,
)
from .stopping import Stopping


@dataclass
class _Batch:
    items: list[PlanItem]
    done: list[bool]

    def handled_prefix(self) -> int:
        for i, finished in enumerate(self.done):
            if not finished:
                return i
        return len(self.done)


class Backfill:
    def __init__(self, options: BackfillOptions, spec: FunctionSpec, settings: Settings, client: CosS3Client,
                 gateway: CosGateway, *, appid: str | None = None, echo: Callable[[str], None] = print,
                 say: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.spec = spec
        self.settings = settings
        self.client = client
        self.gateway = gateway
        self.appid = appid or options.bucket.rpartition("-")[2]
        self.echo = echo  # the dry run's plan lines (stdout)
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))  # notices (stderr)
        self.source: Source = options.source or ListingSource(client, options.bucket, options.prefix,
                                                               options.page_size)
        self.outputs: list[Output] = outputs_for(settings, options.bucket)
        # The planner has looked at every destination: the function must not HEAD it again (and a stale result
        # must be redone, which skip-if-exists would refuse).
        self._log_lock = threading.Lock()
        self._stopping = Stopping()
        self._stop = self._stopping.requested
        self._saved: dict[str, object] | None = None  # the totals the checkpoint holds

    # -- identity and checkpoint -----------------------------------------------------------------------------

    def identity(self) -> dict[str, object]:
        opts = self.options
        return {"endpoint": opts.endpoint or "cos.myqcloud.com", "region": opts.region, "mode": opts.mode,
                "bucket": opts.bucket, "prefix": opts.prefix}

    def request_stop(self) -> None:
        """What the first Ctrl-C does: take no new objects, finish those in flight."""
        self._stopping.request()

    # -- planning ----------------------------------------------------------------------------------------------

    def planned(self, after: str | None) -> Iterator[PlanItem]:
        opts = self.options
        ranges = [result_listing(out, opts.prefix, after, self.settings.result_names) for out in self.outputs]
        destinations = [bucket_listing(self.client, out.bucket, where, after=marker, page_size=opts.page_size)
                        for out, (where, marker) in zip(self.outputs, ranges, strict=True)]
        return plan(self.source.objects(after), destinations, self.outputs, self.settings, bucket=opts.bucket,
                    region=opts.region)

    def record(self, obj: ListedObject) -> dict:
        """The COS event record the trigger would have delivered for this object's upload."""
        created = ObjectCreated(bucket=self.options.bucket, key=obj.key, size=obj.size, etag=obj.etag,
                                content_type="", meta={}, event_name=BACKFILL_EVENT_NAME,
                                request_id=f"backfill-{uuid.uuid4().hex[:16]}", source_ip="", authorization="")
        raw = build_cos_event(created, appid=self.appid, region=self.options.region, function_name=self.spec.name)
        if obj.last_modified is not None:
            raw["event"]["eventTime"] = int(obj.last_modified)  # the upload's time, as the trigger would say
        return raw

    def process(self, obj: ListedObject) -> tuple[str, str]:
        """Through the function's own path (process_event: claims, provenance, the same decision as the trigger's);
        returns (outcome, reason) from its report."""
        invocation = Invocation(settings=self.settings, gateway=self.gateway, emit=lambda line: None)
        context = {"request_id": f"backfill-{uuid.uuid4()}", "time_limit_in_ms": self.spec.timeout_s * 1000,
                   "function_name": self.spec.name}
        report = process_event({"Records": [self.record(obj)]}, context, invocation)
        self._write_log(report.lines)
        line = report.lines[-1] if report.lines else {}
        outcome = str(line.get("outcome") or "failed")
        return ("failed" if outcome == "invalid" else outcome), str(line.get("reason") or "no_log_line")

    # -- the run ---------------------------------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        opts = self.options
        started = time.monotonic()
        marker, earlier, resumed, stored_cap = self._resume_point(opts.checkpoint)
        max_calls = opts.max_calls if opts.max_calls is not None else stored_cap
        self._saved = (earlier.as_dict() if resumed else None)
        run = Totals()
        estimate = {"bytes": 0}
        stopped: str | None = None
        total = self.source.total()
        bar = tqdm(total=total, initial=min(earlier.listed, total) if total else 0, unit="obj", file=sys.stderr,
                   disable=(not opts.progress) if opts.progress is not None else None, dynamic_ncols=True,
                   desc="dry run" if opts.dry_run else "backfill")
        executor = ThreadPoolExecutor(max_workers=max(1, opts.concurrency), thread_name_prefix="backfill")
        limiters = self._limiters()
        previous_handler = self._stopping.install()
        batch: _Batch | None = None
        forced = False
        try:
            items = self.planned(marker)
            while stopped is None:
                size = opts.page_size
                if opts.max_objects is not None:
                    size = min(size, opts.max_objects - run.listed)
                    if size <= 0:
                        stopped = "max_objects"
                        break
                with self._stopping.interruptible():
                    batch = _Batch(_take(items, size), [])
                if not batch.items:
                    break
                batch.done = [False] * len(batch.items)
                budget = None if max_calls is None else max(0, max_calls - earlier.calls - run.calls)
                stopped = self._handle(batch, executor, limiters, run, bar, estimate, budget)
                marker = self._advance(batch, marker, earlier, run, max_calls)
                if stopped is None and self._stop.is_set():
                    stopped = "interrupted"
            complete = stopped is None
            if complete:
                self._save(marker, earlier + run, max_calls, complete=True)
        except KeyboardInterrupt:
            forced = True
            self._stopping.request()  # from here on no object begins, so the count below is final
            abandoned = self._stopping.in_flight()
            run.calls += abandoned  # their requests may be made (and billed): the cap counts them
            executor.shutdown(wait=False, cancel_futures=True)
            bar.close()
            if batch is not None:
                marker = self._advance(batch, marker, earlier, run, max_calls)
            self._save(marker, earlier + run, max_calls, complete=False)
            raise BackfillInterrupted(self._summary(run, earlier, started, resumed, estimate, "interrupted",
                                                    max_calls, abandoned=abandoned), forced=True) from None
        except (OSError, ValueError) as exc:
            raise BackfillError(f"the backfill stopped: {exc}") from exc
        except (CosServiceError, CosClientError) as exc:
            raise BackfillError(f"the backfill stopped: {describe_cos_error(exc, opts.endpoint)}") from exc
        finally:
            self._stopping.restore(previous_handler)
            # After a second Ctrl-C nothing waits, not even a job asleep in the rate limiter (it will not begin).
            executor.shutdown(wait=not (forced or self._stopping.forced.is_set()), cancel_futures=True)
            bar.close()
        summary = self._summary(run, earlier, started, resumed, estimate, stopped, max_calls)
        if stopped == "interrupted":
            raise BackfillInterrupted(summary)
        return summary

    def _advance(self, batch: _Batch, marker: str | None, earlier: Totals, run: Totals,
                 max_calls: int | None) -> str | None:
        """Checkpoint the handled prefix of the batch and every call made; returns the new marker."""
        handled = batch.handled_prefix()
        if handled:
            marker = batch.items[handled - 1].obj.key
        batch.items, batch.done = batch.items[handled:], batch.done[handled:]  # so a second call adds nothing
        if handled or (earlier + run).as_dict() != self._saved:
            self._save(marker, earlier + run, max_calls, complete=False)
        return marker

    def _limiters(self) -> dict[str, RateLimiter]:
        opts = self.options
        limit = ci_rate_limit(opts.region)
        rate = opts.rate if opts.rate is not None else limit
        if rate > limit and not opts.endpoint:
            self.say(f"--rate {rate:g} is above Cloud Infinite's {limit:g} requests/s in {opts.region}: using "
                     f"{limit:g}")
            rate = limit
        limiters = {"objects": RateLimiter(rate)}
        if opts.deployed:
            limiters["invocations"] = RateLimiter(SCF_INVOKE_MAX_RATE)
            if opts.reserved_concurrency_mb:
                instances = max(1, opts.reserved_concurrency_mb // max(1, self.spec.memory_mb))
                absorb = instances / max(0.001, opts.seconds_per_image)
                if absorb < rate:
                    self.say(f"reserved concurrency {opts.reserved_concurrency_mb} MB = {instances} instances of "
                             f"{self.spec.memory_mb} MB at ~{opts.seconds_per_image:g} s per image: "
                             f"{absorb:.3g} objects/s")
                    limiters["objects"] = RateLimiter(absorb)
        return limiters

    def _handle(self, batch: _Batch, executor: ThreadPoolExecutor, limiters: dict[str, RateLimiter], run: Totals,
                bar: tqdm, estimate: dict[str, int], budget: int | None) -> str | None:
        """Handle one batch with at most `budget` calls; returns why the run stops ("interrupted" when Ctrl-C came
        during the batch, whatever else happened; "max_calls"), or None."""
        jobs: list[tuple[list[int], Callable[[], object]]] = []
        stopped: str | None = None
        for i, item in enumerate(batch.items):
            if self._stop.is_set():
                stopped = "interrupted"
                break
            if not item.should_process:
                run.listed += 1
                run.skipped[item.reason] += 1
                batch.done[i] = True
                self._show(item, "skip", item.reason)
                self._tick(bar, run, item.obj, "skipped", item.reason)
                continue
            if budget is not None and budget <= 0:
                stopped = "max_calls"
                break
            if budget is not None:
                budget -= 1
            if self.options.dry_run:
                run.listed += 1
                run.processed += 1
                run.calls += 1
                estimate["bytes"] += estimated_output_bytes(item.obj, self.outputs)
                batch.done[i] = True
                self._show(item, "process", item.reason)
                self._tick(bar, run, item.obj, "process", item.reason)
                continue
            jobs.append(([i], self._local_job(item, limiters)))
        if self.options.deployed and jobs:
            jobs = self._invocation_jobs(batch, [index for indexes, _ in jobs for index in indexes], limiters)
        self._run_jobs(batch, jobs, executor, run, bar)
        return "interrupted" if self._stop.is_set() else stopped

    def _local_job(self, item: PlanItem, limiters: dict[str, RateLimiter]) -> Callable[[], object]:
        def job() -> object:
            if self._stop.is_set():
                return None
            limiters["objects"].acquire()
            if not self._stopping.begin(1):
                return None
            return self.process(item.obj)
        return job

    def _invocation_jobs(self, batch: _Batch, indexes: list[int], limiters: dict[str, RateLimiter]
                         ) -> list[tuple[list[int], Callable[[], object]]]:
        deployed = self.options.deployed
        assert deployed is not None
        records = [self.record(batch.items[i].obj) for i in indexes]
        jobs: list[tuple[list[int], Callable[[], object]]] = []
        offset = 0
        for group in batches(records, deployed.batch_size):
            members = indexes[offset:offset + len(group)]
            offset += len(group)

            def job(group: list[dict] = group) -> object:
                if self._stop.is_set():
                    return None
                limiters["invocations"].acquire()
                limiters["objects"].acquire(len(group))
                if not self._stopping.begin(len(group)):
                    return None
                try:
                    invoke(deployed.client, deployed.target, {"Records": group},  # type: ignore[arg-type]
                           invocation_type="Event")
                except InvokeError as exc:
                    return exc
                return "submitted"
            jobs.append((members, job))
        return jobs

    def _run_jobs(self, batch: _Batch, jobs: list[tuple[list[int], Callable[[], object]]],
                  executor: ThreadPoolExecutor, run: Totals, bar: tqdm) -> None:
        pending: dict[Future[object], list[int]] = {executor.submit(fn): members for members, fn in jobs}
        while pending:
            finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                members = pending.pop(future)
                if future.cancelled():
                    continue
                self._record_result(batch, members, future.result(), run, bar)
            self._stopping.raise_if_forced()
            in_flight = self._stopping.announce()
            if in_flight is not None:
                for future in list(pending):
                    if future.cancel():
                        del pending[future]
                self.say(f"finishing {in_flight} in-flight objects (Ctrl-C again to stop now)")

    def _record_result(self, batch: _Batch, members: list[int], result: object, run: Totals, bar: tqdm) -> None:
        if result is None:
            return  # stopped before it started: not handled, the checkpoint stays before it
        self._stopping.ended(len(members))
        deployed = self.options.deployed is not None
        if deployed:
            run.calls += len(members)
            if isinstance(result, InvokeError):
                run.failed += len(members)
                bar.write(f"failed: an Event invocation of {len(members)} records: {result}", file=sys.stderr)
                outcome, reason = "failed", result.code
            else:
                run.invocations += 1
                run.processed += len(members)
                outcome, reason = "processed", "submitted"
            for i in members:
                run.listed += 1
                batch.done[i] = True
                self._tick(bar, run, batch.items[i].obj, outcome, reason)
            return
        (i,) = members
        outcome, reason = result  # type: ignore[misc]
        obj = batch.items[i].obj
        run.listed += 1
        run.calls += 1
        if outcome == "processed":
            run.processed += 1
        elif outcome == "skipped":
            run.skipped[reason] += 1
        else:
            run.failed += 1
            bar.write(f"failed: {obj.key}: {reason}", file=sys.stderr)
        batch.done[i] = True
        self._tick(bar, run, obj, outcome, reason)

    def _show(self, item: PlanItem, action: str, reason: str) -> None:
        if not self.options.dry_run:
            return
        names = self.settings.result_names
        dests = ", ".join(item.todo or (result_key(o, item.obj.key, names) for o in self.outputs))
        self.echo(f"{action}\t{reason}\t{item.obj.key} -> {dests}")

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

    def _resume_point(self, path: Path | None) -> tuple[str | None, Totals, bool, int | None]:
        if path is None or not self.options.resume:
            return None, Totals(), False, None
        return checkpoint.resume_point(path, self.identity(), say=self.say, unreachable=self._unreachable)

    def _unreachable(self) -> str | None:
        """Why the bucket cannot be listed (one line), or None when it can."""
        try:
            self.client.list_objects(Bucket=self.options.bucket, Prefix=self.options.prefix, MaxKeys=1)
        except (CosServiceError, CosClientError) as exc:
            return describe_cos_error(exc, self.options.endpoint)
        return None

    def _save(self, marker: str | None, totals: Totals, max_calls: int | None, *, complete: bool) -> None:
        path = self.options.checkpoint
        if path is None or self.options.dry_run:
            return
        checkpoint.save(path, {**self.identity(), "source": self.source.description,
                               "outputs": [o.prefix for o in self.outputs]},
                        marker=marker, totals=totals, max_calls=max_calls, complete=complete)
        self._saved = totals.as_dict()

    def _summary(self, run: Totals, earlier: Totals, started: float, resumed: bool, estimate: dict[str, int],
                 stopped: str | None, max_calls: int | None, *, abandoned: int | None = None
                 ) -> dict[str, object]:
        opts = self.options
        summary: dict[str, object] = {"bucket": opts.bucket, "prefix": opts.prefix,
                                      "mode": "dry_run" if opts.dry_run else opts.mode,
                                      "source": self.source.description}
        summary.update(run.as_dict())
        if not opts.deployed:
            summary.pop("invocations")
        if opts.dry_run:
            summary["to_process"] = summary.pop("processed")
            summary["ci_calls"] = summary.pop("calls")
            summary["estimated_output_bytes"] = estimate["bytes"]
        summary["seconds"] = round(time.monotonic() - started, 3)
        summary["resumed"] = resumed
        if resumed:
            summary["totals_with_earlier_runs"] = (earlier + run).as_dict()
        if max_calls is not None:
            summary["max_calls"] = max_calls
            summary["calls_left"] = max(0, max_calls - earlier.calls - run.calls)
        if stopped == "interrupted":
            summary["interrupted"] = True
            summary["finished_in_flight"] = self._stopping.finished_after_stop
            if abandoned is not None:
                summary["abandoned_in_flight"] = abandoned
        elif stopped == "max_objects":
            summary["stopped_after_max_objects"] = True
        elif stopped == "max_calls":
            summary["stopped_after_max_calls"] = True
        return summary


def _take(items: Iterator[PlanItem], n: int) -> list[PlanItem]:
    taken: list[PlanItem] = []
    for item in items:
        taken.append(item)
        if len(taken) >= n:
            break
    return taken
