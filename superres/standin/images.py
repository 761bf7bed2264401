"""Decoding, checking and encoding images for AISuperResolution and basic processing (Pillow; no HTTP here)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, ImageStat, UnidentifiedImageError

from superres.standin.errors import CosError

MAX_SOURCE_BYTES = 5 * 1024 * 1024
# The documented cap is "1920px * 1080px". Whether a 1080x1920 portrait passes is not stated; we treat the cap
# as orientation-independent (long side <= 1920 and short side <= 1080) so portrait phone photos are accepted.
MAX_LONG_SIDE = 1920
MAX_SHORT_SIDE = 1080
JPEG_QUALITY = 95
# What ProcessResults reports as Quality for formats without a quality setting (PNG, BMP).
LOSSLESS_QUALITY = 100


@dataclass(frozen=True)
class InputLimits:
    """What a CI operation accepts as its source."""

    operation: str  # named in error messages
    max_bytes: int
    max_long_side: int
    max_short_side: int
    max_pixels: int | None = None


SUPER_RESOLUTION_LIMITS = InputLimits("AISuperResolution", MAX_SOURCE_BYTES, MAX_LONG_SIDE, MAX_SHORT_SIDE)
# Basic processing (imageMogr2) in a Pic-Operations rule: "images within 32 MB can be processed" (persistent
# processing, https://www.tencentcloud.com/document/product/1045/33695); input "width and height not exceeding
# 30,000 pixels, and the total number of pixels not exceeding 250 million" (pipeline operators,
# https://www.tencentcloud.com/document/product/1045/33727). A 4x super-resolved PNG is far over 5 MB, so its
# follow-up conversion must be held to these limits, not AISuperResolution's.
BASIC_LIMITS = InputLimits("basic image processing", 32 * 1024 * 1024, 30_000, 30_000, 250_000_000)

_EXIF_ORIENTATION = 0x0112
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp"}
# Result Format as CI reports it in ProcessResults (lowercase, as in the doc sample's <Format>png</Format>).
_CI_FORMAT_NAME = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp"}
# libjpeg's standard luminance quantisation table (quality 50), used to estimate a JPEG's quality.
_STD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip


@dataclass(frozen=True)
class SourceImage:
    """A decoded source plus the facts CI reports about it in ImageInfo."""

    image: Image.Image  # decoded, EXIF orientation applied
    format: str  # Pillow format name: JPEG, PNG, WEBP, BMP, GIF, ...
    width: int
    height: int
    quality: int
    ave: str  # average colour, 0xRRGGBB
    orientation: int  # EXIF orientation of the original, 1 when absent

    @property
    def has_alpha(self) -> bool:
        return self.image.mode in ("RGBA", "LA", "PA") or "transparency" in self.image.info


def check_source_size(size: int, limits: InputLimits = SUPER_RESOLUTION_LIMITS) -> None:
    if size > limits.max_bytes:
        raise CosError(
            400,
            "ImageTooLarge",
            f"source is {size / 1e6:.1f} MB; {limits.operation} accepts at most {limits.max_bytes // 2**20} MB",
        )


def load_source_image(data: bytes, limits: InputLimits = SUPER_RESOLUTION_LIMITS) -> SourceImage:
    """Decode `data`, enforcing `limits` (size before decoding, resolution before pixels)."""
    check_source_size(len(data), limits)
    try:
        with warnings.catch_warnings():
            # Our own limits are checked on the header before any pixel is decoded; Pillow's bomb warning (at
            # ~89 MP) would refuse sources basic processing accepts. Its hard error (~179 MP) still applies.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
            _check_resolution(*opened.size, limits)
            opened.load()
    except CosError:
        raise
    except Image.DecompressionBombError as exc:
        raise CosError(
            400, "ImageResolutionExceed", f"the source has more pixels than this stand-in decodes: {exc}"
        ) from None
    except UnidentifiedImageError:
        # Pillow's own text names its buffer object ("cannot identify image file <_io.BytesIO object at 0x...>").
        raise CosError(400, "InvalidImageFormat", f"the source is not an image: {_sniff(data)}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise CosError(400, "InvalidImageFormat", f"the source is not a decodable image: {exc}") from None
    orientation = int(opened.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    image = ImageOps.exif_transpose(opened) or opened
    return SourceImage(
        image=image,
        format=opened.format or "PNG",
        width=opened.width,
        height=opened.height,
        quality=_estimate_quality(opened),
        ave=_average_colour(image),
        orientation=orientation,
    )


def _sniff(data: bytes) -> str:
    """What the bytes look like, for the error message: the formats CI reads, and how the bytes start."""
    head = data[:16]
    shown = head.decode("ascii") if head.isascii() and head.decode("ascii").isprintable() else head.hex(" ")
    return f"no format CI reads (JPEG, PNG, BMP, WEBP, GIF, ...) starts with {shown!r}"


def _check_resolution(width: int, height: int, limits: InputLimits) -> None:
    long_side, short_side = max(width, height), min(width, height)
    if long_side > limits.max_long_side or short_side > limits.max_short_side:
        raise CosError(
            400,
            "ImageResolutionExceed",
            f"source is {width}x{height}; {limits.operation} accepts at most "
            f"{limits.max_long_side}x{limits.max_short_side} (either orientation)",
        )
    if limits.max_pixels is not None and width * height > limits.max_pixels:
        raise CosError(
            400,
            "ImageResolutionExceed",
            f"source is {width}x{height} = {width * height:,} pixels; {limits.operation} accepts at most "
            f"{limits.max_pixels:,}",
        )


def _estimate_quality(image: Image.Image) -> int:
    """JPEG: the libjpeg quality whose scaled table best matches the file's luminance table; others: 100."""
    tables = getattr(image, "quantization", None) if image.format == "JPEG" else None
    table = tables.get(0) if tables else None
    if not table or len(table) != 64:
        return 100
    scale = sum(q * 100 / s for q, s in zip(table, _STD_LUMINANCE, strict=True)) / 64
    quality = (200 - scale) / 2 if scale <= 100 else 5000 / scale
    return max(1, min(100, round(quality)))


def _average_colour(image: Image.Image) -> str:
    red, green, blue = (round(c) for c in ImageStat.Stat(image.convert("RGB")).mean)
    return f"0x{red:02x}{green:02x}{blue:02x}"


def conversion_format(source: SourceImage, requested: str | None) -> str:
    """imageMogr2's output format: the requested one, else the source's ("缺省为原图格式"); PNG for a source
    format this stand-in does not write (GIF, TIFF, ...)."""
    if requested:
        return requested
    return source.format if source.format in _MIME else "PNG"


def has_quality_setting(fmt: str) -> bool:
    """imageMogr2/quality "supports jpg, webp, tpg, heif, avif" (of which this stand-in writes JPEG and WEBP)."""
    return fmt in ("JPEG", "WEBP")


def encode_image(image: Image.Image, fmt: str, quality: int = JPEG_QUALITY) -> bytes:
    """Encode `image` as `fmt` (at `quality` for JPEG/WEBP), converting the mode where the format demands it."""
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image = image if image.mode in ("RGB", "L") else image.convert("RGB")
        image.save(buffer, "JPEG", quality=quality)
    elif fmt == "WEBP":
        image = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
        image.save(buffer, "WEBP", quality=quality)
    elif fmt == "BMP":
        image = image if image.mode in ("RGB", "L") else image.convert("RGB")
        image.save(buffer, "BMP")
    else:
        image = image if image.mode in ("RGB", "RGBA", "L", "LA") else image.convert("RGBA")
        image.save(buffer, "PNG")
    return buffer.getvalue()


def mime_type(fmt: str) -> str:
    return _MIME.get(fmt, "application/octet-stream")


def ci_format_name(fmt: str) -> str:
    return _CI_FORMAT_NAME.get(fmt, fmt.lower())
