"""Find the backfill's work: a streaming merge of sorted listings.

The sources (a bucket listing, a COS Inventory report sorted by key, or a reconcile report) and one listing of
each destination prefix arrive sorted by key (COS lists in UTF-8 byte order, which is Python's str order). A
source's result for output `o` is the function's own name for it (superres_fn.targets.result_key, RESULT_NAMES);
one pass over all of them pairs every source with its results. Result names need not sort like their sources'
keys ('a.jpg-2.jpg.png' lists before 'a.jpg.png'; under `replace` cat.jpg and cat.png share 'cat.png'), so each
destination's cursor remembers the results it passed over, at most _LOOKBACK of them per output: a forgotten one
only makes its source a candidate, which the function then finds done (never a skip of missing work).

Listings carry no metadata, so they cannot say what a result was made from, and time cannot stand in for that (a
first upload's result may be published after its re-upload landed). A source with a result missing, or one not
written strictly after it, goes to the function, which decides by content; a source whose results all exist comes
out as "confirm", and confirm.confirmed reads those results' stamps before calling it done.

The function's own filters (suffix, size, recursion guard, unsafe keys) come from `superres_fn.decide`, called
without `exists`, so the planner and the function cannot disagree on what is an image to process.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import NamedTuple

from superres_fn import CosRecord, Settings, decide
from superres_fn.config import Output
from superres_fn.targets import result_key

BACKFILL_EVENT_NAME = "cos:ObjectCreated:Put"
_EPOCH = datetime.fromtimestamp(0, timezone.utc)

# Documented rate limits (shared/spec/tencent-platform-facts.md): SCF's Invoke API 100 requests/s by default
# (doc 583/17243); CI persistent processing 100/s in mainland public regions, 50/s in finance and overseas
# regions (doc 460/36620).
SCF_INVOKE_MAX_RATE = 100.0
CI_RATE_MAINLAND = 100.0
CI_RATE_FINANCE_OR_OVERSEAS = 50.0
# Results remembered per output after the cursor passed them (see the module's docstring): bounded memory.
_LOOKBACK = 4096
_MAINLAND_REGIONS = frozenset({"ap-beijing", "ap-shanghai", "ap-guangzhou", "ap-chengdu", "ap-chongqing",
                               "ap-nanjing", "ap-shenzhen", "ap-tianjin", "ap-beijing-1", "ap-shenzhen-1"})

# Rough size of a super-resolved result relative to its source, per source pixel-area scaled by magnify^2:
# the result is PNG (see README, "Output format"), about 8x a photo's JPEG/WebP bytes at the same size, and
# about the size of a PNG; BMP is stored raw, about twice a PNG of the same photo.
_OUTPUT_BYTES_PER_SOURCE_BYTE = {"jpg": 8.0, "jpeg": 8.0, "webp": 8.0, "png": 1.0, "bmp": 0.5}


def ci_rate_limit(region: str) -> float:
    """CI persistent-processing requests/s for a region: 100 in mainland public regions, 50 elsewhere."""
    if region in _MAINLAND_REGIONS and "fsi" not in region:
        return CI_RATE_MAINLAND
    return CI_RATE_FINANCE_OR_OVERSEAS


class ListedObject(NamedTuple):
    key: str
    size: int
    etag: str
    last_modified: float | None = None  # Unix seconds; None when the source does not say


def outputs_for(settings: Settings, bucket: str) -> list[Output]:
    """The function's outputs (its OUTPUTS setting, else DEST_PREFIX at MAGNIFY), each in its bucket (the output's,
    DEST_BUCKET, else `bucket`): the one type the function plans its targets from (superres_fn.config.Output)."""
    return [output._replace(bucket=output.bucket or bucket) for output in settings.outputs]


class PlanItem(NamedTuple):
    obj: ListedObject
    action: str  # "process", "skip", or "confirm" (results exist: confirm.confirmed reads them, then skip or process)
    reason: str  # skip: the function's reason or "already_done"; process: "missing" or "stale"; confirm: "found"
    todo: tuple[str, ...] = ()  # process: destination keys missing or stale; confirm: every output's result key

    @property
    def should_process(self) -> bool:
        return self.action == "process"


def parse_last_modified(value: object) -> float | None:
    """COS's ISO 8601 LastModified ('2026-12-02T02:08:34.000Z'), an HTTP date, or Unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def is_fresh(result_modified: float | None, source_modified: float | None) -> bool:
    """Not a candidate: the result was written strictly after the source, in whole seconds of COS's clock (a result
    of the same second may predate a re-upload within that second, so it is left to the function to decide)."""
    if result_modified is None or source_modified is None:
        return False
    return int(result_modified) > int(source_modified)


class _Cursor:
    """One destination listing, read lazily in key order, with the last _LOOKBACK results it passed over."""

    __slots__ = ("_it", "_key", "_modified", "_passed")

    def __init__(self, listing: Iterable[ListedObject]) -> None:
        self._it = iter(listing)
        self._key: str | None = ""
        self._modified: float | None = None
        self._passed: OrderedDict[str, float | None] = OrderedDict()
        self._next()

    def _next(self) -> None:
        for obj in self._it:
            self._key, self._modified = obj.key, obj.last_modified
            return
        self._key = None

    def find(self, key: str) -> tuple[bool, float | None]:
        """(found, LastModified) of the result named `key`."""
        if key in self._passed:
            return True, self._passed[key]
        while self._key is not None and self._key < key:
            self._passed[self._key] = self._modified
            if len(self._passed) > _LOOKBACK:
                self._passed.popitem(last=False)  # the oldest (O(1); a dict's first key is not, after deletions)
            self._next()
        if self._key == key:
            return True, self._modified
        return False, None


def result_listing(out: Output, prefix: str, after: str | None, names: str) -> tuple[str, str | None]:
    """What to list of `out`'s results for the sources under `prefix` after `after`: a prefix and a start marker
    that hold every such source's result (result_key). `replace` shortens names, so it lists the whole folder."""
    if names == "replace":
        return out.prefix + prefix.rpartition("/")[0] + ("/" if "/" in prefix else ""), None
    return out.prefix + prefix, None if after is None else out.prefix + after


def plan(sources: Iterable[ListedObject], destinations: Sequence[Iterable[ListedObject]], outputs: Sequence[Output],
         settings: Settings, *, bucket: str, region: str) -> Iterator[PlanItem]:
    """One PlanItem per source, in source order. `destinations[i]` lists `outputs[i].prefix` (sorted)."""
    cursors = [_Cursor(listing) for listing in destinations]
    if len(cursors) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs but {len(cursors)} destination listings")
    names = settings.result_names
    name, _, appid = bucket.rpartition("-")
    record = _record_factory(bucket, name, appid, region)
    last = None
    for obj in sources:
        if last is not None and obj.key <= last:
            raise ValueError(f"sources are not sorted by key: {obj.key!r} after {last!r}")
        last = obj.key
        decision = decide(record(obj), settings)
        if not decision.should_process:
            yield PlanItem(obj, "skip", decision.reason)
            continue
        results = tuple(result_key(out, obj.key, names) for out in outputs)
        todo: list[str] = []
        stale = False
        for cursor, name in zip(cursors, results, strict=True):
            found, modified = cursor.find(name)
            if found and is_fresh(modified, obj.last_modified):
                continue
            stale = stale or found
            todo.append(name)
        if todo:
            yield PlanItem(obj, "process", "stale" if stale else "missing", tuple(todo))
        else:  # every result exists and is newer: what it was made from is read by confirm.confirmed
            yield PlanItem(obj, "confirm", "found", results)


def _record_factory(bucket: str, name: str, appid: str, region: str) -> Callable[[ListedObject], CosRecord]:
    def record(obj: ListedObject) -> CosRecord:
        return CosRecord(BACKFILL_EVENT_NAME, _EPOCH, bucket, name, appid, region, obj.key, obj.key, obj.size,
                         obj.etag or None, None, None)
    return record


def estimated_output_bytes(obj: ListedObject, outputs: Sequence[Output]) -> int:
    """A rough estimate of the bytes the results of one source will take (see _OUTPUT_BYTES_PER_SOURCE_BYTE)."""
    suffix = obj.key.rpartition(".")[2].lower()
    factor = _OUTPUT_BYTES_PER_SOURCE_BYTE.get(suffix, 4.0)
    return int(sum(obj.size * factor * out.magnify ** 2 for out in outputs))


def objects_from_contents(contents: object) -> list[ListedObject]:
    """ListObjects' Contents (a list, or a dict for one entry, as cos-python-sdk-v5 returns it)."""
    if not contents:
        return []
    items = [contents] if isinstance(contents, Mapping) else contents
    return [ListedObject(c["Key"], int(c.get("Size") or 0), c.get("ETag") or "",  # type: ignore[index, union-attr]
                         parse_last_modified(c.get("LastModified")))  # type: ignore[union-attr]
            for c in items]  # type: ignore[union-attr]


def bucket_listing(client: object, bucket: str, prefix: str, *, after: str | None = None, page_size: int = 1000,
                   on_page: Callable[[int], None] | None = None) -> Iterator[ListedObject]:
    """Every object under `prefix` with a key after `after`, in key order, one ListObjects page at a time."""
    marker = after or ""
    while True:
        kwargs: dict[str, object] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if marker:
            kwargs["Marker"] = marker
        page = client.list_objects(**kwargs)  # type: ignore[attr-defined]
        objects = objects_from_contents(page.get("Contents"))
        if on_page is not None:
            on_page(len(objects))
        yield from objects
        if str(page.get("IsTruncated", "false")).lower() != "true":
            return
        marker = page.get("NextMarker") or (objects[-1].key if objects else "")
        if not marker:
            raise ValueError(f"the listing of {bucket}/{prefix} is truncated but names no NextMarker")
