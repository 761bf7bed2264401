"""Super-resolution engines: SPAN ch48 on onnxruntime or ncnn (CPU), and plain bicubic for load tests.

    engine = load_engine()                 # "span", onnxruntime, all cores; nothing is loaded yet
    big = engine.upscale(image, 2)         # any Pillow mode in; RGB, or RGBA when the input had alpha

Quality metrics for benchmarks and tests live in ``superres.sr.metrics``.
"""

from __future__ import annotations

from .engine import ENGINE_NAMES, Engine, load_engine
from .errors import EngineError

__all__ = ["ENGINE_NAMES", "Engine", "EngineError", "load_engine"]
