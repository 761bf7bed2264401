"""Results the listings show are read before they count as done: decided by content, as the function decides.

A listing says a result exists and when COS wrote it, not what it was made from. "Written after the source" is not
"made from the source": a first upload's result published while a re-upload was landing (its claim holder was
slow, the re-upload's event was lost) is newer than the source and made from the old bytes. So for every source
whose results all exist, the planner asks for a look (`PlanItem.action == "confirm"`), and this stage HEADs those
results, a few at a time and in source order, and applies the function's own rule (superres_fn.targets.is_current:
stamped with the source's version and the output's rule; an unstamped result from before provenance, newer than
the source). Costs one HEAD per existing result and no CI call; a result gone since the listing is missing.

find_work is the whole of it, listings to confirmed items: backfill and reconcile both call it, so they cannot
find different work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from qcloud_cos.cos_exception import CosServiceError
from superres_fn import Settings
from superres_fn.config import Output
from superres_fn.gateway import ObjectState, object_state
from superres_fn.targets import Target, is_current, made_from_another, meta_of, source_folder, version_of

from .plan import ListedObject, PlanItem, bucket_listing, plan, result_listing

CONFIRM_THREADS = 16  # HEADs in flight: about 500/s against COS at 30 ms each
_WINDOW = 256  # sources read ahead of the one being yielded (their items wait in order)


def find_work(client: object, sources: Iterable[ListedObject], outputs: Sequence[Output], settings: Settings, *,
              bucket: str, region: str, prefix: str, after: str | None = None,
              page_size: int = 1000) -> Iterator[PlanItem]:
    """The sources' work as backfill and reconcile both find it: each output's results listed (result_listing),
    merged with the sources (plan), and the results found read for their stamps (confirmed)."""
    destinations = []
    for out in outputs:
        where, marker = result_listing(out, prefix, after, settings.result_names)
        destinations.append(bucket_listing(client, out.bucket, where, after=marker, page_size=page_size))
    return confirmed(plan(sources, destinations, outputs, settings, bucket=bucket, region=region), client, outputs,
                     bucket)


def confirmed(items: Iterable[PlanItem], client: object, outputs: Sequence[Output], bucket: str) -> Iterator[PlanItem]:
    """`items` (sources in `bucket`) in the same order, each "confirm" item resolved as the function would decide
    it: "skip already_done", "skip result_name_taken" (a shared name holds another upload's result), or "process"
    ("stale", or "missing" when the results went away since the listing)."""
    pending: deque[tuple[PlanItem, list[Future[ObjectState | None]] | None]] = deque()
    pool = ThreadPoolExecutor(max_workers=CONFIRM_THREADS, thread_name_prefix="superres-confirm")
    try:
        for item in items:
            looks = None
            if item.action == "confirm":
                looks = [pool.submit(_head, client, out.bucket, name)
                         for out, name in zip(outputs, item.todo, strict=True)]
            pending.append((item, looks))
            if len(pending) >= _WINDOW:
                yield _resolve(*pending.popleft(), outputs, bucket)
        while pending:
            yield _resolve(*pending.popleft(), outputs, bucket)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _resolve(item: PlanItem, looks: list[Future[ObjectState | None]] | None, outputs: Sequence[Output],
             bucket: str) -> PlanItem:
    if looks is None:
        return item
    modified = item.obj.last_modified
    source = ObjectState(int(modified) if modified is not None else None, item.obj.size, item.obj.etag)
    version = version_of(item.obj.etag) or ""
    states = [look.result() for look in looks]
    outdated = [(name, state) for i, (out, name, state) in enumerate(zip(outputs, item.todo, states, strict=True))
                if not is_current(state, Target(i, out, out.bucket or "", name), version, source)]
    if not outdated:
        return item._replace(action="skip", reason="already_done", todo=())
    upload = source_folder(bucket, item.obj.key)
    if any(made_from_another(meta_of(state), upload) for _, state in outdated):
        return item._replace(action="skip", reason="result_name_taken", todo=())
    missing = all(state is None for _, state in outdated)
    return item._replace(action="process", reason="missing" if missing else "stale",
                         todo=tuple(name for name, _ in outdated))


def _head(client: object, bucket: str, key: str) -> ObjectState | None:
    try:
        return object_state(client.head_object(Bucket=bucket, Key=key))  # type: ignore[attr-defined]
    except CosServiceError as exc:
        if exc.get_status_code() == 404:
            return None
        raise
