"""PSNR/SSIM on BT.601 Y in the BasicSR convention, and the bicubic LR maker."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from superres.sr.metrics import crop_to_multiple, downscale_bicubic, psnr_y, ssim_y


def noise(seed: int, shape: tuple[int, int, int] = (32, 40, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_identical_images_have_infinite_psnr_and_unit_ssim() -> None:
    image = noise(1)
    assert psnr_y(image, image.copy(), crop=2) == math.inf
    assert ssim_y(image, image.copy(), crop=2) == pytest.approx(1.0)


def test_psnr_is_on_studio_swing_y() -> None:
    # Black vs white: Y is 16 vs 235 (not 0 vs 255), so the error is 219 on every pixel.
    black = np.zeros((8, 8, 3), dtype=np.uint8)
    white = np.full((8, 8, 3), 255, dtype=np.uint8)
    assert psnr_y(black, white, crop=0) == pytest.approx(20 * math.log10(255 / 219))


def test_crop_ignores_the_border() -> None:
    a = np.full((16, 16, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[:2] = 0
    assert psnr_y(a, b, crop=2) == math.inf
    assert psnr_y(a, b, crop=1) < 30


def test_pil_images_and_arrays_give_the_same_result() -> None:
    a, b = noise(2), noise(3)
    assert psnr_y(Image.fromarray(a), Image.fromarray(b), 4) == pytest.approx(psnr_y(a, b, 4))
    assert ssim_y(Image.fromarray(a), b, 4) == pytest.approx(ssim_y(a, b, 4))


def test_size_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        psnr_y(noise(1), noise(1, (32, 41, 3)), crop=0)


def test_downscale_crops_hr_to_a_multiple_then_uses_pillow_bicubic() -> None:
    hr = Image.fromarray(noise(4, (30, 43, 3)))
    lr = downscale_bicubic(hr, 4)
    assert lr.size == (10, 7)
    assert crop_to_multiple(hr, 4).size == (40, 28)
    assert lr.tobytes() == hr.crop((0, 0, 40, 28)).resize((10, 7), Image.Resampling.BICUBIC).tobytes()
