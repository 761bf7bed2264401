"""Peak RSS of a warm function instance over 100 records: serverless.yml's function in a FunctionContainer (its
own process, SCF's environment) against the stand-in; the child's VmHWM after the last invocation.

Not InvokeResult.memory_bytes: that is the child's ru_maxrss, which Linux carries over from the parent across
fork + exec, so it reports at least the spawning process's RSS (the bench process's, here). VmHWM belongs to the
child's own address space.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil

from superres.scf.container import ContainerOptions, FunctionContainer
from superres.scf.serverless import load_function_spec
from superres.scf.trigger import build_cos_event
from superres.standin.events import EVENT_PUT, ObjectCreated

from .measure import ROOT, progress
from .report import Goal, Row
from .standin_proc import APPID, BUCKET, REGION, StandinProcess

_GOAL = Goal("<=", 64)  # MB: SCF's smallest memory size
_MB = 1024 * 1024


def run(quick: bool) -> list[Row]:
    records = 30 if quick else 100
    spec = load_function_spec(ROOT / "serverless.yml")
    with StandinProcess() as standin:
        objects = standin.upload("uploads/", records)
        events = [{"Records": [build_cos_event(_created(key, size, etag), appid=APPID, region=REGION)]}
                  for key, size, etag in objects]
        progress(f"warm RSS: {records} invocations of one warm instance (site-packages on the path)")
        peak = _peak_rss(spec, ContainerOptions(env={**standin.function_env(), "DEST_PREFIX": "rss-venv/"},
                                                appid=APPID), events)
        layer = _layer_dir()
        rows = [Row(f"warm handler peak RSS over {records} records", peak / _MB, "MB", _GOAL,
                    "the instance's own peak RSS (VmHWM of its process, incl. the local SCF runtime loop); the "
                    "venv's site-packages importable, as a plain `python` would run it")]
        if layer is None:
            rows.append(Row(f"warm handler peak RSS over {records} records, isolated", None, "MB", _GOAL,
                            "skipped: no layer build for this interpreter under layers/build/test (run "
                            "`make test`'s package tests, which build it)"))
            return rows
        progress(f"warm RSS: {records} invocations, isolated (python -I -S, handler/ + layer {layer})")
        peak_isolated = _peak_rss(spec, ContainerOptions(env={**standin.function_env(), "DEST_PREFIX": "rss-iso/"},
                                                         appid=APPID, isolated=True, layer_dirs=(layer,)), events)
        rows.append(Row(f"warm handler peak RSS over {records} records, isolated", peak_isolated / _MB, "MB", _GOAL,
                        "python -I -S with only handler/ and the layer (the SDK and its deps, built for this "
                        "interpreter) importable, as on SCF"))
    return rows


def _peak_rss(spec, options: ContainerOptions, events: list[dict]) -> int:  # type: ignore[no-untyped-def]
    with FunctionContainer(spec, options) as container:
        for event in events:
            result = container.invoke(event)
            if not result.ok or (result.return_value or {}).get("processed") != 1:  # type: ignore[union-attr]
                raise RuntimeError(f"warm RSS: an invocation failed: {result.error} {result.logs[-3:]}")
        return _instance_hwm_bytes()


def _instance_hwm_bytes() -> int:
    """VmHWM of the one function instance this process runs (the child whose command runs runtime.py)."""
    instances = [p for p in psutil.Process().children() if any(a.endswith("runtime.py") for a in p.cmdline())]
    if len(instances) != 1:
        raise RuntimeError(f"warm RSS: expected one function instance, found {len(instances)}")
    with open(f"/proc/{instances[0].pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("warm RSS: no VmHWM in /proc/PID/status")


def _layer_dir() -> Path | None:
    """The layer built for the running interpreter by the package tests (same recipe as SCF's, other Python)."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    folder = ROOT / "layers" / "build" / "test" / tag
    return folder if (folder / "qcloud_cos").is_dir() else None


def _created(key: str, size: int, etag: str) -> ObjectCreated:
    return ObjectCreated(bucket=BUCKET, key=key, size=size, etag=etag, content_type="image/jpeg", meta={},
                         event_name=EVENT_PUT, request_id="bench", source_ip="127.0.0.1",
                         authorization="q-sign-algorithm=sha1&q-signature=redacted")
