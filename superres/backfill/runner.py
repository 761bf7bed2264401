"""Backfill: super-resolve the images already in a bucket, with the function's own rules and code path.

Finding the work (plan.py): the sources (a listing of the bucket, a COS Inventory report, or a
`superres reconcile` report), sorted by key, are merged with one listing of each destination prefix, and each
result found is read for its stamp (confirm.py). A source is work when a result is missing or not made from the
source's current version by the current rule.

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

Here: the run's flow (batches, checkpoint, summary) and the function's path for one object. scheduler.py runs a
batch's objects (rate limits, the pool, in-flight bookkeeping); report.py is what the user sees.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError
from superres_fn import CosGateway, Invocation, Settings, process_event
from superres_fn.config import Output

from ..scf.serverless import FunctionSpec
from ..scf.trigger import build_cos_event
from ..standin.events import ObjectCreated
from . import checkpoint
from .confirm import find_work
from .options import (
    BackfillError,
    BackfillInterrupted,
    BackfillOptions,
    ListingSource,
    RateLimiter,
    Source,
    Totals,
    describe_cos_error,
)
from .plan import BACKFILL_EVENT_NAME, ListedObject, PlanItem, outputs_for
from .report import Progress, summarize
from .scheduler import Batch, Scheduler, rate_limiters, take
from .stopping import Stopping


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
        return find_work(self.client, self.source.objects(after), self.outputs, self.settings, bucket=opts.bucket,
                         region=opts.region, prefix=opts.prefix, after=after, page_size=opts.page_size)

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
        lines = process_event({"Records": [self.record(obj)]}, context, invocation).lines
        self._write_log(lines)
        line = lines[-1] if lines else {}
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
        stopped: str | None = None
        progress = Progress(opts, self.outputs, total=self.source.total(), already=earlier.listed, echo=self.echo,
                            names=self.settings.result_names)
        scheduler = Scheduler(opts, self.outputs, self._stopping, self._limiters(), progress, process=self.process,
                              record=self.record, say=self.say)
        previous_handler = self._stopping.install()
        batch: Batch | None = None
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
                    batch = Batch(take(items, size), [])
                if not batch.items:
                    break
                batch.done = [False] * len(batch.items)
                budget = None if max_calls is None else max(0, max_calls - earlier.calls - run.calls)
                stopped = scheduler.handle(batch, run, budget)
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
            scheduler.shutdown(wait=False)
            progress.close()
            if batch is not None:
                marker = self._advance(batch, marker, earlier, run, max_calls)
            self._save(marker, earlier + run, max_calls, complete=False)
            raise BackfillInterrupted(self._summary(run, earlier, started, resumed, scheduler, "interrupted",
                                                    max_calls, abandoned=abandoned), forced=True) from None
        except (OSError, ValueError) as exc:
            raise BackfillError(f"the backfill stopped: {exc}") from exc
        except (CosServiceError, CosClientError) as exc:
            raise BackfillError(f"the backfill stopped: {describe_cos_error(exc, opts.endpoint)}") from exc
        finally:
            self._stopping.restore(previous_handler)
            # After a second Ctrl-C nothing waits, not even a job asleep in the rate limiter (it will not begin).
            scheduler.shutdown(wait=not (forced or self._stopping.forced.is_set()))
            progress.close()
        summary = self._summary(run, earlier, started, resumed, scheduler, stopped, max_calls)
        if stopped == "interrupted":
            raise BackfillInterrupted(summary)
        return summary

    def _advance(self, batch: Batch, marker: str | None, earlier: Totals, run: Totals,
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
        return rate_limiters(self.options, self.spec, self.say)

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

    # -- the summary -----------------------------------------------------------------------------------------

    def _summary(self, run: Totals, earlier: Totals, started: float, resumed: bool, scheduler: Scheduler,
                 stopped: str | None, max_calls: int | None, *, abandoned: int | None = None) -> dict[str, object]:
        return summarize(self.options, self.source.description, run, earlier, started=started, resumed=resumed,
                         estimated_bytes=scheduler.estimated_bytes, stopped=stopped, max_calls=max_calls,
                         finished_in_flight=self._stopping.finished_after_stop, abandoned=abandoned)
