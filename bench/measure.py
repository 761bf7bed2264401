"""Timing helpers shared by the benchmarks: interleaved repetitions, medians, fresh-interpreter runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

T = TypeVar("T")


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def interleaved(arms: Mapping[str, Callable[[int], T]], rounds: int, *, warmup: int = 0) -> dict[str, list[T]]:
    """Run every arm once per round, rotating their order, so machine noise lands on all arms alike.

    Each arm is called with the round number (warm-up rounds get negative numbers) and its results are kept
    for the measured rounds only.
    """
    names = list(arms)
    results: dict[str, list[T]] = {name: [] for name in names}
    for r in range(-warmup, rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            value = arms[name](r)
            if r >= 0:
                results[name].append(value)
    return results


def wall_time_of(command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> float:
    """Seconds from spawning a fresh process to its exit (it must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(command, env=dict(env) if env is not None else None, cwd=cwd, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return elapsed


def run_json_script(code: str, *, env: Mapping[str, str] | None = None, timeout_s: float = 600) -> dict:
    """Run `code` in a fresh interpreter (cwd = project root) and parse the JSON object it prints last."""
    done = subprocess.run([PYTHON, "-c", code], env={**os.environ, **(env or {})}, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
