"""Cold start: importing the handler module (index.py: SDK + superres_fn + settings + gateway) vs importing
qcloud_cos alone, each in a fresh interpreter, minus a bare `python -c pass` (interpreter start-up)."""

from __future__ import annotations

import os
import re
import subprocess

from .measure import PYTHON, ROOT, interleaved, median, progress, wall_time_of
from .report import Goal, Row

COMMANDS = {
    "bare": [PYTHON, "-c", "pass"],
    "qcloud_cos": [PYTHON, "-c", "import qcloud_cos"],
    "handler": [PYTHON, "-c", "import sys; sys.path.insert(0, 'handler'); import index"],
}


def run(quick: bool) -> list[Row]:
    rounds = 5 if quick else 25
    env = {**os.environ, "DEST_PREFIX": "superres/"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure with compiled bytecode, as a warm SCF image has it
    progress(f"cold start: {rounds} interleaved rounds of {', '.join(COMMANDS)} (fresh interpreters)")
    times = interleaved({name: (lambda _r, c=command: wall_time_of(c, env)) for name, command in COMMANDS.items()},
                        rounds, warmup=1)
    bare, sdk, handler = (median(times[name]) for name in ("bare", "qcloud_cos", "handler"))
    self_reported = [_importtime_ratio(env) for _ in range(rounds)]
    how = (f"median of {rounds} interleaved fresh-process runs each; wall time minus a bare `python -c pass` "
           f"({bare * 1000:.1f} ms)")
    return [
        Row("cold start: import handler / import qcloud_cos", (handler - bare) / (sdk - bare), "x", Goal("<=", 1.10),
            how),
        Row("cold start: import handler / import qcloud_cos (-X importtime)", median(self_reported), "x",
            note="cross-check without process start-up: Python's own import timer, cumulative us of `index` "
                 "(imported after qcloud_cos) added to qcloud_cos's, over qcloud_cos's; module code only"),
        Row("cold start: import handler (index.py)", (handler - bare) * 1000, "ms",
            note="includes load_settings() and building the gateway, as SCF's cold start does"),
        Row("cold start: import qcloud_cos alone", (sdk - bare) * 1000, "ms"),
    ]


_IMPORTTIME = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$")


def _importtime_ratio(env: dict[str, str]) -> float:
    code = "import qcloud_cos, sys; sys.path.insert(0, 'handler'); import index"
    done = subprocess.run([PYTHON, "-X", "importtime", "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True)
    cumulative = {m[2]: int(m[1]) for m in map(_IMPORTTIME.match, done.stderr.splitlines()) if m}
    return (cumulative["qcloud_cos"] + cumulative["index"]) / cumulative["qcloud_cos"]
