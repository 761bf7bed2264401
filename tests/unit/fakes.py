"""Injected fakes for pure-logic tests of the function (the real SDK path is tested against the stand-in)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from superres_fn import CosCallError, Invocation, RetryPolicy, Settings


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
    # key -> list of errors to raise on successive image_process calls before succeeding
    failures: dict[str, list[CosCallError]] = field(default_factory=dict)
    on_call: Callable[[], None] | None = None
    calls: list[tuple[str, str, str, str]] = field(default_factory=list)
    heads: list[tuple[str, str]] = field(default_factory=list)
    timeouts: list[float | None] = field(default_factory=list)

    def exists(self, bucket: str, key: str, region: str, timeout: float | None = None) -> bool:
        self.heads.append((bucket, key))
        return (bucket, key) in self.existing

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

        rule = json.loads(pic_operations)["rules"][0]
        dest_bucket = rule.get("bucket", bucket)
        dest_key = rule["fileid"].lstrip("/")
        self.existing.add((dest_bucket, dest_key))
        return {
            "UploadResult": {
                "OriginalInfo": {
                    "Key": key,
                    "Location": f"{bucket}.cos.{region}.myqcloud.com/{key}",
                    "ETag": '"aa"',
                    "ImageInfo": {"Format": "JPEG", "Width": "64", "Height": "48", "Quality": "90"},
                },
                "ProcessResults": {
                    "Object": {
                        "Key": dest_key,
                        "Location": f"{dest_bucket}.cos.{region}.myqcloud.com/{dest_key}",
                        "Format": "JPEG",
                        "Width": "128",
                        "Height": "96",
                        "Size": "4242",
                        "ETag": '"bb"',
                    }
                },
            }
        }


def make_invocation(
    settings: Settings | None = None, gateway: FakeGateway | None = None
) -> tuple[Invocation, list[dict], FakeGateway, FakeClock]:
    lines: list[dict] = []
    clock = FakeClock()
    gateway = gateway or FakeGateway()
    invocation = Invocation(
        settings=settings or Settings(dest_prefix="superres/", region="ap-guangzhou"),
        gateway=gateway,
        emit=lines.append,
        clock=clock,
        sleep=clock.sleep,
        policy=RetryPolicy(),
    )
    return invocation, lines, gateway, clock
