"""The `UploadResult` CI returns for `POST /<key>?image_process`, as typed objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .errors import CosCallError


class ImageInfo(NamedTuple):
    format: str | None
    width: int | None
    height: int | None
    quality: int | None


class OriginalInfo(NamedTuple):
    key: str | None
    location: str | None
    etag: str | None
    image: ImageInfo | None


class ProcessedObject(NamedTuple):
    key: str
    location: str | None
    size: int | None
    etag: str | None
    width: int | None
    height: int | None
    format: str | None

    def as_log(self) -> dict[str, object]:
        return dict(self._asdict())


class UploadResult(NamedTuple):
    original: OriginalInfo | None
    objects: tuple[ProcessedObject, ...]

    def find(self, key: str) -> ProcessedObject | None:
        """The result stored at `key` (order of results is undocumented, so match by key)."""
        wanted = key.lstrip("/")
        return next((obj for obj in self.objects if obj.key.lstrip("/") == wanted), None)


def parse_upload_result(data: object) -> UploadResult:
    """Parse the SDK's dict of the UploadResult XML; `Object` is a dict for one rule, a list for several."""
    if not isinstance(data, Mapping):
        raise CosCallError("CI answered without an UploadResult body", code="MalformedResponse", status=200)
    root = data.get("UploadResult", data)
    if not isinstance(root, Mapping):
        raise CosCallError("CI's UploadResult is not an XML element", code="MalformedResponse", status=200)
    results = root.get("ProcessResults")
    objects = results.get("Object") if isinstance(results, Mapping) else None
    if isinstance(objects, Mapping):
        objects = [objects]
    return UploadResult(
        original=_original(root.get("OriginalInfo")),
        objects=tuple(_object(item) for item in objects or () if isinstance(item, Mapping)),
    )


def _original(node: object) -> OriginalInfo | None:
    if not isinstance(node, Mapping):
        return None
    image = node.get("ImageInfo")
    return OriginalInfo(
        key=_str(node.get("Key")),
        location=_str(node.get("Location")),
        etag=_str(node.get("ETag")),
        image=ImageInfo(
            format=_str(image.get("Format")),
            width=_int(image.get("Width")),
            height=_int(image.get("Height")),
            quality=_int(image.get("Quality")),
        )
        if isinstance(image, Mapping)
        else None,
    )


def _object(node: Mapping[str, object]) -> ProcessedObject:
    return ProcessedObject(
        key=_str(node.get("Key")) or "",
        location=_str(node.get("Location")),
        size=_int(node.get("Size")),
        etag=_str(node.get("ETag")),
        width=_int(node.get("Width")),
        height=_int(node.get("Height")),
        format=_str(node.get("Format")),
    )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
