"""The COS trigger, locally: each matching upload becomes a real-shaped event, invoked asynchronously
with SCF's retry policy (2 retries after an execution error), on a small pool of warm instances."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..standin.events import ObjectCreated
from .container import ContainerOptions, FunctionContainer, InvokeResult
from .serverless import FunctionSpec

log = logging.getLogger("superres.scf")

HISTORY = 20_000  # deliveries kept in memory

# Short region codes that appear in `cosBucket.region` of real events.
_SHORT_REGIONS = {"ap-guangzhou": "gz", "ap-shanghai": "sh", "ap-beijing": "bj", "ap-chengdu": "cd",
                  "ap-chongqing": "cq", "ap-hongkong": "hk", "ap-nanjing": "nj"}


def build_cos_event(obj: ObjectCreated, *, appid: str, region: str, function_name: str = "cos-superres") -> dict:
    """One COS event record in the shape real SCF deliveries have (2022 captures: cosRegion/s3Region)."""
    name = obj.bucket.removesuffix(f"-{appid}")
    meta = {"Content-Type": obj.content_type, "ETag": obj.etag, "x-cos-request-id": obj.request_id,
            "x-cos-storage-class": "Standard", **obj.meta}
    return {
        "cos": {
            "cosSchemaVersion": "1.0",
            "cosNotificationId": "unkown",
            "cosBucket": {"appid": appid, "name": name, "region": _SHORT_REGIONS.get(region, region),
                          "cosRegion": region, "s3Region": region},
            "cosObject": {
                "key": f"/{appid}/{name}/{obj.key}",
                "url": f"http://{obj.bucket}.cos.{region}.myqcloud.com/{quote(obj.key.encode(), safe='/-_.~')}",
                "meta": meta,
                "size": obj.size,
                "vid": "",
            },
        },
        "event": {
            "eventName": obj.event_name,
            "eventVersion": "1.0",
            "eventSource": "qcs::cos",
            "eventTime": int(time.time()),
            "eventQueue": f"qcs:0:scf:{region}:appid/{appid}:default.{function_name}.$DEFAULT",
            "requestParameters": {"requestSourceIP": obj.source_ip,
                                  "requestHeaders": {"Authorization": obj.authorization}},
            "reservedInfo": "",
            "reqid": 0,
        },
    }


@dataclass(frozen=True)
class Delivery:
    """One attempt at delivering an event: what SCF's invocation log would show."""

    event: dict
    attempt: int  # 0 = first delivery, 1..retries = SCF's retries
    result: InvokeResult


class TriggerDispatcher:
    """`on_object_created` callback for the stand-in: matches serverless.yml's COS triggers and invokes."""

    def __init__(
        self,
        spec: FunctionSpec,
        options: ContainerOptions,
        *,
        region: str,
        instances: int = 2,
        retries: int = 2,
        retry_interval_s: float = 1.0,
        log_path: Path | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.region = region
        self.retries = retries
        self.retry_interval_s = retry_interval_s
        # Bounded: `superres local` may run for days; the full log is in log_path.
        self.deliveries: deque[Delivery] = deque(maxlen=HISTORY)
        self.log_lines: deque[str] = deque(maxlen=HISTORY * 4)
        self._options = options
        self._log_path = log_path
        self._on_log = on_log
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, dict, int, str]] = []  # (not_before, seq, event, attempt, request id)
        self._seq = itertools.count()
        self._outstanding = 0
        self._closed = False
        self._containers = [FunctionContainer(spec, options) for _ in range(max(1, instances))]
        self._threads = [threading.Thread(target=self._work, args=(c,), daemon=True, name=f"scf-{i}")
                         for i, c in enumerate(self._containers)]
        for thread in self._threads:
            thread.start()

    def __call__(self, obj: ObjectCreated) -> None:
        if any(t.matches(obj.bucket, obj.event_name, obj.key) for t in self.spec.triggers):
            event = {"Records": [build_cos_event(obj, appid=self._options.appid, region=self.region,
                                                 function_name=self.spec.name)]}
            self.submit(event)

    def submit(self, event: dict, *, request_id: str | None = None) -> str:
        """Queue one asynchronous invocation; its request id (kept across SCF's retries) is returned."""
        request_id = request_id or str(uuid.uuid4())
        with self._cond:
            if not self._closed:
                self._outstanding += 1
                self._schedule(0.0, event, 0, request_id)
        return request_id

    def _schedule(self, delay_s: float, event: dict, attempt: int, request_id: str) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), event, attempt, request_id))
        self._cond.notify_all()

    def wait_idle(self, timeout: float = 300.0) -> bool:
        """Block until every event was delivered (retries included); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=30)
        for container in self._containers:
            container.close()

    def _work(self, container: FunctionContainer) -> None:
        while True:
            with self._cond:
                item = self._next_due()
                if item is None:
                    return
            _, _, event, attempt, request_id = item
            result = container.invoke(event, request_id=request_id)
            self._record(Delivery(event, attempt, result))
            with self._cond:
                if not result.ok and attempt < self.retries and not self._closed:
                    self._schedule(self.retry_interval_s, event, attempt + 1, request_id)
                else:
                    self._outstanding -= 1
                self._cond.notify_all()

    def _next_due(self) -> tuple[float, int, dict, int, str] | None:
        """Pop the next event whose time has come, waiting for one; None once closed."""
        while not self._closed:
            if self._heap:
                wait = self._heap[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._heap)
                self._cond.wait(wait)
            else:
                self._cond.wait()
        return None

    def _record(self, delivery: Delivery) -> None:
        result = delivery.result
        summary = json.dumps({"logger": "superres.scf", "request_id": result.request_id, "attempt": delivery.attempt,
                              "ok": result.ok, "error": result.error, "duration_ms": round(result.duration_ms, 1),
                              "memory_bytes": result.memory_bytes})
        lines = [*result.logs, summary]
        with self._cond:
            self.deliveries.append(delivery)
            self.log_lines.extend(lines)
            if self._log_path is not None:
                with self._log_path.open("a", encoding="utf-8") as fh:
                    fh.write("\n".join(lines) + "\n")
        if self._on_log is not None:
            for line in lines:
                self._on_log(line)
        if not result.ok:
            log.warning("invocation %s failed (attempt %d): %s", result.request_id, delivery.attempt, result.error)
