"""Run a network over an image tile by tile, so memory is bounded by the tile size and not the image size.

The whole LR image is edge-padded by 12 px once (the upstream Vulkan shaders clamp at the border the same way);
each tile is cut with 12 px of context on every side, and the context's 12*scale px are cropped from the output.
Tiled and untiled results then differ by at most 1/255.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import EngineError

PAD = 12

# float32 (3, h, w) in 0..1 -> float32 (3, h*scale, w*scale), nominally 0..1
Network = Callable[[np.ndarray], np.ndarray]


def upscale_tiled(rgb: np.ndarray, scale: int, tile: int, network: Network) -> np.ndarray:
    """uint8 (H*scale, W*scale, 3) from uint8 (H, W, 3), running ``network`` on tiles of at most ``tile`` px."""
    height, width, _ = rgb.shape
    padded = np.pad(rgb, ((PAD, PAD), (PAD, PAD), (0, 0)), mode="edge")
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    for y0, y1 in _spans(height, tile):
        for x0, x1 in _spans(width, tile):
            patch = padded[y0 : y1 + 2 * PAD, x0 : x1 + 2 * PAD]
            result = network(_to_network_input(patch))
            expected = (3, (y1 - y0 + 2 * PAD) * scale, (x1 - x0 + 2 * PAD) * scale)
            if result.shape != expected:
                raise EngineError("inference_failed", f"network returned {result.shape}, expected {expected}")
            core = result[:, PAD * scale : -PAD * scale, PAD * scale : -PAD * scale]
            out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = _to_uint8(core).transpose(1, 2, 0)
    return out


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    # Equal-sized tiles rather than full tiles plus a sliver: a 1-px sliver would still cost 24 px of context.
    count = -(-length // tile)
    step = -(-length // count)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


def _to_network_input(patch: np.ndarray) -> np.ndarray:
    chw = np.ascontiguousarray(patch.transpose(2, 0, 1), dtype=np.float32)
    return np.divide(chw, 255.0, out=chw)


def _to_uint8(chw: np.ndarray) -> np.ndarray:
    return (np.clip(chw, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
