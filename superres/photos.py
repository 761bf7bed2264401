"""Real photos shipped inside scikit-image (no download): the demo's upload and the replay seeds."""

from __future__ import annotations

import io
from importlib.util import find_spec
from pathlib import Path

from PIL import Image

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")
_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP"}


def photo_path(name: str = "astronaut.png") -> Path:
    spec = find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed: run `make venv` (it ships the demo photos)")
    path = Path(spec.submodule_search_locations[0]) / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from scikit-image's data folder")
    return path


def photo_bytes(key: str, photo: str = "astronaut.png", max_side: int | None = None) -> tuple[bytes, str]:
    """The photo encoded for `key`'s extension (JPEG when unknown), and its content type."""
    with Image.open(photo_path(photo)) as image:
        image = image.convert("RGB")
        if max_side and max(image.size) > max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        fmt = _FORMATS.get(key.rpartition(".")[2].lower(), "JPEG")
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **({"quality": 92} if fmt in ("JPEG", "WEBP") else {}))
    return buffer.getvalue(), Image.MIME[fmt]
