"""Backfill: super-resolve what is already in a bucket, through the function's own path.

- plan.py: the work, found by merging sorted sources with one listing per output (no HEAD of a source);
- confirm.py: each result the listings found, read once for what it was made from (the function's rule);
  find_work, the listings -> plan -> confirm pipeline that backfill and reconcile share;
- inventory.py: COS Inventory reports as sources;
- reconcile.py: the reconcile report (missing or stale results), written by `superres reconcile`, read as sources;
- options.py: what a run is told and keeps (options, totals, rate limits, Invoke batches);
- runner.py: the run (Backfill): batches, the checkpoint after each, and one object through the function's path
  (superres_fn.process_event in this process, or a COS upload record for the deployed function);
- scheduler.py: a batch's objects on the thread pool, within the rate limits, with in-flight bookkeeping;
- report.py: what the user sees (progress bar, plan and failure lines) and the summary;
- stopping.py: Ctrl-C; checkpoint.py: what a run leaves to resume from.
"""

from __future__ import annotations

from .options import (
    BackfillError,
    BackfillInterrupted,
    BackfillOptions,
    Deployed,
    ListingSource,
    RateLimiter,
    Source,
    Totals,
    batches,
    cos_client,
    default_checkpoint,
    describe_cos_error,
    function_settings,
)
from .plan import BACKFILL_EVENT_NAME, SCF_INVOKE_MAX_RATE, ListedObject
from .runner import Backfill

__all__ = [
    "BACKFILL_EVENT_NAME", "Backfill", "BackfillError", "BackfillInterrupted", "BackfillOptions", "Deployed",
    "ListedObject", "ListingSource", "RateLimiter", "SCF_INVOKE_MAX_RATE", "Source", "Totals", "batches",
    "cos_client", "default_checkpoint", "describe_cos_error", "function_settings",
]
