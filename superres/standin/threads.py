"""Blocking work (disk writes and fsyncs, the SR engine, directory scans) off the event loop.

The stand-in hands work to threads several times per request. Starlette's `run_in_threadpool` goes through anyio
(a capacity limiter, cancel scopes, run-variable lookups for every call): profiled under `superres backfill`, the
hand-off was a quarter of the event loop's samples. `in_thread` hands the call straight to a thread pool of the same
size (measured side by side over 7 runs: about 5% less stand-in CPU per backfilled object) with the same guarantee:
a cancelled caller does not move on while its work still runs (anyio's default), so nothing is discarded or
unlocked under a thread that is still writing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

WORKER_THREADS = 40  # anyio's default thread limit, which bounded the stand-in before
_pool = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="superres-standin-io")


async def in_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`func(*args, **kwargs)` on a worker thread; its result or its exception. A cancellation that arrives while
    the call runs is delivered once the call has finished."""
    future = asyncio.get_running_loop().run_in_executor(_pool, functools.partial(func, *args, **kwargs))
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
            break
        except asyncio.CancelledError:
            if future.cancelled():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
