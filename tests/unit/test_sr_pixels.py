"""Every Pillow mode turns into 8-bit RGB for the network, with alpha split off when the image has any."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from superres.sr import EngineError, load_engine
from superres.sr.pixels import split_alpha


def gradient(mode: str = "RGB") -> Image.Image:
    return Image.merge("RGB", [Image.linear_gradient("L").resize((20, 12))] * 3).convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "F", "I"])
def test_opaque_modes_become_rgb_without_alpha(mode: str) -> None:
    rgb, alpha = split_alpha(gradient().convert(mode))
    assert rgb.mode == "RGB" and rgb.size == (20, 12)
    assert alpha is None


@pytest.mark.parametrize("mode", ["RGBA", "RGBa", "LA", "La", "PA"])
def test_alpha_modes_keep_their_alpha(mode: str) -> None:
    image = gradient("RGBA")
    image.putalpha(77)
    # Pillow drops alpha going RGBA -> La directly, so premultiplied La is made from LA.
    converted = image.convert("LA").convert("La") if mode == "La" else image.convert(mode)
    rgb, alpha = split_alpha(converted)
    assert rgb.mode == "RGB"
    assert alpha is not None and alpha.mode == "L"
    assert set(np.unique(np.asarray(alpha)).tolist()) == {77}


def test_palette_transparency_becomes_alpha() -> None:
    image = gradient().quantize(colors=8)
    image.info["transparency"] = 0
    _, alpha = split_alpha(image)
    assert alpha is not None
    assert 0 in np.asarray(alpha) and 255 in np.asarray(alpha)


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_is_scaled_to_eight_bit_not_clipped(mode: str) -> None:
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    image = Image.frombytes(mode, (3, 1), values.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    rgb, _ = split_alpha(image)
    assert np.asarray(rgb)[0, :, 0].tolist() == [0, 100, 255]


def test_float_image_in_zero_to_one_is_stretched() -> None:
    image = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    rgb, _ = split_alpha(image)
    assert np.asarray(rgb)[0, :, 0].tolist() == [0, 128, 255]


def test_empty_image_is_an_engine_error() -> None:
    with pytest.raises(EngineError) as info:
        split_alpha(Image.new("RGB", (0, 5)))
    assert info.value.code == "unsupported_image"


def test_bicubic_engine_resizes_alpha_separately_and_returns_rgba() -> None:
    image = gradient("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(image.size).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    out = load_engine("bicubic").upscale(image, 4)
    assert out.mode == "RGBA" and out.size == (80, 48)
    expected = image.getchannel("A").resize((80, 48), Image.Resampling.BICUBIC)
    assert out.getchannel("A").tobytes() == expected.tobytes()
