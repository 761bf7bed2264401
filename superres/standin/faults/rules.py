"""Injection rules: `--inject SPEC` / `--inject-file FILE` / `StandIn.set_injections([...])`.

A SPEC is comma-separated key=value pairs (README, "Scripting the stand-in"):

    op=ci|head|get|put|post|delete|any   which requests (default any). A request is exactly one op: "ci" for a
                                         Cloud Infinite call (?image_process, ?ci-process, PUT with
                                         Pic-Operations), otherwise its HTTP method.
    prefix=KEY_PREFIX                    only keys starting with it (percent-decoded: %2C for a comma)
    latency=0.2 | latency=0.05-0.3       seconds to wait before the request is processed (a range: uniform draw)
    error=503:SlowDown                   answer this status and COS code as COS error XML; nothing is processed
                                         (the code may be left out for 500, 503 and a few others)
    late=6                               op=ci only: process the call but never answer; the connection is held
                                         until the client gives up (or 600 s) and the work lands 6 s after that
    share=0.5                            probability that a matching request draws the rule (default 1)
    count=N                              the rule takes effect at most N times, then it is spent
    seed=N                               make the share and latency draws repeatable

A rule needs at least one of latency, error, late. How several rules combine: ruleset.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from superres.standin.asgi import RequestView

OPS = ("ci", "head", "get", "put", "post", "delete", "any")
KEYS = ("op", "prefix", "latency", "error", "late", "share", "count", "seed")
HOLD_LIMIT_S = 600.0  # how long a late CI call holds a connection the client keeps open
DEFAULT_CODES = {
    400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey", 409: "ConflictError", 412: "PreconditionFailed",
    429: "SlowDown", 500: "InternalError", 501: "NotImplemented", 503: "ServiceUnavailable",
}
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9.]{0,63}$")


@dataclass(frozen=True)
class InjectRule:
    """One parsed SPEC. `text` is the spec as given; it names the rule in the request log."""

    text: str
    op: str = "any"
    prefix: str = ""
    latency: tuple[float, float] | None = None  # (low, high) seconds
    error: tuple[int, str] | None = None  # (status, COS code)
    late_s: float | None = None
    share: float = 1.0
    count: int | None = None
    seed: int | None = None

    def matches(self, view: RequestView) -> bool:
        return (self.op == "any" or self.op == view.op) and view.key.startswith(self.prefix)


def parse_inject(spec: str) -> InjectRule:
    """A SPEC -> InjectRule; ValueError naming the spec and what is wrong with it."""
    text = spec.strip()
    if not text:
        raise ValueError("empty inject spec: give key=value pairs, e.g. op=ci,latency=0.5")
    fields: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip().lower()
        if not sep:
            raise _bad(text, f"{part.strip()!r} is not key=value")
        if name not in KEYS:
            raise _bad(text, f"unknown key {name!r}; the keys are {', '.join(KEYS)}")
        if name in fields:
            raise _bad(text, f"{name} is given twice")
        fields[name] = value.strip()
    rule = InjectRule(
        text=text,
        op=_op(text, fields.get("op", "any")),
        prefix=unquote(fields.get("prefix", "")),
        latency=_latency(text, fields["latency"]) if "latency" in fields else None,
        error=_error(text, fields["error"]) if "error" in fields else None,
        late_s=_seconds(text, "late", fields["late"], positive=True) if "late" in fields else None,
        share=_share(text, fields.get("share", "1")),
        count=_whole(text, "count", fields["count"], minimum=1) if "count" in fields else None,
        seed=_whole(text, "seed", fields["seed"], minimum=0) if "seed" in fields else None,
    )
    if rule.latency is None and rule.error is None and rule.late_s is None:
        raise _bad(text, "it does nothing: give latency=, error= or late=")
    if rule.late_s is not None and rule.op != "ci":
        raise _bad(text, "late= applies to CI calls only: add op=ci")
    if rule.late_s is not None and rule.error is not None:
        raise _bad(text, "give error= or late=, not both (an errored call is never processed)")
    return rule


def parse_inject_lines(text: str, source: str = "inject file") -> list[InjectRule]:
    """One SPEC per line; blank lines and `#` comments skipped. ValueError names the line."""
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                rules.append(parse_inject(line))
            except ValueError as exc:
                raise ValueError(f"{source}, line {number}: {exc}") from None
    return rules


def load_inject_file(path: Path) -> list[InjectRule]:
    return parse_inject_lines(Path(path).read_text(encoding="utf-8"), str(path))


def _bad(spec: str, why: str) -> ValueError:
    return ValueError(f"inject spec {spec!r}: {why}")


def _op(spec: str, value: str) -> str:
    op = value.lower()
    if op not in OPS:
        raise _bad(spec, f"op must be one of {', '.join(OPS)}, got {value!r}")
    return op


def _seconds(spec: str, name: str, value: str, *, positive: bool = False) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise _bad(spec, f"{name} must be seconds (a number), got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise _bad(spec, f"{name} must be a {'positive' if positive else 'non-negative'} number of seconds, "
                         f"got {value!r}")
    return seconds


def _latency(spec: str, value: str) -> tuple[float, float]:
    low_text, sep, high_text = value.partition("-")
    if not sep:
        seconds = _seconds(spec, "latency", value)
        return seconds, seconds
    low, high = _seconds(spec, "latency", low_text), _seconds(spec, "latency", high_text)
    if low > high:
        raise _bad(spec, f"latency range {value!r} runs backwards: give LOW-HIGH")
    return low, high


def _error(spec: str, value: str) -> tuple[int, str]:
    status_text, _, code = value.partition(":")
    if not status_text.strip().isdigit() or not 400 <= int(status_text) <= 599:
        raise _bad(spec, f"error must be STATUS[:CODE] with a status of 400-599, e.g. 503:SlowDown; got {value!r}")
    status, code = int(status_text), code.strip()
    if not code:
        if status not in DEFAULT_CODES:
            raise _bad(spec, f"give the COS code for status {status}, e.g. error={status}:AccessDenied")
        code = DEFAULT_CODES[status]
    if not _CODE.match(code):
        raise _bad(spec, f"the error code must be a COS code such as SlowDown, got {code!r}")
    return status, code


def _share(spec: str, value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:
        raise _bad(spec, f"share must be a probability between 0 and 1, got {value!r}")
    return share


def _whole(spec: str, name: str, value: str, *, minimum: int) -> int:
    if not value.isdigit() or int(value) < minimum:
        raise _bad(spec, f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)
