"""Scheduling a backfill's objects: the rate limits, the thread pool, and which objects are in flight.

The run (runner.py) hands over one batch of planned objects at a time. Objects the plan skips, and every object of
a dry run, are recorded at once; the others become jobs on the pool: one per object in this process, or one per
Invoke request of synthesized upload records with --deployed. A job waits for the rate limiters, then tells
Stopping its call begins (stopping.py), so an object waiting when Ctrl-C comes never starts. Results are recorded
on the run's thread, in the totals and on the screen (report.py), and mark the batch's objects done, so the
checkpoint can cover exactly the handled prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from superres_fn.config import Output

from ..scf.client import InvokeError, invoke
from ..scf.serverless import FunctionSpec
from .options import BackfillOptions, RateLimiter, Totals, batches
from .plan import SCF_INVOKE_MAX_RATE, ListedObject, PlanItem, ci_rate_limit, estimated_output_bytes
from .report import Progress
from .stopping import Stopping

# The batch indexes a job handles, and the job: it returns None when it did not start, else its result.
Job = tuple[list[int], Callable[[], object]]


@dataclass
class Batch:
    items: list[PlanItem]
    done: list[bool]

    def handled_prefix(self) -> int:
        for i, finished in enumerate(self.done):
            if not finished:
                return i
        return len(self.done)


def take(items: Iterator[PlanItem], n: int) -> list[PlanItem]:
    taken: list[PlanItem] = []
    for item in items:
        taken.append(item)
        if len(taken) >= n:
            break
    return taken


def rate_limiters(options: BackfillOptions, spec: FunctionSpec, say: Callable[[str], None]
                  ) -> dict[str, RateLimiter]:
    """"objects": CI calls per second (the region's documented limit unless --rate, and against a stand-in, says
    otherwise; with --deployed, at most what the reserved instances absorb); "invocations": SCF's Invoke limit."""
    limit = ci_rate_limit(options.region)
    rate = options.rate if options.rate is not None else limit
    if rate > limit and not options.endpoint:
        say(f"--rate {rate:g} is above Cloud Infinite's {limit:g} requests/s in {options.region}: using {limit:g}")
        rate = limit
    limiters = {"objects": RateLimiter(rate)}
    if options.deployed:
        limiters["invocations"] = RateLimiter(SCF_INVOKE_MAX_RATE)
        if options.reserved_concurrency_mb:
            instances = max(1, options.reserved_concurrency_mb // max(1, spec.memory_mb))
            absorb = instances / max(0.001, options.seconds_per_image)
            if absorb < rate:
                say(f"reserved concurrency {options.reserved_concurrency_mb} MB = {instances} instances of "
                    f"{spec.memory_mb} MB at ~{options.seconds_per_image:g} s per image: {absorb:.3g} objects/s")
                limiters["objects"] = RateLimiter(absorb)
    return limiters


class Scheduler:
    """Runs batches of planned objects on a thread pool within the rate limits; `shutdown` when the run ends."""

    def __init__(self, options: BackfillOptions, outputs: list[Output], stopping: Stopping,
                 limiters: dict[str, RateLimiter], progress: Progress, *,
                 process: Callable[[ListedObject], tuple[str, str]], record: Callable[[ListedObject], dict],
                 say: Callable[[str], None]) -> None:
        """`process`: one object through the function in this process, returning (outcome, reason); `record`: the
        COS upload record for an object (sent to the deployed function)."""
        self.options = options
        self.outputs = outputs
        self.progress = progress
        self.estimated_bytes = 0  # the dry run's estimate of the results' size
        self._stopping = stopping
        self._stop = stopping.requested
        self._limiters = limiters
        self._process = process
        self._record = record
        self._say = say
        self._executor = ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="backfill")

    def shutdown(self, *, wait: bool) -> None:
        """Cancel the jobs not begun; `wait` for those running (not after a second Ctrl-C)."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def handle(self, batch: Batch, run: Totals, budget: int | None) -> str | None:
        """Handle one batch with at most `budget` calls; returns why the run stops ("interrupted" when Ctrl-C came
        during the batch, whatever else happened; "max_calls"), or None."""
        jobs: list[Job] = []
        stopped: str | None = None
        for i, item in enumerate(batch.items):
            if self._stop.is_set():
                stopped = "interrupted"
                break
            if not item.should_process:
                run.listed += 1
                run.skipped[item.reason] += 1
                batch.done[i] = True
                self.progress.plan_line(item, "skip", item.reason)
                self.progress.tick(run, item.obj, "skipped", item.reason)
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
                self.estimated_bytes += estimated_output_bytes(item.obj, self.outputs)
                batch.done[i] = True
                self.progress.plan_line(item, "process", item.reason)
                self.progress.tick(run, item.obj, "process", item.reason)
                continue
            jobs.append(([i], self._local_job(item)))
        if self.options.deployed and jobs:
            jobs = self._invocation_jobs(batch, [index for indexes, _ in jobs for index in indexes])
        self._run_jobs(batch, jobs, run)
        return "interrupted" if self._stop.is_set() else stopped

    # -- the jobs --------------------------------------------------------------------------------------------------

    def _local_job(self, item: PlanItem) -> Callable[[], object]:
        def job() -> object:
            if self._stop.is_set():
                return None
            self._limiters["objects"].acquire()
            if not self._stopping.begin(1):
                return None
            return self._process(item.obj)
        return job

    def _invocation_jobs(self, batch: Batch, indexes: list[int]) -> list[Job]:
        deployed = self.options.deployed
        assert deployed is not None
        records = [self._record(batch.items[i].obj) for i in indexes]
        jobs: list[Job] = []
        offset = 0
        for group in batches(records, deployed.batch_size):
            members = indexes[offset:offset + len(group)]
            offset += len(group)

            def job(group: list[dict] = group) -> object:
                if self._stop.is_set():
                    return None
                self._limiters["invocations"].acquire()
                self._limiters["objects"].acquire(len(group))
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

    # -- waiting and recording -------------------------------------------------------------------------------------

    def _run_jobs(self, batch: Batch, jobs: list[Job], run: Totals) -> None:
        pending: dict[Future[object], list[int]] = {self._executor.submit(fn): members for members, fn in jobs}
        while pending:
            finished, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                members = pending.pop(future)
                if future.cancelled():
                    continue
                self._record_result(batch, members, future.result(), run)
            self._stopping.raise_if_forced()
            in_flight = self._stopping.announce()
            if in_flight is not None:
                for future in list(pending):
                    if future.cancel():
                        del pending[future]
                self._say(f"finishing {in_flight} in-flight objects (Ctrl-C again to stop now)")

    def _record_result(self, batch: Batch, members: list[int], result: object, run: Totals) -> None:
        if result is None:
            return  # stopped before it started: not handled, the checkpoint stays before it
        self._stopping.ended(len(members))
        if self.options.deployed is not None:
            run.calls += len(members)
            if isinstance(result, InvokeError):
                run.failed += len(members)
                self.progress.failed(f"an Event invocation of {len(members)} records: {result}")
                outcome, reason = "failed", result.code
            else:
                run.invocations += 1
                run.processed += len(members)
                outcome, reason = "processed", "submitted"
            for i in members:
                run.listed += 1
                batch.done[i] = True
                self.progress.tick(run, batch.items[i].obj, outcome, reason)
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
            self.progress.failed(f"{obj.key}: {reason}")
        batch.done[i] = True
        self.progress.tick(run, obj, outcome, reason)

