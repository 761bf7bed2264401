"""Injected fakes for pure-logic tests of the function (the real SDK path is tested against the stand-in).

`FakeGateway` is an in-memory COS + CI with COS's semantics where the function relies on them: objects with ETag
(MD5 of the body), metadata and Last-Modified from COS's own clock (`cos_now`, whole seconds, which a test may set
apart from the event's clock), an atomic create (x-cos-forbid-overwrite), a copy that replaces metadata, listings,
and CI writing one result per rule. Sources a test did not put are answered as existing objects without an ETag
(the sample events name keys the fake never stored), so the function takes the event's version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from superres_fn import CosCallError, Invocation, Listed, ObjectState, RetryPolicy, Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Stored:
    body: bytes
    meta: dict[str, str]
    last_modified: int

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.body).hexdigest() + '"'


@dataclass
class FakeGateway:
    objects: dict[tuple[str, str], Stored] = field(default_factory=dict)
    # key -> list of errors to raise on successive image_process calls before CI does anything
    failures: dict[str, list[CosCallError]] = field(default_factory=dict)
    # key -> errors raised on successive calls *after* the results were written (a timeout once CI did the work)
    landed_failures: dict[str, list[CosCallError]] = field(default_factory=dict)
    # errors raised by successive HEADs before they answer
    head_failures: list[CosCallError] = field(default_factory=list)
    on_call: Callable[[], None] | None = None
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)
    heads: list[tuple[str, str]] = field(default_factory=list)
    timeouts: list[float | None] = field(default_factory=list)
    creates: list[tuple[str, str, bool]] = field(default_factory=list)  # (bucket, key, created)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    copies: list[tuple[str, str, str]] = field(default_factory=list)
    content_types: dict[tuple[str, str], str] = field(default_factory=dict)  # what each publish set
    log: list[tuple[str, str]] = field(default_factory=list)  # (operation, key) in order: creates and deletes
    cos_now: Callable[[], float] = lambda: 1_800_000_000.0  # COS's clock (Unix seconds)
    # Keys under these prefixes are never auto-answered as sources (the function's own objects)
    own_prefixes: tuple[str, ...] = ("superres/",)

    # -- test helpers ---------------------------------------------------------------------------------------------

    def put(self, bucket: str, key: str, body: bytes = b"image", meta: Mapping[str, str] | None = None,
            last_modified: int | None = None) -> str:
        stored = Stored(body, dict(meta or {}), int(self.cos_now()) if last_modified is None else last_modified)
        self.objects[(bucket, key)] = stored
        return stored.etag

    def has(self, bucket: str, key: str) -> bool:
        return (bucket, key) in self.objects

    def keys(self, prefix: str = "") -> list[tuple[str, str]]:
        return sorted(k for k in self.objects if k[1].startswith(prefix))

    # -- Gateway --------------------------------------------------------------------------------------------------

    def head(self, bucket: str, key: str, region: str, timeout: float | None = None) -> ObjectState | None:
        self.heads.append((bucket, key))
        if self.head_failures:
            raise self.head_failures.pop(0)
        date = int(self.cos_now())
        stored = self.objects.get((bucket, key))
        if stored is None:
            if key.startswith(self.own_prefixes):
                return None
            return ObjectState(0, 100, None, {}, date)  # a source the test did not put
        meta = {k[11:]: v for k, v in stored.meta.items() if k.startswith("x-cos-meta-")}
        return ObjectState(stored.last_modified, len(stored.body), stored.etag, meta, date)

    def list_prefix(self, bucket: str, prefix: str, region: str, timeout: float | None = None) -> Listed:
        found = {k: s.last_modified for (b, k), s in self.objects.items() if b == bucket and k.startswith(prefix)}
        return Listed(found, int(self.cos_now()))

    def create_if_absent(self, bucket: str, key: str, region: str, body: bytes, meta: Mapping[str, str],
                         timeout: float | None = None) -> bool:
        created = (bucket, key) not in self.objects
        self.creates.append((bucket, key, created))
        self.log.append(("create", key))
        if created:
            self.put(bucket, key, body, meta)
        return created

    def publish(self, bucket: str, source_key: str, key: str, region: str, meta: Mapping[str, str],
                content_type: str, timeout: float | None = None) -> str | None:
        self.copies.append((bucket, source_key, key))
        self.content_types[(bucket, key)] = content_type
        source = self.objects.get((bucket, source_key))
        if source is None:
            raise CosCallError("The specified key does not exist.", code="NoSuchKey", status=404)
        return self.put(bucket, key, source.body, meta)

    def delete(self, bucket: str, key: str, region: str, timeout: float | None = None) -> None:
        self.deletes.append((bucket, key))
        self.log.append(("delete", key))
        self.objects.pop((bucket, key), None)

    def image_process(self, bucket: str, key: str, region: str, pic_operations: str,
                      timeout: float | None = None) -> object:
        self.calls.append((bucket, key, region, pic_operations))
        self.timeouts.append(timeout)
        if self.on_call:
            self.on_call()
        pending = self.failures.get(key)
        if pending:
            raise pending.pop(0)
        source = self.objects.get((bucket, key))
        objects = []
        for rule in json.loads(pic_operations)["rules"]:
            dest_bucket = rule.get("bucket", bucket)
            dest_key = rule["fileid"].lstrip("/")
            converted = rule["rule"].startswith("imageMogr2/format/")
            fmt = rule["rule"].split("/")[2] if converted else "png"
            body = (source.body if source else key.encode()) + f"|{rule['rule']}".encode()
            etag = self.put(dest_bucket, dest_key, body)
            objects.append({"Key": dest_key, "Location": f"{dest_bucket}.cos.{region}.myqcloud.com/{dest_key}",
                            "Format": fmt, "Width": "128", "Height": "96", "Size": str(len(body)), "ETag": etag})
        landed = self.landed_failures.get(key)
        if landed:
            raise landed.pop(0)
        return {
            "UploadResult": {
                "OriginalInfo": {
                    "Key": key,
                    "Location": f"{bucket}.cos.{region}.myqcloud.com/{key}",
                    "ETag": source.etag if source else '"aa"',
                    "ImageInfo": {"Format": "JPEG", "Width": "64", "Height": "48", "Quality": "90"},
                },
                "ProcessResults": {"Object": objects[0] if len(objects) == 1 else objects},
            }
        }


def make_invocation(
    settings: Settings | None = None, gateway: FakeGateway | None = None
) -> tuple[Invocation, list[dict], FakeGateway, FakeClock]:
    lines: list[dict] = []
    clock = FakeClock()
    gateway = gateway or FakeGateway()
    gateway.cos_now = lambda: 1_800_000_000.0 + clock.now - 1000.0  # COS's clock moves with the fake clock
    invocation = Invocation(
        settings=settings or Settings(dest_prefix="superres/", region="ap-guangzhou"),
        gateway=gateway,
        emit=lines.append,
        clock=clock,
        sleep=clock.sleep,
        policy=RetryPolicy(min_ci_attempt_s=0.5),  # the time-budget tests use budgets of a few seconds
        wall=gateway.cos_now,
    )
    return invocation, lines, gateway, clock
