"""The demo's before/after picture: a bicubic enlargement of the input next to the AI result at the same size, each
titled (method, input size, output size), the compared area outlined on both, and a labelled zoom of it below.

Readable on a laptop screen: the text is Pillow's scalable default font sized from the image (every line's ink is
at least 2% of the picture's height), not the 10 px bitmap font."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

ZOOM = 4
FONT_SHARE = 0.06  # font size as a share of the panel height: 2.5% to 3% of the picture's height in ink
MIN_FONT_PX = 14
OUTLINE = (230, 20, 20)


@dataclass(frozen=True)
class Label:
    text: str
    box: tuple[int, int, int, int]  # where it is drawn on the picture: left, top, right, bottom


@dataclass(frozen=True)
class Comparison:
    image: Image.Image
    labels: tuple[Label, ...]
    zoom_box: tuple[int, int, int, int]  # the outlined area, in the coordinates of the output image
    panels: tuple[tuple[int, int], ...]  # where each full image's top-left corner is on the picture


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's scalable default font (Pillow >= 10.1 with FreeType, which its wheels bundle)."""
    return ImageFont.load_default(size=size)


def zoom_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centre area the zoom strip enlarges: a quarter of the width, an eighth of the height."""
    crop_w, crop_h = max(1, width // ZOOM), max(1, height // (2 * ZOOM))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def side_by_side(before: Image.Image, after: Image.Image) -> Comparison:
    """Bicubic enlargement of `before` and the AI result `after`, at the same size, titled, with the zoomed area
    outlined on both and a x4 zoom of it below each."""
    after = after.convert("RGB")
    width, height = after.size
    bicubic = before.convert("RGB").resize(after.size, Image.Resampling.BICUBIC)
    sizes = f"{before.width}x{before.height} -> {width}x{height}"
    factor = round(width / before.width) if before.width else 0
    columns = (
        (bicubic, (f"before: bicubic x{factor}", sizes), f"bicubic: outlined area, zoom x{ZOOM}"),
        (after, (f"after: AISuperResolution x{factor}", sizes), f"AI: outlined area, zoom x{ZOOM}"),
    )
    face = font(max(MIN_FONT_PX, round(FONT_SHARE * height)))
    line_h = _line_height(face)
    pad = max(4, line_h // 5)
    texts = [text for _, titles, strip in columns for text in (*titles, strip)]
    column_w = max(width, max(_text_width(face, text) for text in texts) + 2 * pad)
    box = zoom_box(width, height)
    zoom_size = ((box[2] - box[0]) * ZOOM, (box[3] - box[1]) * ZOOM)
    panel_top = 2 * line_h + 2 * pad
    strip_label_top = panel_top + height + pad
    strip_top = strip_label_top + line_h + pad
    canvas = Image.new("RGB", (2 * column_w + pad, strip_top + zoom_size[1] + pad), "white")
    draw = ImageDraw.Draw(canvas)
    labels: list[Label] = []
    outline_w = max(2, width // 200)
    for column, (image, titles, strip) in enumerate(columns):
        x = column * (column_w + pad)
        for row, text in enumerate(titles):
            labels.append(_draw_text(draw, face, (x + pad, pad + row * line_h), text))
        canvas.paste(image, (x, panel_top))
        draw.rectangle((x + box[0] - outline_w, panel_top + box[1] - outline_w, x + box[2] + outline_w - 1,
                        panel_top + box[3] + outline_w - 1), outline=OUTLINE, width=outline_w)
        labels.append(_draw_text(draw, face, (x + pad, strip_label_top), strip))
        canvas.paste(image.crop(box).resize(zoom_size, Image.Resampling.NEAREST), (x, strip_top))
        draw.rectangle((x, strip_top, x + zoom_size[0] - 1, strip_top + zoom_size[1] - 1), outline=OUTLINE,
                       width=outline_w)
    return Comparison(canvas, tuple(labels), box, tuple((column * (column_w + pad), panel_top) for column in (0, 1)))


def _draw_text(draw: ImageDraw.ImageDraw, face: ImageFont.FreeTypeFont | ImageFont.ImageFont,
               where: tuple[int, int], text: str) -> Label:
    draw.text(where, text, fill="black", font=face)
    left, top, right, bottom = draw.textbbox(where, text, font=face)
    return Label(text, (int(left), int(top), int(right), int(bottom)))


def _line_height(face: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    """From the top of the tallest glyph to the bottom of the lowest, plus a little leading."""
    left, top, right, bottom = face.getbbox("Ay|gjp")
    return int((bottom - min(0, top)) * 1.15) + 1


def _text_width(face: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> int:
    left, _, right, _ = face.getbbox(text)
    return int(right - left)
