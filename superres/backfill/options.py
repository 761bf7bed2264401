"""What a backfill run is told and keeps: options, totals, sources, rate limits, batches for SCF Invoke."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosServiceError
from superres_fn import Endpoint, Settings, cos_config, load_settings

from ..errors import CREDENTIAL_CODES
from ..scf.client import ASYNC_EVENT_MAX_BYTES, Target, encode_event
from ..scf.serverless import FunctionSpec
from .plan import ListedObject, bucket_listing

DEFAULT_SECONDS_PER_IMAGE = 3.0


class BackfillError(RuntimeError):
    """A checkpoint that belongs to another run, an unreadable checkpoint, or a listing that failed."""


class BackfillInterrupted(Exception):
    """Ctrl-C: the summary so far; the checkpoint covers every handled object. `forced`: a second Ctrl-C."""

    def __init__(self, summary: dict[str, object], *, forced: bool = False) -> None:
        super().__init__("interrupted")
        self.summary = summary
        self.forced = forced


class Source(Protocol):
    description: str

    def objects(self, after: str | None) -> Iterator[ListedObject]: ...

    def total(self) -> int | None: ...


@dataclass
class ListingSource:
    """ListObjects over the bucket and prefix (COS lists in key order). The total is unknown until the end."""

    client: object
    bucket: str
    prefix: str
    page_size: int = 1000
    description: str = "listing"

    def objects(self, after: str | None) -> Iterator[ListedObject]:
        return bucket_listing(self.client, self.bucket, self.prefix, after=after, page_size=self.page_size)

    def total(self) -> int | None:
        return None


@dataclass
class Totals:
    listed: int = 0
    processed: int = 0  # handled by the function in-process, or handed to the deployed function
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    invocations: int = 0
    calls: int = 0  # CI requests made (or, with --deployed, records sent: an upper bound)

    def as_dict(self) -> dict[str, object]:
        return {"listed": self.listed, "processed": self.processed, "skipped": dict(sorted(self.skipped.items())),
                "failed": self.failed, "invocations": self.invocations, "calls": self.calls}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Totals:
        def num(name: str) -> int:
            return int(data.get(name) or 0)  # type: ignore[call-overload]
        return cls(num("listed"), num("processed"), Counter(data.get("skipped") or {}),  # type: ignore[arg-type]
                   num("failed"), num("invocations"), num("calls"))

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.listed + other.listed, self.processed + other.processed, self.skipped + other.skipped,
                      self.failed + other.failed, self.invocations + other.invocations, self.calls + other.calls)


@dataclass(frozen=True)
class Deployed:
    client: object  # tencentcloud ScfClient
    target: Target
    batch_size: int = 10


@dataclass
class BackfillOptions:
    bucket: str
    prefix: str = ""
    region: str = "ap-guangzhou"
    endpoint: str | None = None  # a stand-in's URL; None for the real COS (part of the checkpoint's identity)
    concurrency: int = 8
    rate: float | None = None  # objects (CI calls) per second; None: the documented CI limit of the region
    page_size: int = 1000  # objects per batch (and per listing page); the checkpoint advances per batch
    checkpoint: Path | None = None
    resume: bool = True
    dry_run: bool = False
    max_objects: int | None = None  # stop after this many objects (a chunk of work; resume continues)
    max_calls: int | None = None  # hard cap on CI calls over all runs of this checkpoint
    deployed: Deployed | None = None
    reserved_concurrency_mb: int | None = None  # --deployed: the function's reserved concurrency
    seconds_per_image: float = DEFAULT_SECONDS_PER_IMAGE  # --deployed: to size the rate to the reserved instances
    progress: bool | None = None  # None: only on a terminal
    log_path: Path | None = None  # the function's JSON log lines (in-process mode)
    on_outcome: Callable[[ListedObject, str, str], None] | None = None  # (object, outcome, reason), main thread
    source: Source | None = None  # default: a ListingSource over bucket/prefix

    @property
    def mode(self) -> str:
        return "deployed" if self.deployed else "local"


class RateLimiter:
    """Token bucket: at most `rate` acquisitions per second on average, bursts of `burst`."""

    def __init__(self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst = rate, max(1.0, burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, n: int = 1) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n  # reserve now; a negative balance is the wait owed
            wait_s = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait_s > 0:
            self._sleep(wait_s)


def function_settings(spec: FunctionSpec, *, region: str, endpoint: str | None) -> Settings:
    """Settings exactly as the deployed function loads them from serverless.yml, plus where COS is."""
    env = dict(spec.environment)
    env["TENCENTCLOUD_REGION"] = region
    if endpoint:
        env["COS_ENDPOINT_URL"] = endpoint
    return load_settings(env)


def cos_client(region: str, credentials: Mapping[str, str], endpoint: Endpoint | None) -> CosS3Client:
    """The listing client: configured like the function's own (cos_config), with the SDK's retries on."""
    config = cos_config(region, credentials["TENCENTCLOUD_SECRETID"], credentials["TENCENTCLOUD_SECRETKEY"],
                        credentials.get("TENCENTCLOUD_SESSIONTOKEN") or None, endpoint=endpoint)
    return CosS3Client(config, retry=3)


def default_checkpoint(bucket: str, prefix: str) -> Path:
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:10]
    return Path(".superres") / "backfill" / f"{bucket}-{digest}.json"


def describe_cos_error(exc: Exception, endpoint: str | None) -> str:
    """One line for a failed listing or read: COS's error code and message, or where COS could not be reached."""
    if isinstance(exc, CosServiceError):
        code = exc.get_error_code()
        text = f"{code}: {exc.get_error_msg()} ({exc.get_resource_location() or 'COS'})"
        return f"{text}; {keys_hint(endpoint)}" if code in CREDENTIAL_CODES else text
    where = endpoint or "COS"
    hint = " (is `superres local` running there?)" if endpoint else ""
    text = str(exc)
    reason = "connection refused" if "Connection refused" in text else text[:300]
    return f"cannot reach {where}: {reason}{hint}"


def keys_hint(endpoint: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Which keys signed the requests, and how to set the right ones (never the keys themselves)."""
    env = os.environ if environ is None else environ
    if env.get("TENCENTCLOUD_SECRETID", "").strip() and env.get("TENCENTCLOUD_SECRETKEY", "").strip():
        used = "the keys in TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY"
        fix = ("export the SecretId and SecretKey of a CAM user allowed to list and read the bucket (with "
               "TENCENTCLOUD_SESSIONTOKEN for a temporary key)")
        if endpoint:
            fix += ", or unset them to use the stand-in's demo keys"
        return f"the requests were signed with {used}: {fix}"
    return ("the requests were signed with the stand-in's demo keys (TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY "
            f"are not set): export the keys {endpoint} accepts")


def batches(records: Sequence[dict], batch_size: int, max_bytes: int = ASYNC_EVENT_MAX_BYTES
            ) -> Iterator[list[dict]]:
    """Groups of at most batch_size records whose {"Records": [...]} event is at most max_bytes of UTF-8."""
    overhead = _utf8_len(encode_event({"Records": []}))
    batch: list[dict] = []
    size = overhead
    for record in records:
        record_bytes = _utf8_len(encode_event(record)) + 1  # + the comma between records
        if record_bytes + overhead > max_bytes:
            raise BackfillError(f"one record alone encodes to {record_bytes} bytes, over the {max_bytes}-byte "
                                "async limit")
        if batch and (len(batch) >= batch_size or size + record_bytes > max_bytes):
            yield batch
            batch, size = [], overhead
        batch.append(record)
        size += record_bytes
    if batch:
        yield batch


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))

