"""COS's HTTP rules for object reads and writes (pure logic): Range, conditional requests, stored headers,
storage classes, `response-*` overrides and the user-metadata cap."""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from superres.standin.errors import CosError, invalid_argument
from superres.standin.store import ObjectInfo

# Headers COS stores with an object and returns on GET/HEAD.
STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
# Query parameters a GET may use to override response headers (COS GET Object).
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
STORAGE_CLASSES = (
    "STANDARD",
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ARCHIVE",
    "DEEP_ARCHIVE",
    "MAZ_STANDARD",
    "MAZ_STANDARD_IA",
    "MAZ_INTELLIGENT_TIERING",
)
MAX_USER_META_BYTES = 2 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_HUGE = 1 << 63  # a range bound with more digits than any object size


def user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """The x-cos-meta-* headers, refused above COS's 2 KB total (names without the prefix, plus values)."""
    meta = {k: v for k, v in headers.items() if k.startswith("x-cos-meta-")}
    total = sum(len(k[len("x-cos-meta-") :].encode()) + len(v.encode("utf-8", "replace")) for k, v in meta.items())
    if total > MAX_USER_META_BYTES:
        raise CosError(
            400, "MetadataTooLarge", f"user metadata is {total} bytes; the limit is {MAX_USER_META_BYTES} bytes"
        )
    return meta


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in STORED_HEADERS if name in headers}


def storage_class(headers: Mapping[str, str]) -> str:
    value = headers.get("x-cos-storage-class", "STANDARD").upper()
    if value not in STORAGE_CLASSES:
        allowed = ", ".join(STORAGE_CLASSES)
        raise CosError(400, "InvalidStorageClass", f"storage class {value!r} is not one of {allowed}")
    return value


def _bound(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _HUGE


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-`, `bytes=-n` -> inclusive (start, end); None = whole object.

    As COS: a malformed or multi-range header is ignored (whole object); a first byte at or past the end, or an
    empty suffix, is 416; an end before the start is ignored.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:
        suffix = _bound(match[2])
        if suffix == 0 or size == 0:
            raise invalid_range(size)
        return max(0, size - suffix), size - 1
    start = _bound(match[1])
    if start >= size:
        raise invalid_range(size)
    end = _bound(match[2]) if match[2] else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


def invalid_range(size: int) -> CosError:
    return CosError(
        416,
        "InvalidRange",
        f"The requested range is not satisfiable (object size {size}).",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}


def _http_date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # an unparseable date is ignored, as HTTP says


def check_conditions(headers: Mapping[str, str], info: ObjectInfo) -> int | None:
    """If-Match / If-Unmodified-Since -> 412; If-None-Match / If-Modified-Since -> 304; None: serve."""
    etag = info.etag.strip('"')
    modified = int(info.last_modified)
    if_match = headers.get("if-match")
    if if_match is not None:
        if etag not in _etags(if_match) and "*" not in _etags(if_match):
            return 412
    elif (since := headers.get("if-unmodified-since")) is not None:
        stamp = _http_date(since)
        if stamp is not None and modified > stamp:
            return 412
    if_none = headers.get("if-none-match")
    if if_none is not None:
        if etag in _etags(if_none) or "*" in _etags(if_none):
            return 304
    elif (since := headers.get("if-modified-since")) is not None:
        stamp = _http_date(since)
        if stamp is not None and modified <= stamp:
            return 304
    return None


def object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {
        "Content-Type": info.content_type,
        "Content-Length": str(info.size),
        "ETag": info.etag,
        "Last-Modified": info.last_modified_http,
        "Accept-Ranges": "bytes",
    }
    headers.update({"-".join(p.capitalize() for p in k.split("-")): v for k, v in info.headers.items()})
    if info.storage_class != "STANDARD":
        headers["x-cos-storage-class"] = info.storage_class
    if info.tags:
        headers["x-cos-tagging-count"] = str(len(info.tags))
    headers.update(info.meta)
    # Header values go out as bytes: send them as the UTF-8 they arrived in (Starlette encodes latin-1).
    return {name: _latin1(value) for name, value in headers.items()}


def apply_overrides(headers: dict[str, str], params: Mapping[str, str]) -> None:
    for param, header in RESPONSE_OVERRIDES.items():
        if param in params:
            value = params[param]
            if "\r" in value or "\n" in value:
                raise invalid_argument(f"{param} must not contain line breaks")
            headers[header] = _latin1(value)


def _latin1(value: str) -> str:
    return value.encode("utf-8", "replace").decode("latin-1")
