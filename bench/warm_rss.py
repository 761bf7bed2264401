"""Peak RSS of a warm function instance over 100 records: serverless.yml's function in a FunctionContainer (its
own process, SCF's environment) against the stand-in; the child's VmHWM after the last invocation.

Not InvokeResult.memory_bytes: that is the child's ru_maxrss, which Linux carries over from the parent across
fork + exec, so it reports at least the spawning process's RSS (the bench process's, here). VmHWM belongs to the
child's own address space.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import psutil

from superres.deploy.layer import LAYER_NAME, LAYERS_DIR, LayerBuildError, build_layer
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
        layer, why_not = _layer_dir()
        rows = [Row(f"warm handler peak RSS over {records} records", peak / _MB, "MB", _GOAL,
                    "the instance's own peak RSS (VmHWM of its process, incl. the local SCF runtime loop); the "
                    "venv's site-packages importable, as a plain `python` would run it")]
        if layer is None:
            rows.append(Row(f"warm handler peak RSS over {records} records, isolated", None, "MB", _GOAL,
                            f"skipped: {why_not}"))
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


def _layer_dir() -> tuple[Path | None, str]:
    """The layer built for the running interpreter (same recipe as SCF's, this Python), as the package tests
    build it: reused when its inputs did not change, else built now (pip, about half a minute). (folder, why not)"""
    if sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None, f"the layer holds manylinux x86_64 wheels, not loadable on {sys.platform} {platform.machine()}"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    tag = f"py{version.replace('.', '')}"
    progress(f"warm RSS: the layer for Python {version} under layers/build/test/{tag} (built unless reusable)")
    try:
        build = build_layer(python_version=version, zip_path=LAYERS_DIR / "build" / "test" / f"{LAYER_NAME}-{tag}.zip",
                            build_dir=LAYERS_DIR / "build" / "test" / tag, log=progress)
    except (LayerBuildError, OSError) as exc:
        return None, f"the layer for Python {version} could not be built: {str(exc).strip()[-300:]}"
    progress(f"warm RSS: {build.summary().splitlines()[0]}")
    return build.build_dir, ""


def _created(key: str, size: int, etag: str) -> ObjectCreated:
    return ObjectCreated(bucket=BUCKET, key=key, size=size, etag=etag, content_type="image/jpeg", meta={},
                         event_name=EVENT_PUT, request_id="bench", source_ip="127.0.0.1",
                         authorization="q-sign-algorithm=sha1&q-signature=redacted")
