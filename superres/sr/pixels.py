"""Any Pillow image in, 8-bit RGB (+ an optional alpha plane) for the network, and back out again.

The networks see RGB only; alpha is resized separately with bicubic and reattached, so transparent uploads stay
transparent. High-bit-depth greyscale is scaled down to 8 bits instead of being clipped (Pillow's own
``convert("RGB")`` clips 16-bit values at 255, which turns most 16-bit images white).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .errors import EngineError

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

RgbUpscaler = Callable[[Image.Image, int], Image.Image]


def upscale_keeping_alpha(image: Image.Image, scale: int, upscale_rgb: RgbUpscaler) -> Image.Image:
    """``upscale_rgb`` applied to the colour of ``image``; RGBA out when the input had alpha, else RGB."""
    rgb, alpha = split_alpha(image)
    size = (rgb.width * scale, rgb.height * scale)
    out = upscale_rgb(rgb, scale)
    if out.size != size or out.mode != "RGB":
        raise EngineError("inference_failed", f"upscaler returned {out.mode} {out.size}, expected RGB {size}")
    if alpha is not None:
        out.putalpha(alpha.resize(size, Image.Resampling.BICUBIC))
    return out


def split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """(8-bit RGB image, 8-bit alpha plane or None) for any Pillow mode."""
    if image.width < 1 or image.height < 1:
        raise EngineError("unsupported_image", f"image has no pixels ({image.width}x{image.height})")
    if _has_alpha(image):
        rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    if image.mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_l(image).convert("RGB"), None
    try:
        return image.convert("RGB"), None
    except (ValueError, OSError) as exc:
        raise EngineError("unsupported_image", f"cannot convert a {image.mode} image to RGB: {exc}") from exc


def _has_alpha(image: Image.Image) -> bool:
    # Palette and RGB/L images can carry transparency as a tRNS entry rather than a channel.
    return image.mode in _ALPHA_MODES or (image.mode in ("P", "RGB", "L") and "transparency" in image.info)


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16"):
        values = values / 257.0
    elif image.mode == "I":
        # 16-bit PNGs open as "I" in some Pillow versions; 8-bit data put in "I" stays as it is.
        values = values / 257.0 if values.max(initial=0) > 255 else values
    elif image.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0  # float images are usually 0..1
    values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), "L")
