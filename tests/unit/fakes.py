"""Injected fakes for pure-logic tests of the function (the real SDK path is tested against the stand-in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from superres_fn import CosCallError, Invocation, ObjectState, RetryPolicy, Settings

# Last-Modified of objects a test puts in FakeGateway.existing without a time: far in the future, so always fresh.
FRESH = 2**40


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
class FakeGateway:
    """Records calls; answers image_process like CI would for a single rule."""

    existing: set[tuple[str, str]] = field(default_factory=set)
    # (bucket, key) -> Last-Modified (Unix seconds); keys in `existing` without an entry count as FRESH
    modified: dict[tuple[str, str], int] = field(default_factory=dict)
    # key -> list of errors to raise on successive image_process calls before succeeding
    failures: dict[str, list[CosCallError]] = field(default_factory=dict)
    # key -> errors raised on successive calls *after* the result was written (a timeout once CI did the work)
    landed_failures: dict[str, list[CosCallError]] = field(default_factory=dict)
    # errors raised by successive HEADs before they answer
    head_failures: list[CosCallError] = field(default_factory=list)
    on_call: Callable[[], None] | None = None
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)
    heads: list[tuple[str, str]] = field(default_factory=list)
    timeouts: list[float | None] = field(default_factory=list)
    claims: list[tuple[str, str, bool]] = field(default_factory=list)  # (bucket, key, taken)
    deletes: list[tuple[str, str]] = field(default_factory=list)
    expiries: dict[tuple[str, str], int] = field(default_factory=dict)
    wall: Callable[[], float] = lambda: 1_800_000_000.0  # 2027, after every sample event

    def head(self, bucket: str, key: str, region: str, timeout: float | None = None) -> ObjectState | None:
        self.heads.append((bucket, key))
        if self.head_failures:
            raise self.head_failures.pop(0)
        if (bucket, key) not in self.existing:
            return None
        return ObjectState(self.modified.get((bucket, key), FRESH), 4242, '"bb"', self.expiries.get((bucket, key)))

    def create_if_absent(
        self, bucket: str, key: str, region: str, body: bytes, expires: int, timeout: float | None = None
    ) -> bool:
        taken = (bucket, key) not in self.existing
        self.claims.append((bucket, key, taken))
        if taken:
            self.existing.add((bucket, key))
            self.modified[(bucket, key)] = int(self.wall())
            self.expiries[(bucket, key)] = expires
        return taken

    def delete(self, bucket: str, key: str, region: str, timeout: float | None = None) -> None:
        self.deletes.append((bucket, key))
        self.existing.discard((bucket, key))
        self.modified.pop((bucket, key), None)
        self.expiries.pop((bucket, key), None)

    def image_process(
        self, bucket: str, key: str, region: str, pic_operations: str, timeout: float | None = None
    ) -> object:
        self.calls.append((bucket, key, region, pic_operations))
        self.timeouts.append(timeout)
        if self.on_call:
            self.on_call()
        pending = self.failures.get(key)
        if pending:
            raise pending.pop(0)
        import json

        objects = []
        for rule in json.loads(pic_operations)["rules"]:
            dest_bucket = rule.get("bucket", bucket)
            dest_key = rule["fileid"].lstrip("/")
            self.existing.add((dest_bucket, dest_key))
            self.modified[(dest_bucket, dest_key)] = int(self.wall())
            converted = rule["rule"].startswith("imageMogr2/format/")
            objects.append({
                "Key": dest_key,
                "Location": f"{dest_bucket}.cos.{region}.myqcloud.com/{dest_key}",
                "Format": rule["rule"].split("/")[2].split("|")[0].upper() if converted else "PNG",
                "Width": "128",
                "Height": "96",
                "Size": "4242",
                "ETag": '"bb"',
            })
        landed = self.landed_failures.get(key)
        if landed:
            raise landed.pop(0)
        return {
            "UploadResult": {
                "OriginalInfo": {
                    "Key": key,
                    "Location": f"{bucket}.cos.{region}.myqcloud.com/{key}",
                    "ETag": '"aa"',
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
    gateway.wall = lambda: 1_800_000_000.0 + clock.now - 1000.0  # Unix time that moves with the fake clock
    invocation = Invocation(
        settings=settings or Settings(dest_prefix="superres/", region="ap-guangzhou"),
        gateway=gateway,
        emit=lines.append,
        clock=clock,
        sleep=clock.sleep,
        policy=RetryPolicy(),
        wall=gateway.wall,
    )
    return invocation, lines, gateway, clock
