"""What a backfill run tells its user: while it runs, a progress bar on stderr (tqdm), the dry run's plan lines on
stdout, one stderr line per failure and each outcome to `on_outcome`; when it ends, the summary (one JSON object,
printed by `superres backfill` and carried by BackfillInterrupted)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from superres_fn.config import Output
from superres_fn.targets import result_key
from tqdm import tqdm

from .options import BackfillOptions, Totals
from .plan import ListedObject, PlanItem


class Progress:
    """The screen while a run goes on; used from the run's thread only."""

    def __init__(self, options: BackfillOptions, outputs: list[Output], *, total: int | None, already: int,
                 echo: Callable[[str], None], names: str) -> None:
        """`total`: objects to list, when the source knows; `already`: how many of them earlier runs listed;
        `names`: the function's RESULT_NAMES (the dry run names each result)."""
        self.options = options
        self.outputs = outputs
        self.names = names
        self.echo = echo
        self.bar = tqdm(total=total, initial=min(already, total) if total else 0, unit="obj", file=sys.stderr,
                        disable=(not options.progress) if options.progress is not None else None,
                        dynamic_ncols=True, desc="dry run" if options.dry_run else "backfill")

    def plan_line(self, item: PlanItem, action: str, reason: str) -> None:
        """A dry run's line for an object: what would be done, why, and to which destinations."""
        if not self.options.dry_run:
            return
        names = self.names
        dests = ", ".join(item.todo or (result_key(o, item.obj.key, names) for o in self.outputs))
        self.echo(f"{action}\t{reason}\t{item.obj.key} -> {dests}")

    def tick(self, run: Totals, obj: ListedObject, outcome: str, reason: str) -> None:
        self.bar.update(1)
        self.bar.set_postfix(skipped=sum(run.skipped.values()), failed=run.failed, refresh=False)
        if self.options.on_outcome is not None:
            self.options.on_outcome(obj, outcome, reason)

    def failed(self, what: str) -> None:
        self.bar.write(f"failed: {what}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def summarize(options: BackfillOptions, source: str, run: Totals, earlier: Totals, *, started: float, resumed: bool,
            estimated_bytes: int, stopped: str | None, max_calls: int | None, finished_in_flight: int,
            abandoned: int | None = None) -> dict[str, object]:
    """The run's summary: this run's totals (a dry run's as to_process / ci_calls / estimated_output_bytes), the
    totals with earlier runs when resumed, the calls left under a cap, and why it stopped early, if it did.
    `started`: time.monotonic() when the run began; `stopped`: "interrupted", "max_objects", "max_calls" or None."""
    result: dict[str, object] = {"bucket": options.bucket, "prefix": options.prefix,
                                 "mode": "dry_run" if options.dry_run else options.mode, "source": source}
    result.update(run.as_dict())
    if not options.deployed:
        result.pop("invocations")
    if options.dry_run:
        result["to_process"] = result.pop("processed")
        result["ci_calls"] = result.pop("calls")
        result["estimated_output_bytes"] = estimated_bytes
    result["seconds"] = round(time.monotonic() - started, 3)
    result["resumed"] = resumed
    if resumed:
        result["totals_with_earlier_runs"] = (earlier + run).as_dict()
    if max_calls is not None:
        result["max_calls"] = max_calls
        result["calls_left"] = max(0, max_calls - earlier.calls - run.calls)
    if stopped == "interrupted":
        result["interrupted"] = True
        result["finished_in_flight"] = finished_in_flight
        if abandoned is not None:
            result["abandoned_in_flight"] = abandoned
    elif stopped == "max_objects":
        result["stopped_after_max_objects"] = True
    elif stopped == "max_calls":
        result["stopped_after_max_calls"] = True
    return result
