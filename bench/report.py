"""Result rows, their goals, and the three renderings: results.json, a plain table, a Markdown table."""

from __future__ import annotations

import json
import math
import operator
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_OPS = {"<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    op: str  # "<=" or ">="
    threshold: float

    def __str__(self) -> str:
        return f"{self.op} {_fmt(self.threshold)}"

    def met_by(self, value: float | None) -> bool:
        return value is not None and math.isfinite(value) and _OPS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Row:
    """One figure. Rows without a goal are context for the ones with one (their `meets` is null)."""

    name: str
    value: float | None
    unit: str
    goal: Goal | None = None
    note: str = ""

    @property
    def meets(self) -> bool | None:
        return None if self.goal is None else self.goal.met_by(self.value)

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "value": _rounded(self.value), "unit": self.unit,
                "goal": str(self.goal) if self.goal else None, "meets": self.meets, "note": self.note or None}


@dataclass(frozen=True)
class Revision:
    """The source a run measured: the checked-out commit, and whether tracked files differed from it."""

    commit: str | None  # None outside a git checkout
    uncommitted_changes: bool | None = None

    def __str__(self) -> str:
        if self.commit is None:
            return "an unknown commit (not a git checkout)"
        changes = {True: " with uncommitted changes", False: "", None: " (uncommitted changes not known)"}
        return f"commit {self.commit[:12]}{changes[self.uncommitted_changes]}"

    @classmethod
    def of(cls, root: Path) -> Revision:
        """`git rev-parse HEAD` and `git status` of `root`, read before the run writes anything."""
        def git(*args: str) -> str | None:
            try:
                done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.SubprocessError):
                return None
            return done.stdout if done.returncode == 0 else None

        inside = git("rev-parse", "--show-toplevel")
        if inside is None or Path(inside.strip()).resolve() != root.resolve():
            return cls(None)
        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
        return cls(head.strip() if head else None, bool(status.strip()) if status is not None else None)


def write_json(rows: Sequence[Row], path: Path, revision: Revision) -> None:
    """{"commit", "uncommitted_changes", "rows": [...]}: the figures and the source they were measured on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    document = {"commit": revision.commit, "uncommitted_changes": revision.uncommitted_changes,
                "rows": [row.as_json() for row in rows]}
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def plain_table(rows: Sequence[Row]) -> str:
    """Aligned columns for the terminal; notes follow the table, numbered."""
    header = ("#", "benchmark", "value", "unit", "goal", "meets")
    body = [(str(i), r.name, _fmt(r.value), r.unit, str(r.goal or "-"), _verdict(r.meets))
            for i, r in enumerate(rows, 1)]
    widths = [max(len(line[c]) for line in (header, *body)) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  [{i}] {r.note}" for i, r in enumerate(rows, 1) if r.note]
    return "\n".join(lines + (["", "Notes:", *notes] if notes else []))


def markdown_table(rows: Sequence[Row], preamble: str = "") -> str:
    lines = [preamble, ""] if preamble else []
    lines += ["| benchmark | value | unit | goal | meets | note |", "|---|---:|---|---|---|---|"]
    for r in rows:
        cells = (r.name, _fmt(r.value), r.unit, str(r.goal or "-"), _verdict(r.meets), r.note)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _verdict(meets: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[meets]


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def _rounded(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value == 0:
        return value
    digits = max(0, 4 - int(math.floor(math.log10(abs(value)))) - 1)
    return round(value, digits)
