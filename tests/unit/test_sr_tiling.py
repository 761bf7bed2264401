"""Tiling with a stand-in network whose output does not depend on context, so any seam or offset shows exactly."""

from __future__ import annotations

import numpy as np
import pytest

from superres.sr import EngineError
from superres.sr.tiling import PAD, upscale_tiled


def nearest(scale: int):
    def network(chw: np.ndarray) -> np.ndarray:
        assert chw.dtype == np.float32 and chw.flags.c_contiguous
        return chw.repeat(scale, axis=1).repeat(scale, axis=2)

    return network


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("tile", [1, 5, 16, 37, 500])
@pytest.mark.parametrize("scale", [2, 4])
def test_tiles_reassemble_without_seams_or_offsets(rgb: np.ndarray, tile: int, scale: int) -> None:
    out = upscale_tiled(rgb, scale, tile, nearest(scale))
    assert np.array_equal(out, rgb.repeat(scale, axis=0).repeat(scale, axis=1))


def test_tiles_are_bounded_and_carry_context(rgb: np.ndarray) -> None:
    shapes: list[tuple[int, ...]] = []

    def network(chw: np.ndarray) -> np.ndarray:
        shapes.append(chw.shape)
        return nearest(2)(chw)

    upscale_tiled(rgb, 2, 16, network)

    # 37 rows -> 13+13+11, 53 columns -> 14+14+14+11: balanced, never a 1-px sliver; PAD px of context each side.
    cores = {(h - 2 * PAD, w - 2 * PAD) for _, h, w in shapes}
    assert cores == {(13, 14), (13, 11), (11, 14), (11, 11)}
    assert len(shapes) == 12


def test_network_output_is_clipped_and_rounded() -> None:
    def network(chw: np.ndarray) -> np.ndarray:
        levels = np.array([-0.2, 0.5, 1.3], dtype=np.float32)[:, None, None]
        return np.broadcast_to(levels, (3, chw.shape[1] * 2, chw.shape[2] * 2)).copy()

    out = upscale_tiled(np.zeros((1, 1, 3), dtype=np.uint8), 2, 8, network)
    assert out[0, 0].tolist() == [0, 128, 255]  # 0.5 * 255 + 0.5 = 128.0


def test_wrong_network_output_shape_is_an_engine_error(rgb: np.ndarray) -> None:
    with pytest.raises(EngineError, match="expected"):
        upscale_tiled(rgb, 2, 64, nearest(4))
