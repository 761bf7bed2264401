"""The COS trigger, locally: each matching upload becomes a real-shaped event, stored in a durable queue
(event_queue.py) before the upload is acknowledged, and invoked asynchronously with SCF's retry policy
(2 retries after an execution error) on a small pool of warm instances."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..standin.events import ObjectCreated
from .container import ContainerOptions, FunctionContainer, InvokeResult
from .event_queue import EventQueue, QueuedEvent
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


@dataclass(frozen=True)
class StopSummary:
    """What `stop` left behind: events kept in the queue for the next start (`interrupted` of them were
    mid-delivery and go out again), and whether draining emptied the queue."""

    kept: int
    interrupted: int
    drained: bool
    path: Path | None


class TriggerDispatcher:
    """`on_object_created` callback for the stand-in: matches serverless.yml's COS triggers, stores each event in
    the durable queue before the upload is acknowledged, and delivers it to warm instances with SCF's retry
    policy: an execution error (exception, timeout, crash) is retried `retries` times `retry_interval_s` apart;
    a failure of the local runtime itself is retried until the event's maximum age. Dropped events are logged."""

    def __init__(
        self,
        spec: FunctionSpec,
        options: ContainerOptions,
        *,
        region: str,
        instances: int = 2,
        retries: int = 2,
        retry_interval_s: float = 1.0,
        queue: EventQueue | None = None,
        log_path: Path | None = None,
        on_log: Callable[[str], None] | None = None,
        start: bool = True,
    ) -> None:
        self.spec = spec
        self.region = region
        self.retries = retries
        self.retry_interval_s = retry_interval_s
        self.queue = queue if queue is not None else EventQueue(None)
        # Bounded: `superres local` may run for days; the full log is in log_path.
        self.deliveries: deque[Delivery] = deque(maxlen=HISTORY)
        self.log_lines: deque[str] = deque(maxlen=HISTORY * 4)
        self._options = options
        self._log_path = log_path
        self._on_log = on_log
        self._cond = threading.Condition()
        self._log_lock = threading.Lock()
        self._stopping = False
        self._interrupted = 0  # deliveries stop() cut off; their events stay queued
        self._containers = [FunctionContainer(spec, options) for _ in range(max(1, instances))]
        self._threads = [threading.Thread(target=self._work, args=(c,), daemon=True, name=f"scf-{i}")
                         for i, c in enumerate(self._containers)]
        if start:
            self.start()

    def start(self) -> None:
        """Start delivering (LocalStack does so once the stand-in answers, so a restart's backlog can run)."""
        for thread in self._threads:
            if not thread.is_alive():
                thread.start()

    def __call__(self, obj: ObjectCreated) -> None:
        if any(t.matches(obj.bucket, obj.event_name, obj.key) for t in self.spec.triggers):
            event = {"Records": [build_cos_event(obj, appid=self._options.appid, region=self.region,
                                                 function_name=self.spec.name)]}
            self.submit(event)

    def submit(self, event: dict, *, request_id: str | None = None) -> str:
        """Queue one asynchronous invocation, durably; its request id (kept across SCF's retries) is returned.
        An event that finds the queue full is dropped and logged, as SCF does."""
        request_id = request_id or str(uuid.uuid4())
        if not self.queue.put(request_id, event):
            self._dropped(request_id, event, "queue_full",
                          f"the trigger queue holds its maximum of {self.queue.max_events} events")
            return request_id
        with self._cond:
            self._cond.notify_all()
        return request_id

    def wait_idle(self, timeout: float = 300.0) -> bool:
        """Block until every queued event was delivered (retries included); False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.queue):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def drain(self, timeout: float, cancel: threading.Event | None = None) -> bool:
        """Keep delivering until the queue is empty (True), `timeout` passes or `cancel` is set (False)."""
        deadline = time.monotonic() + timeout
        while not self.wait_idle(min(0.2, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                return False
        return True

    def stop(self) -> StopSummary:
        """Stop delivering now. Invocations in flight are ended and their events stay queued, like every other
        queued event, for the next start on the same queue file."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + 30
        # Kill until the workers are gone: one may be starting a fresh instance just as we kill.
        while any(t.is_alive() for t in self._threads) and time.monotonic() < deadline:
            for container in self._containers:
                container.kill()
            for thread in self._threads:
                thread.join(timeout=0.1)
        return StopSummary(kept=len(self.queue), interrupted=self._interrupted, drained=False, path=self.queue.path)

    def close(self) -> StopSummary:
        """Stop, end the instances and close the queue (its file keeps what was not delivered)."""
        summary = self.stop()
        for container in self._containers:
            container.close()
        self.queue.close()
        return summary

    def _work(self, container: FunctionContainer) -> None:
        while True:
            item = self._next_due()
            if item is None:
                return
            try:
                result = container.invoke(item.event, request_id=item.request_id)
            except Exception:  # noqa: BLE001 - the local runtime failed, not the function
                log.exception("trigger: could not run the function for %s; retrying", item.request_id)
                # SCF retries its own (status 500) errors every interval until the event's maximum age.
                self.queue.retry(item, attempts=item.attempts, delay_s=self.retry_interval_s)
                continue
            with self._cond:
                interrupted = self._stopping and not result.ok
                self._interrupted += interrupted
            if interrupted:
                self.queue.release(item)  # ended by stop(): delivered again on the next start
                continue
            self._record(Delivery(item.event, item.attempts, result))
            if result.ok:
                self.queue.done(item)
            elif item.attempts < self.retries:
                self.queue.retry(item, attempts=item.attempts + 1, delay_s=self.retry_interval_s)
            else:
                self.queue.done(item)
                self._dropped(item.request_id, item.event, "retries_exhausted",
                              f"still failing after {self.retries} retries: {_error_text(result)}")
            with self._cond:
                self._cond.notify_all()

    def _next_due(self) -> QueuedEvent | None:
        """Claim the next event whose time has come, waiting for one; None once stopping."""
        with self._cond:
            while not self._stopping:
                for expired in self.queue.expire():
                    self._dropped(expired.request_id, expired.event, "max_event_age",
                                  f"older than the maximum event age ({self.queue.max_event_age_s:g} s)")
                item = self.queue.claim()
                if item is not None:
                    return item
                due_in = self.queue.next_due_in()
                # Also wake now and then to expire old events that wait for a retry.
                self._cond.wait(min(due_in if due_in is not None else 5.0, 5.0))
            return None

    def _record(self, delivery: Delivery) -> None:
        result = delivery.result
        self.deliveries.append(delivery)
        self._emit(invocation_lines(result, delivery.attempt))
        if not result.ok:
            log.warning("invocation %s failed (attempt %d): %s", result.request_id, delivery.attempt, result.error)

    def _dropped(self, request_id: str, event: dict, reason: str, detail: str) -> None:
        """An event SCF would discard (or send to a dead-letter queue): never silently."""
        keys = _event_keys(event)
        log.warning("trigger: dropped event %s (%s): %s; keys: %s", request_id, reason, detail,
                    ", ".join(keys) or "-")
        self._emit([json.dumps({"logger": "superres.scf", "request_id": request_id, "dropped": reason,
                                "detail": detail, "keys": keys})])

    def _emit(self, lines: list[str]) -> None:
        with self._log_lock:
            self.log_lines.extend(lines)
        write_function_log(lines, self._log_path, self._on_log)


_FILE_LOCK = threading.Lock()  # the trigger and the local SCF API may append to the same function log


def invocation_lines(result: InvokeResult, attempt: int) -> list[str]:
    """What every local invocation logs, whatever started it (trigger, sync or async Invoke): the function's
    own lines, then one summary line."""
    summary = _json_line({"logger": "superres.scf", "request_id": result.request_id, "attempt": attempt,
                          "ok": result.ok, "error": result.error, "duration_ms": round(result.duration_ms, 1),
                          "memory_bytes": result.memory_bytes})
    return [*_json_lines(result.logs, result.request_id), summary]


def _json_lines(logs: Sequence[str], request_id: str) -> list[str]:
    """The function's output as JSON lines only: its own JSON lines as they are; any other text (a traceback the
    runtime printed, a print()) grouped, run by run, into one {"logger": "superres.scf.output", "text": ...} line."""
    lines: list[str] = []
    text: list[str] = []

    def flush() -> None:
        if text:
            lines.append(_json_line({"logger": "superres.scf.output", "request_id": request_id,
                                     "text": "\n".join(text)}))
            text.clear()

    for line in logs:
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                is_object = isinstance(json.loads(stripped), dict)
            except (ValueError, RecursionError):
                is_object = False
            if is_object:
                flush()
                lines.append(stripped)
                continue
        if stripped:
            text.append(line)
    flush()
    return lines


def _json_line(value: dict[str, object]) -> str:
    """One compact JSON line, as the function's own (orjson) lines are written."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def write_function_log(lines: list[str], path: Path | None, on_log: Callable[[str], None] | None) -> None:
    """Append `lines` to the function log file (DATA/function-log.jsonl) and hand each to `on_log`."""
    if path is not None:
        with _FILE_LOCK, path.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
    if on_log is not None:
        for line in lines:
            on_log(line)


def _event_keys(event: dict) -> list[str]:
    """The object keys an event names (`/appid/bucket/key`), for log lines about it."""
    records = event.get("Records") if isinstance(event, dict) else None
    keys = []
    for record in records if isinstance(records, list) else []:
        try:
            keys.append(str(record["cos"]["cosObject"]["key"]))
        except (KeyError, TypeError):
            continue
    return keys


def _error_text(result: InvokeResult) -> str:
    error = result.error or {}
    return f"{error.get('errorType', 'error')}: {error.get('message') or error.get('errorMessage', '')}"
