"""Fault injection for the stand-in: what a misbehaving cloud does, on demand.

- `FaultPlan` (plan.py): a share of all (or some) requests draws a random fault: `superres local --fault-share`.
- `InjectRule` (rules.py, combined by ruleset.py): targeted rules, `op=ci,prefix=uploads/,latency=0.05-0.3` or
  `op=ci,late=6`: `superres local --inject SPEC` / `--inject-file FILE`, `StandIn.set_injections([...])`.
- `FaultInjector` (injector.py): the ASGI middleware applying both.
"""

from __future__ import annotations

from superres.standin.faults.injector import FaultInjector, RequestRecord
from superres.standin.faults.plan import KINDS, TARGETS, FaultPlan
from superres.standin.faults.rules import (
    HOLD_LIMIT_S,
    OPS,
    InjectRule,
    load_inject_file,
    parse_inject,
    parse_inject_lines,
)
from superres.standin.faults.ruleset import Injection, RuleSet

__all__ = [
    "HOLD_LIMIT_S",
    "KINDS",
    "OPS",
    "TARGETS",
    "FaultInjector",
    "FaultPlan",
    "InjectRule",
    "Injection",
    "RequestRecord",
    "RuleSet",
    "load_inject_file",
    "parse_inject",
    "parse_inject_lines",
]
