"""The Engine protocol, the two engines (SPAN ch48 and plain bicubic) and ``load_engine``."""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
from PIL import Image

from .errors import EngineError
from .pixels import upscale_keeping_alpha
from .runners import DEFAULT_TILE, check_backend_installed, runner_for
from .tiling import upscale_tiled
from .weights import SCALES, check_scale, span_model

ENGINE_NAMES = ("span", "bicubic")


class Engine(Protocol):
    name: str

    def upscale(self, image: Image.Image, scale: int) -> Image.Image:
        """``image`` (any mode) magnified ``scale`` times: RGB, or RGBA when it had alpha."""
        ...


class SpanEngine:
    """SPAN ch48 (NTIRE 2024 efficient-SR winner). The session is built on the first call for each scale."""

    def __init__(self, backend: str, threads: int, tile: int) -> None:
        self.backend = backend
        self.threads = threads
        self.tile = tile
        runtime = "ncnn" if backend == "ncnn" else "onnxruntime"
        self.name = f"span-ch48/{runtime}"

    def upscale(self, image: Image.Image, scale: int) -> Image.Image:
        check_scale(scale)
        return upscale_keeping_alpha(image, scale, self._upscale_rgb)

    def _upscale_rgb(self, rgb: Image.Image, scale: int) -> Image.Image:
        network = runner_for(self.backend, scale, self.threads)
        return Image.fromarray(upscale_tiled(np.asarray(rgb), scale, self.tile, network), "RGB")

    def __repr__(self) -> str:
        return f"SpanEngine(name={self.name!r}, backend={self.backend!r}, threads={self.threads}, tile={self.tile})"


class BicubicEngine:
    """Pillow bicubic: for load tests that need a fast stand-in, and only when asked for by name."""

    name = "bicubic"

    def upscale(self, image: Image.Image, scale: int) -> Image.Image:
        check_scale(scale)
        return upscale_keeping_alpha(image, scale, _bicubic_rgb)

    def __repr__(self) -> str:
        return "BicubicEngine()"


def _bicubic_rgb(rgb: Image.Image, scale: int) -> Image.Image:
    return rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.BICUBIC)


def load_engine(
    name: str = "span", *, backend: str = "auto", threads: int | None = None, tile: int | None = None
) -> Engine:
    """An engine by name. Cheap: only checks that weights and runtime are installed; the first call loads them.

    backend (span only): "auto" = onnxruntime, on a GPU provider when onnxruntime reports one, else CPU;
    "onnxruntime" = onnxruntime on CPU; "ncnn" = ncnn on CPU. threads defaults to os.cpu_count();
    tile is the LR tile side (default 256 for onnxruntime, 128 for ncnn).
    """
    if name == "bicubic":
        return BicubicEngine()
    if name != "span":
        raise EngineError("unknown_engine", f"unknown engine {name!r}; choose one of {ENGINE_NAMES}")
    check_backend_installed(backend)
    for scale in SCALES:
        span_model(scale)  # fail now, with the install hint, rather than on the first upload
    return SpanEngine(
        backend, _positive("threads", threads, os.cpu_count() or 1), _positive("tile", tile, DEFAULT_TILE[backend])
    )


def _positive(option: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EngineError("invalid_option", f"{option} must be a positive integer, got {value!r}")
    return value
