"""The inject rules in force, and what they decide for one request.

When several rules match a request, their latencies add up and the first error or late (in rule order: the rules
set directly, then an inject file's) wins; a rule whose error or late is shadowed by an earlier one does not take
effect (and spends none of its count) unless it adds latency.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

from superres.standin.asgi import RequestView
from superres.standin.faults.rules import InjectRule, load_inject_file, parse_inject

log = logging.getLogger("superres.standin")


@dataclass
class Injection:
    """What the rules decided for one request."""

    latency_s: float = 0.0
    error: tuple[int, str] | None = None
    late_s: float | None = None
    rules: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "; ".join(self.rules)


class _Armed:
    """A rule in force: its own random draws and what is left of its count."""

    def __init__(self, rule: InjectRule) -> None:
        self.rule = rule
        self.left = rule.count
        self.rng = random.Random(rule.seed)


class RuleSet:
    """The rules in force: those set directly (CLI `--inject`, `set_injections`), then those of an inject file,
    re-read whenever its modification time or size changes. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._direct: list[_Armed] = []
        self._file: Path | None = None
        self._file_stamp: tuple[int, int] | None = None
        self._from_file: list[_Armed] = []

    def set_rules(self, specs: list[str]) -> list[InjectRule]:
        """Replace the directly set rules (all parsed first: a bad spec changes nothing)."""
        rules = [parse_inject(spec) for spec in specs]
        with self._lock:
            self._direct = [_Armed(rule) for rule in rules]
        for rule in rules:
            log.info("standin: injecting %s", rule.text)
        return rules

    def set_file(self, path: Path | None) -> list[InjectRule]:
        """Follow `path` (None: stop). It is read now: a missing file or a bad spec raises and changes nothing."""
        if path is None:
            with self._lock:
                self._file, self._file_stamp, self._from_file = None, None, []
            return []
        stamp = _stamp(path)
        rules = load_inject_file(path)
        with self._lock:
            self._file, self._file_stamp, self._from_file = Path(path), stamp, [_Armed(rule) for rule in rules]
        log.info("standin: injecting from %s: %s", path, "; ".join(r.text for r in rules) or "no rules")
        return rules

    @property
    def active(self) -> bool:
        return bool(self._direct or self._from_file or self._file)

    def decide(self, view: RequestView) -> Injection | None:
        """The injection for one request, or None. Spends the counts of the rules that take effect."""
        if not self.active:
            return None
        self._refresh_file()
        decision = Injection()
        with self._lock:
            for armed in (*self._direct, *self._from_file):
                rule = armed.rule
                if armed.left == 0 or not rule.matches(view):
                    continue
                if rule.share < 1.0 and armed.rng.random() >= rule.share:
                    continue
                terminal = decision.error is None and decision.late_s is None
                takes_error = terminal and rule.error is not None
                takes_late = terminal and rule.late_s is not None
                if rule.latency is None and not takes_error and not takes_late:
                    continue  # shadowed by an earlier error or late
                if rule.latency is not None:
                    low, high = rule.latency
                    decision.latency_s += low if low == high else armed.rng.uniform(low, high)
                if takes_error:
                    decision.error = rule.error
                if takes_late:
                    decision.late_s = rule.late_s
                decision.rules.append(rule.text)
                if armed.left is not None:
                    armed.left -= 1
        return decision if decision.rules else None

    def _refresh_file(self) -> None:
        path = self._file
        if path is None:
            return
        try:
            stamp: tuple[int, int] | None = _stamp(path)
        except OSError:
            stamp = None
        if stamp == self._file_stamp:
            return
        try:
            rules = load_inject_file(path) if stamp is not None else []
        except (OSError, ValueError) as exc:
            log.error("standin: %s; keeping the rules in force before this change", exc)
            with self._lock:
                self._file_stamp = stamp
            return
        with self._lock:
            if self._file != path or self._file_stamp == stamp:
                return  # switched to another file, or another request re-read it first
            self._file_stamp, self._from_file = stamp, [_Armed(rule) for rule in rules]
        if stamp is None:
            log.warning("standin: inject file %s is gone; no rules from it until it is back", path)
        else:
            log.info("standin: inject file %s re-read: %s", path, "; ".join(r.text for r in rules) or "no rules")


def _stamp(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size
