"""Image-quality metrics in the BasicSR convention, and the bicubic LR maker they are measured against.

PSNR and SSIM are computed on Y of BT.601 (studio swing, 16..235, not rounded) with ``crop`` px removed from each
border, as the SR literature reports them. SSIM uses an 11x11 Gaussian window, sigma 1.5.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ImageLike = Image.Image | np.ndarray

# BT.601 RGB (0..1) -> Y (16..235), as BasicSR's rgb2ycbcr(y_only=True).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def psnr_y(a: ImageLike, b: ImageLike, crop: int) -> float:
    """PSNR in dB between the Y channels; ``inf`` for identical images."""
    ya, yb = _y_pair(a, b, crop)
    mse = float(np.mean((ya - yb) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim_y(a: ImageLike, b: ImageLike, crop: int) -> float:
    """Mean SSIM between the Y channels (Gaussian 11x11, sigma 1.5, population covariance)."""
    from skimage.metrics import structural_similarity  # heavy import, only benchmarks and tests need it

    ya, yb = _y_pair(a, b, crop)
    return float(
        structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0)
    )


def crop_to_multiple(image: Image.Image, scale: int) -> Image.Image:
    """``image`` with its right/bottom edges trimmed so both sides are multiples of ``scale``."""
    return image.crop((0, 0, image.width - image.width % scale, image.height - image.height % scale))


def downscale_bicubic(image: ImageLike, scale: int) -> Image.Image:
    """The LR image: HR cropped to a multiple of ``scale``, then Pillow BICUBIC (antialiased, like MATLAB imresize).

    Compare the SR output with ``crop_to_multiple(hr, scale)``, which has exactly ``scale`` times the LR size.
    """
    hr = crop_to_multiple(_as_image(image), scale)
    return hr.resize((hr.width // scale, hr.height // scale), Image.Resampling.BICUBIC)


def _y_pair(a: ImageLike, b: ImageLike, crop: int) -> tuple[np.ndarray, np.ndarray]:
    ya, yb = _y_channel(a), _y_channel(b)
    if ya.shape != yb.shape:
        raise ValueError(f"images differ in size: {ya.shape[::-1]} vs {yb.shape[::-1]}")
    if crop:
        ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
    return ya, yb


def _y_channel(image: ImageLike) -> np.ndarray:
    rgb = np.asarray(_as_image(image).convert("RGB"), dtype=np.float64) / 255.0
    return rgb @ _Y_WEIGHTS + 16.0


def _as_image(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 array, got {array.dtype}")
    return Image.fromarray(array)
