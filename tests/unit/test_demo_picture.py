"""The demo's before/after picture reads on a laptop screen: every line of text is at least 2% of the picture's
height (measured on the rendered pixels), each panel is titled, the zoom strip is labelled with its factor and the
zoomed area is outlined on both full images."""

from __future__ import annotations

import pytest
from PIL import Image, ImageOps

from superres.demo.picture import OUTLINE, ZOOM, Comparison, side_by_side
from superres.photos import photo_path


def ink_height(picture: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Rows of non-white pixels inside `box`: what the text really occupies."""
    ink = ImageOps.invert(picture.crop(box).convert("L")).point(lambda v: 255 if v > 64 else 0).getbbox()
    assert ink is not None, f"no text drawn in {box}"
    return ink[3] - ink[1]


def assert_readable(comparison: Comparison) -> None:
    picture = comparison.image
    assert comparison.labels
    for label in comparison.labels:
        assert ink_height(picture, label.box) >= 0.02 * picture.height, (label, picture.size)
        assert label.box[2] <= picture.width, label  # not cut off at the right edge


def _photo(size: tuple[int, int]) -> Image.Image:
    with Image.open(photo_path()) as image:
        return image.convert("RGB").resize(size)


@pytest.mark.parametrize("magnify", [2, 4])
def test_text_is_at_least_two_percent_of_the_height_for_the_demo_photo(magnify: int) -> None:
    before = _photo((512, 512))
    comparison = side_by_side(before, before.resize((512 * magnify, 512 * magnify), Image.Resampling.LANCZOS))
    assert_readable(comparison)
    assert comparison.image.width >= 2 * 512 * magnify


@pytest.mark.parametrize("size", [(300, 900), (900, 120), (24, 16)], ids=["tall", "wide", "tiny"])
def test_text_stays_readable_and_uncut_for_any_shape(size: tuple[int, int]) -> None:
    before = _photo(size)
    assert_readable(side_by_side(before, before.resize((size[0] * 2, size[1] * 2))))


def test_each_panel_is_titled_with_method_and_sizes_and_the_strip_with_its_zoom_factor() -> None:
    before = _photo((512, 512))
    texts = [label.text for label in side_by_side(before, before.resize((2048, 2048))).labels]
    assert "before: bicubic x4" in texts and "after: AISuperResolution x4" in texts
    assert texts.count("512x512 -> 2048x2048") == 2
    assert sum(f"zoom x{ZOOM}" in text for text in texts) == 2


def test_the_zoomed_area_is_outlined_on_both_full_images() -> None:
    before = Image.new("RGB", (256, 256), (128, 128, 128))
    comparison = side_by_side(before, before.resize((512, 512)))
    left, top, right, bottom = comparison.zoom_box
    middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
    picture = comparison.image
    assert len(comparison.panels) == 2
    for x, y in comparison.panels:
        edges = [(x + left - 1, y + middle_y), (x + right, y + middle_y), (x + middle_x, y + top - 1),
                 (x + middle_x, y + bottom)]
        assert [picture.getpixel(edge) for edge in edges] == [OUTLINE] * 4
        assert picture.getpixel((x + middle_x, y + middle_y)) == (128, 128, 128)  # the area itself is not covered
        assert picture.getpixel((x + 2, y + 2)) == (128, 128, 128)
