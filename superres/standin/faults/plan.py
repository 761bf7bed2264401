"""A fault plan: a share of requests answered as a misbehaving cloud would, drawn at random (`--fault-share`).

Kinds (a request that draws a fault gets one of `FaultPlan.kinds`, chosen uniformly):
- "slowdown": 503 with COS error XML, code SlowDown (the request is not processed);
- "internal": 500 with COS error XML, code InternalError (not processed);
- "reset":    the TCP connection is aborted with an RST before any byte of a response (not processed);
- "delay":    the request waits `delay_s` and is then processed normally. With `delay_s` above the client's
              timeout the client gives up first, but the work (a CI write, say) still happens, as with a real
              slow server: a client that retries may therefore cause the same write twice.

Which requests: `targets` picks request classes ("ci" = any Cloud Infinite call: `?image_process`,
`?ci-process`, or a PUT with Pic-Operations; or an HTTP method: "head", "get", "put", "post", "delete"); empty means
every request. `key_prefix` narrows further. Decisions are deterministic for a given `seed`: the n-th request
for one (method, path) draws the same fate in every run, whatever the interleaving of concurrent requests.
(For rules aimed at one operation, key prefix and time, see rules.py: `--inject`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("slowdown", "internal", "reset", "delay")
TARGETS = ("ci", "head", "get", "put", "post", "delete")
ERRORS = {"slowdown": (503, "SlowDown"), "internal": (500, "InternalError")}


@dataclass(frozen=True)
class FaultPlan:
    share: float
    kinds: tuple[str, ...] = KINDS
    # Past the function's default COS_TIMEOUT_S (60 s); tests use a few seconds with a shorter client timeout.
    delay_s: float = 65.0
    seed: int | None = None
    targets: tuple[str, ...] = ()
    key_prefix: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {self.share!r}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or unknown:
            raise ValueError(f"kinds must be a non-empty subset of {', '.join(KINDS)}; got {self.kinds!r}")
        bad_targets = [t for t in self.targets if t not in TARGETS]
        if bad_targets:
            raise ValueError(f"targets must be among {', '.join(TARGETS)}; got {self.targets!r}")
        if not self.delay_s > 0:
            raise ValueError(f"delay_s must be positive, got {self.delay_s!r}")

    @classmethod
    def parse(cls, share: float, kinds: str = "", targets: str = "", **options: Any) -> FaultPlan:
        """From comma lists, as the CLI takes them: `FaultPlan.parse(0.3, "slowdown,reset", "ci,head")`."""
        return cls(share=share, kinds=_split(kinds) or KINDS, targets=_split(targets), **options)

    def applies_to(self, method: str, key: str, is_ci: bool) -> bool:
        if not key.startswith(self.key_prefix):
            return False
        if not self.targets:
            return True
        return (is_ci and "ci" in self.targets) or method.lower() in self.targets


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())
