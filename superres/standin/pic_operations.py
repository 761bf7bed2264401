"""Parsing and validation of the `Pic-Operations` header and of AISuperResolution parameters (pure logic)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from superres.standin.errors import CosError, invalid_argument
from superres.standin.store import validate_key

MAX_RULES = 5
MAGNIFY_VALUES = (2, 4)
CI_PROCESS = "AISuperResolution"

# Output format chosen by the fileid's extension; anything else keeps the source's format.
EXTENSION_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-\d+$")


@dataclass(frozen=True)
class SuperResolutionRule:
    key: str  # where the result is stored, resolved against the source key's folder
    magnify: int
    bucket: str | None  # destination BucketName-APPID; None = the source's bucket
    output_format: str | None  # Pillow format name forced by the fileid extension, else None


@dataclass(frozen=True)
class PicOperations:
    is_pic_info: bool
    rules: tuple[SuperResolutionRule, ...]


def _invalid_pic_operations(message: str) -> CosError:
    return CosError(400, "InvalidPicOperations", message)


def parse_magnify(value: str | None) -> int:
    """`magnify` query/rule parameter: absent -> 2; only 2 and 4 are valid in every doc revision."""
    if value is None or value == "":
        return 2
    if value.strip() not in {str(m) for m in MAGNIFY_VALUES}:
        raise invalid_argument(f"magnify must be 2 or 4, got {value!r}")
    return int(value)


def parse_rule(rule: str) -> int:
    """`ci-process=AISuperResolution[&magnify=N]` -> magnify."""
    params = dict(parse_qsl(rule.strip(), keep_blank_values=True))
    process = params.pop("ci-process", None)
    if process != CI_PROCESS:
        shown = process if process is not None else rule
        raise invalid_argument(
            f"unsupported processing rule {shown!r}: this stand-in implements only ci-process={CI_PROCESS}"
        )
    magnify = parse_magnify(params.pop("magnify", None))
    if params:
        raise invalid_argument(f"unknown AISuperResolution parameter(s): {', '.join(sorted(params))}")
    return magnify


def resolve_fileid(fileid: str, source_key: str) -> str:
    """A rule's fileid -> object key. Leading '/' = absolute in the bucket, else relative to the source's folder.

    '.' and '..' segments are resolved; a path that climbs above the bucket root is refused rather than clamped,
    since silently writing somewhere else than asked is worse than an error.
    """
    if not fileid:
        raise invalid_argument("fileid must not be empty")
    if fileid.endswith("/"):
        raise invalid_argument(f"fileid must not end with '/': {fileid!r}")
    if fileid.startswith("/"):
        base: list[str] = []
        path = fileid[1:]
    else:
        base = source_key.split("/")[:-1]
        path = fileid
    segments = list(base)
    for segment in path.split("/"):
        if segment == ".":
            continue
        if segment == "..":
            if not segments:
                raise invalid_argument(f"fileid {fileid!r} escapes the bucket root")
            segments.pop()
            continue
        segments.append(segment)
    key = "/".join(segments)
    if not key or key.endswith("/") or key.startswith("/"):
        raise invalid_argument(f"fileid {fileid!r} does not name an object")
    validate_key(key)
    return key


def _output_format(key: str) -> str | None:
    dot = key.rfind(".")
    if dot < 0 or "/" in key[dot:]:
        return None
    return EXTENSION_FORMATS.get(key[dot:].lower())


def _parse_one_rule(raw: object, source_key: str) -> SuperResolutionRule:
    if not isinstance(raw, dict):
        raise _invalid_pic_operations("each rule must be a JSON object")
    fileid, rule, bucket = raw.get("fileid"), raw.get("rule"), raw.get("bucket")
    if not isinstance(fileid, str):
        raise _invalid_pic_operations("each rule needs a string 'fileid'")
    if not isinstance(rule, str):
        raise _invalid_pic_operations("each rule needs a string 'rule'")
    if bucket is not None and (not isinstance(bucket, str) or not _BUCKET.match(bucket)):
        raise invalid_argument(f"rule bucket must be BucketName-APPID, got {bucket!r}")
    magnify = parse_rule(rule)
    key = resolve_fileid(fileid, source_key)
    return SuperResolutionRule(key=key, magnify=magnify, bucket=bucket or None, output_format=_output_format(key))


def parse_pic_operations(header: str, source_key: str) -> PicOperations:
    """Validate the whole header up front, so a bad rule refuses the request before anything is stored."""
    try:
        doc = json.loads(header)
    except ValueError as exc:
        raise _invalid_pic_operations(f"Pic-Operations is not valid JSON: {exc}") from None
    except RecursionError:
        raise _invalid_pic_operations("Pic-Operations is nested too deeply") from None
    if not isinstance(doc, dict):
        raise _invalid_pic_operations("Pic-Operations must be a JSON object")
    is_pic_info = doc.get("is_pic_info", 0)
    if is_pic_info not in (0, 1, "0", "1") or isinstance(is_pic_info, bool):
        raise _invalid_pic_operations(f"is_pic_info must be 0 or 1, got {is_pic_info!r}")
    rules = doc.get("rules", [])
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise _invalid_pic_operations("rules must be a JSON array")
    if len(rules) > MAX_RULES:
        raise _invalid_pic_operations(
            f"-60997: the number of image processing rules exceeds the limit: {len(rules)} given, "
            f"at most {MAX_RULES} allowed"
        )
    return PicOperations(
        is_pic_info=int(is_pic_info) == 1,
        rules=tuple(_parse_one_rule(rule, source_key) for rule in rules),
    )
