"""The real SPAN ch48 engine on real photos (skimage.data), both runtimes. Small crops keep this well under a minute."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import skimage.data
from PIL import Image

from superres.sr import ENGINE_NAMES, EngineError, load_engine
from superres.sr.metrics import downscale_bicubic, psnr_y

# Measured on these 128x128 crops (astronaut / coffee): SPAN beats bicubic by 3.3 / 4.5 dB at x2 and 2.6 / 5.1 dB
# at x4. The thresholds leave room for runtime/version noise while still failing on a broken graph or pipeline
# (which lands at or below bicubic).
MIN_GAIN_DB = {2: 1.5, 4: 1.0}
CROPS = {"astronaut": (160, 60, 288, 188), "coffee": (200, 100, 328, 228)}


def photo(name: str, box: tuple[int, int, int, int]) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).crop(box)


def max_abs_diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


@pytest.fixture(scope="module")
def span() -> object:
    return load_engine("span", backend="onnxruntime", threads=2)


@pytest.fixture(scope="module")
def span_ncnn() -> object:
    return load_engine("span", backend="ncnn", threads=2)


@pytest.fixture(scope="module")
def small_lr() -> Image.Image:
    return photo("astronaut", (150, 40, 222, 98))  # 72x58: odd-ish size, face and helmet edges


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", sorted(CROPS))
def test_span_output_is_exact_size_and_beats_bicubic(span, name: str, scale: int) -> None:
    hr = photo(name, CROPS[name])
    lr = downscale_bicubic(hr, scale)

    sr = span.upscale(lr, scale)
    bicubic = load_engine("bicubic").upscale(lr, scale)

    assert sr.mode == "RGB"
    assert sr.size == (lr.width * scale, lr.height * scale) == hr.size
    gain = psnr_y(sr, hr, crop=scale) - psnr_y(bicubic, hr, crop=scale)
    assert gain >= MIN_GAIN_DB[scale], f"SPAN x{scale} only {gain:.2f} dB over bicubic on {name}"


def test_engine_names_say_model_and_runtime(span, span_ncnn) -> None:
    assert span.name == "span-ch48/onnxruntime"
    assert span_ncnn.name == "span-ch48/ncnn"
    assert load_engine("bicubic").name == "bicubic"
    assert ENGINE_NAMES == ("span", "bicubic")


@pytest.mark.parametrize("scale", [2, 4])
def test_onnxruntime_and_ncnn_agree_within_rounding(span, span_ncnn, small_lr: Image.Image, scale: int) -> None:
    assert max_abs_diff(span.upscale(small_lr, scale), span_ncnn.upscale(small_lr, scale)) <= 2


@pytest.mark.parametrize("backend", ["onnxruntime", "ncnn"])
def test_tiled_output_matches_untiled(small_lr: Image.Image, backend: str) -> None:
    tiled = load_engine(backend=backend, threads=2, tile=24).upscale(small_lr, 2)
    whole = load_engine(backend=backend, threads=2, tile=1024).upscale(small_lr, 2)
    assert max_abs_diff(tiled, whole) <= 2


def test_rgba_input_keeps_its_alpha_and_size(span, small_lr: Image.Image) -> None:
    alpha = Image.linear_gradient("L").resize(small_lr.size)
    rgba = small_lr.copy()
    rgba.putalpha(alpha)

    out = span.upscale(rgba, 2)

    assert out.mode == "RGBA"
    assert out.size == (small_lr.width * 2, small_lr.height * 2)
    expected_alpha = alpha.resize(out.size, Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(out.getchannel("A")), np.asarray(expected_alpha))
    assert max_abs_diff(out.convert("RGB"), span.upscale(small_lr, 2)) == 0


def test_greyscale_input_comes_out_grey_rgb(span, small_lr: Image.Image) -> None:
    out = np.asarray(span.upscale(small_lr.convert("L"), 2), dtype=np.int16)

    assert out.shape == (small_lr.height * 2, small_lr.width * 2, 3)
    assert np.abs(out[..., 0] - out[..., 1]).max() <= 2
    assert np.abs(out[..., 1] - out[..., 2]).max() <= 2


def test_sixteen_bit_greyscale_is_scaled_not_clipped(span, small_lr: Image.Image) -> None:
    grey8 = np.asarray(small_lr.convert("L"), dtype=np.uint16)
    grey16 = Image.fromarray(grey8 * 257)  # Pillow: mode I;16

    out = span.upscale(grey16, 2)

    assert out.mode == "RGB"
    assert abs(float(np.asarray(out).mean()) - float(grey8.mean())) < 3


def test_palette_with_transparency_comes_out_rgba(span, small_lr: Image.Image) -> None:
    palette = small_lr.quantize(colors=16)
    palette.info["transparency"] = 0

    out = span.upscale(palette, 4)

    assert out.mode == "RGBA"
    assert out.size == (small_lr.width * 4, small_lr.height * 4)


@pytest.mark.parametrize("engine_fixture", ["span", "span_ncnn"])
def test_concurrent_calls_match_sequential(request, engine_fixture: str, small_lr: Image.Image) -> None:
    engine = request.getfixturevalue(engine_fixture)
    expected = np.asarray(engine.upscale(small_lr, 2))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: np.asarray(engine.upscale(small_lr, 2)), range(4)))

    assert all(np.array_equal(result, expected) for result in results)


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_engine_is_exactly_pillow_bicubic(small_lr: Image.Image, scale: int) -> None:
    size = (small_lr.width * scale, small_lr.height * scale)
    out = load_engine("bicubic").upscale(small_lr, scale)
    assert out.tobytes() == small_lr.resize(size, Image.Resampling.BICUBIC).tobytes()


def test_unknown_engine_name_is_a_clear_engine_error() -> None:
    with pytest.raises(EngineError, match=r"unknown engine 'esrgan'.*'span', 'bicubic'") as info:
        load_engine("esrgan")
    assert info.value.code == "unknown_engine"


@pytest.mark.parametrize("scale", [1, 3, 8])
def test_unsupported_scale_is_an_engine_error(span, small_lr: Image.Image, scale: int) -> None:
    with pytest.raises(EngineError) as info:
        span.upscale(small_lr, scale)
    assert info.value.code == "unsupported_scale"
