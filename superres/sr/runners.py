"""The two ways to run the SPAN network on one tile: onnxruntime (converted graph) and ncnn (files as shipped).

Runners are built on first use and cached per (backend, scale, threads) for the life of the process, so engines
are cheap to construct and share sessions. Both runtimes are imported lazily: importing this package must not
pay for them, and ncnn must only be imported after OMP_WAIT_POLICY is set.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .errors import EngineError
from .ncnn_to_onnx import convert
from .weights import NcnnModel, span_model

if TYPE_CHECKING:
    from .tiling import Network

BACKENDS = ("auto", "onnxruntime", "ncnn")
INPUT_BLOB = "data"
OUTPUT_BLOB = "output"
# Tile sizes measured best per runtime on a 2-core box (spec/sr-engines.md): ncnn likes cache-sized tiles.
DEFAULT_TILE = {"auto": 256, "onnxruntime": 256, "ncnn": 128}
# Used by "auto" when onnxruntime reports one of them; TensorRT is left out because it rebuilds per tile shape.
_GPU_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider")
_PACKAGES = {"auto": ("onnxruntime", "onnx"), "onnxruntime": ("onnxruntime", "onnx"), "ncnn": ("ncnn",)}

_runners: dict[tuple[str, int, int], Network] = {}
_runners_lock = threading.Lock()


def check_backend_installed(backend: str) -> None:
    if backend not in BACKENDS:
        raise EngineError("unknown_backend", f"unknown backend {backend!r}; choose one of {BACKENDS}")
    for package in _PACKAGES[backend]:
        if importlib.util.find_spec(package) is None:
            raise EngineError("backend_unavailable", f"backend {backend!r} needs the {package!r} package")


def runner_for(backend: str, scale: int, threads: int) -> Network:
    """The cached network callable for this backend/scale/thread count, built on first request."""
    key = (backend, scale, threads)
    with _runners_lock:
        runner = _runners.get(key)
        if runner is None:
            model = span_model(scale)
            runner = _NcnnRunner(model, threads) if backend == "ncnn" else _OrtRunner(model, threads, backend)
            _runners[key] = runner
        return runner


@lru_cache(maxsize=4)
def onnx_model_bytes(model: NcnnModel) -> bytes:
    """The converted ONNX model, once per process (conversion takes ~0.1 s plus ~0.2 s to import onnx)."""
    return convert(model.param.read_text(encoding="utf-8"), model.bin.read_bytes())


class _OrtRunner:
    """onnxruntime session; ``InferenceSession.run`` is thread-safe, so no lock is needed around it."""

    def __init__(self, model: NcnnModel, threads: int, backend: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning worker threads steal the CPU from everything else on a small shared box.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if backend == "auto":
            available = ort.get_available_providers()
            providers = [p for p in _GPU_PROVIDERS if p in available] + providers
        try:
            self._session = ort.InferenceSession(onnx_model_bytes(model), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineError("backend_unavailable", f"onnxruntime could not load {model.stem}: {exc}") from exc
        self.providers = self._session.get_providers()

    def __call__(self, chw: np.ndarray) -> np.ndarray:
        return self._session.run([OUTPUT_BLOB], {INPUT_BLOB: chw[np.newaxis]})[0][0]


class _NcnnRunner:
    """ncnn network on the CPU; calls are serialised because concurrent OpenMP teams would oversubscribe."""

    def __init__(self, model: NcnnModel, threads: int) -> None:
        # libgomp reads this once, at load: without it idle workers busy-wait and slow a shared box ~10x.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import ncnn

        self._ncnn = ncnn
        self._lock = threading.Lock()
        self._net = ncnn.Net()
        self._net.opt.use_vulkan_compute = False
        self._net.opt.num_threads = threads
        if self._net.load_param(str(model.param)) != 0 or self._net.load_model(str(model.bin)) != 0:
            raise EngineError("unsupported_model", f"ncnn could not load {model.param} / {model.bin}")

    def __call__(self, chw: np.ndarray) -> np.ndarray:
        with self._lock:
            extractor = self._net.create_extractor()
            # The Mat aliases the numpy buffer: both must stay alive until extract() has returned.
            source = np.ascontiguousarray(chw, dtype=np.float32)
            mat_in = self._ncnn.Mat(source)
            extractor.input(INPUT_BLOB, mat_in)
            status, mat_out = extractor.extract(OUTPUT_BLOB)
            if status != 0:
                raise EngineError("inference_failed", f"ncnn extract returned {status}")
            return np.array(mat_out, dtype=np.float32, copy=True)
