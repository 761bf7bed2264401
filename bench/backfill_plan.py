"""Backfill planning rate: the diff planner (superres.diffplan.plan) over 100,000 synthetic listed objects and one
listing of the destination prefix, each in a fresh interpreter that reports its own time and peak RSS.

The listings are ListObjects pages as cos-python-sdk-v5 returns them (dicts with Key, Size, ETag,
LastModified), made page by page on demand by a stand-in client, so the input never sits in memory and making
the pages is counted in the planner's time (a conservative figure). Half of the sources have a result, a tenth
of those older than their source (stale). Memory is bounded by the streaming merge: the peak RSS at 100,000
objects is compared with the one at 10,000 (same process shape), and the inventory path (gzip CSV report read,
sorted in runs of superres.inventory.SORT_RUN_OBJECTS, merged) is measured too.
"""

from __future__ import annotations

from .measure import median, progress, run_json_script
from .report import Goal, Row

_GOAL = Goal(">=", 50_000)  # objects/s planned (issue 12)
OBJECTS = 100_000

_SCRIPT = r"""
import json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, "handler")
from superres_fn import load_settings
from superres_fn.config import Output
from superres.backfill.plan import ListedObject, bucket_listing, plan
from superres.backfill.inventory import InventorySource, load_manifest, write_report

N, MODE = {n}, {mode!r}
BUCKET = "photos-1250000000"
T0 = "2026-01-01T00:00:00.000Z"
NEWER, OLDER = "2026-02-01T00:00:00.000Z", "2025-12-01T00:00:00.000Z"

def vm_hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

class PagedClient:
    # ListObjects pages made on demand: sources under uploads/, results for every other one under superres/
    # (RESULT_NAMES=append, the default: uploads/0000002.jpg -> superres/uploads/0000002.jpg.png).
    def list_objects(self, Bucket, Prefix, MaxKeys, Marker=""):
        dest = Prefix.startswith("superres/")
        start = 0
        if Marker:
            start = int(Marker.rsplit("/", 1)[1].split(".")[0]) + (2 if dest else 1)
        step = 2 if dest else 1
        indexes = range(start, N, step)[:MaxKeys]
        contents = [{{"Key": ("superres/" if dest else "") + f"uploads/{{i:07d}}.jpg" + (".png" if dest else ""),
                      "Size": "204800",
                      "ETag": '"0123456789abcdef0123456789abcdef"',
                      "LastModified": (OLDER if i % 20 == 0 else NEWER) if dest else T0,
                      "StorageClass": "STANDARD"}} for i in indexes]
        last = indexes[-1] if len(indexes) else N
        truncated = len(indexes) == MaxKeys and last + step < N
        page = {{"Contents": contents, "IsTruncated": "true" if truncated else "false"}}
        if truncated:
            page["NextMarker"] = contents[-1]["Key"]
        return page

settings = load_settings({{"DEST_PREFIX": "superres/"}})
outputs = [Output("superres/", 2, bucket=BUCKET)]
client = PagedClient()
if MODE == "inventory":
    tmp = tempfile.mkdtemp(prefix="superres-bench-inventory-")
    objects = (ListedObject(f"uploads/{{i:07d}}.jpg", 204800, '"e"', 1767225600.0) for i in range(N))
    manifest = write_report(Path(tmp), bucket=BUCKET, objects=objects, files=4)
    sources = InventorySource(load_manifest(str(manifest)), "uploads/").objects(None)
else:
    sources = bucket_listing(client, BUCKET, "uploads/")
base_kb = vm_hwm_kb()
started = time.perf_counter()
counts = {{}}
for item in plan(sources, [bucket_listing(client, BUCKET, "superres/uploads/")], outputs, settings, bucket=BUCKET,
                 region="ap-guangzhou"):
    counts[item.reason] = counts.get(item.reason, 0) + 1
seconds = time.perf_counter() - started
assert sum(counts.values()) == N, counts
print(json.dumps({{"seconds": seconds, "counts": counts, "peak_rss_mb": vm_hwm_kb() / 1024,
                   "base_rss_mb": base_kb / 1024}}))
"""


def _run(n: int, mode: str = "listing") -> dict:
    return run_json_script(_SCRIPT.format(n=n, mode=mode), timeout_s=600)


def run(quick: bool) -> list[Row]:
    reps = 1 if quick else 3
    progress(f"backfill plan: {reps} x {OBJECTS} objects (listing), fresh interpreters")
    runs = [_run(OBJECTS) for _ in range(reps)]
    rate = median([OBJECTS / r["seconds"] for r in runs])
    peak = median([r["peak_rss_mb"] for r in runs])
    counts = runs[0]["counts"]
    progress("backfill plan: 10,000 objects, for the memory comparison")
    small = _run(10_000)
    progress(f"backfill plan: {OBJECTS} objects from an inventory report")
    inventory = _run(OBJECTS, "inventory")
    return [
        Row("backfill planning rate (diff of listings)", rate, "objects/s", _GOAL,
            f"median of {reps} fresh interpreters, {OBJECTS:,} synthetic listed sources merged with one listing "
            f"of the destination prefix (half present, a tenth of those stale): {counts}; the merge alone (no "
            "HEAD: each result found, 'found', is then read once for its stamp, at COS's HEAD rate); the SDK-shaped "
            "pages are made on demand and their making is counted"),
        Row("backfill planning peak RSS, 100,000 objects", peak, "MB",
            note=f"VmHWM of the planning interpreter (imports alone: {runs[0]['base_rss_mb']:.1f} MB)"),
        Row("backfill planning peak RSS, 10,000 objects", small["peak_rss_mb"], "MB",
            note="same process shape with a tenth of the objects: the streaming merge keeps memory flat"),
        Row("backfill planning rate, inventory report", OBJECTS / inventory["seconds"], "objects/s",
            note=f"{OBJECTS:,} objects from a 4-file gzip CSV report (URL-encoded keys, unsorted): read, sorted "
                 f"(runs of 200,000 in memory, spilled beyond), merged; peak RSS {inventory['peak_rss_mb']:.1f} MB "
                 "(the same interpreter first wrote the synthetic report, holding its 100,000 rows)"),
    ]
