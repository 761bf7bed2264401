"""Parsing and validation of the `Pic-Operations` header and of its processing rules (pure logic).

What Cloud Infinite documents, and what this stand-in therefore implements:
- Pic-Operations is `{"is_pic_info": 0|1, "rules": [{"bucket"?, "fileid", "rule"}, ...]}`; "rules: processing
  rules (up to five rules are supported). Each rule corresponds to one processing result."
  (https://www.tencentcloud.com/document/product/1045/33695, https://cloud.tencent.com/document/api/1246/45383)
  More than five: InvalidPicOperations (-60997, "the number of image processing rules exceeds the limit").
- A rule is either `ci-process=AISuperResolution[&magnify=2|4]` (spec: ai-super-resolution-api.md) or basic
  processing `imageMogr2/...`. Of imageMogr2 this stand-in implements the two steps the function needs:
  `format/<Format>` ("jpg, bmp, gif, png, webp, yjpeg ...; yjpeg is an optimised jpeg, in substance jpg; default:
  the source's format", https://cloud.tencent.com/document/api/1246/45373, list of output formats in
  https://cloud.tencent.com/document/api/1246/109197) and `quality/<Quality>` ("absolute quality, 0 - 100, default
  the source's quality; the smaller of the source's quality and the given one; '!' after the value forces it, e.g.
  90!", https://www.tencentcloud.com/zh/document/api/1045/33717). Other imageMogr2 steps and formats CI documents
  (thumbnail, crop, avif, heif, ...) are refused with InvalidArgument naming what the stand-in implements.
- Basic steps chain with the pipeline operator `|`, "up to 10 operations ... performed in sequence"
  (https://www.tencentcloud.com/document/product/1045/33727). The pipeline doc and its examples cover imageMogr2 and
  watermark steps only; no doc shows `ci-process=...` inside a pipeline, and a public project calling the real
  service reports that `imageMogr2|AISuperResolution` is refused ("AI 超分不支持管道链（实测
  imageMogr2|AISuperResolution 的 magnify 参数被拒），因此分两步：先超分出 PNG，再对成品 POST ?image_process
  持久化转码"). So AISuperResolution
  chained with anything by `|` is refused with InvalidArgument: convert the result with a second image_process call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from superres.standin.errors import CosError, invalid_argument
from superres.standin.store import validate_key

MAX_RULES = 5
MAX_PIPELINE_STEPS = 10
MAGNIFY_VALUES = (2, 4)
CI_PROCESS = "AISuperResolution"
BASIC_PROCESS = "imageMogr2"
MAX_QUALITY = 100
# imageMogr2/format values CI documents -> Pillow format this stand-in writes (None: documented, not implemented).
FORMATS: dict[str, str | None] = {
    "jpg": "JPEG", "jpeg": "JPEG", "yjpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP",
    "gif": None, "apng": None, "tiff": None, "avif": None, "heif": None, "heic": None, "tpg": None, "psd": None,
}  # fmt: skip
IMPLEMENTED_FORMATS = tuple(name for name, fmt in FORMATS.items() if fmt)
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-\d+$")
_QUALITY = re.compile(r"^(\d{1,3})(!?)$")


@dataclass(frozen=True)
class Conversion:
    """A basic imageMogr2 format/quality conversion of the source, size unchanged."""

    format: str | None  # Pillow format name; None = keep the source's format
    quality: int | None  # None = the source's quality
    quality_forced: bool = False  # "80!": exactly 80; "80": min(source quality, 80)

    def effective_quality(self, source_quality: int) -> int:
        if self.quality is None:
            return source_quality
        return self.quality if self.quality_forced else min(self.quality, source_quality)


@dataclass(frozen=True)
class ProcessingRule:
    """One Pic-Operations rule: exactly one of `magnify` (AISuperResolution) and `conversion` is set."""

    key: str  # where the result is stored, resolved against the source key's folder
    bucket: str | None  # destination BucketName-APPID; None = the source's bucket
    magnify: int | None = None
    conversion: Conversion | None = None

    @property
    def is_super_resolution(self) -> bool:
        return self.magnify is not None


@dataclass(frozen=True)
class PicOperations:
    is_pic_info: bool
    rules: tuple[ProcessingRule, ...]

    @property
    def has_super_resolution(self) -> bool:
        """Whether the source must meet AISuperResolution's input limits (stricter than basic processing's)."""
        return any(rule.is_super_resolution for rule in self.rules)


def _invalid_pic_operations(message: str) -> CosError:
    return CosError(400, "InvalidPicOperations", message)


def parse_magnify(value: str | None) -> int:
    """`magnify` query/rule parameter: absent -> 2; only 2 and 4 are valid in every doc revision."""
    if value is None or value == "":
        return 2
    if value.strip() not in {str(m) for m in MAGNIFY_VALUES}:
        raise invalid_argument(f"magnify must be 2 or 4, got {value!r}")
    return int(value)


def _parse_super_resolution(rule: str) -> int:
    """`ci-process=AISuperResolution[&magnify=N]` -> magnify."""
    params = dict(parse_qsl(rule.strip(), keep_blank_values=True))
    process = params.pop("ci-process", None)
    if process != CI_PROCESS:
        shown = process if process is not None else rule
        raise invalid_argument(
            f"unsupported processing rule {shown!r}: this stand-in implements ci-process={CI_PROCESS} and "
            f"{BASIC_PROCESS}/format/<{'|'.join(IMPLEMENTED_FORMATS)}>/quality/<0-100>"
        )
    magnify = parse_magnify(params.pop("magnify", None))
    if params:
        raise invalid_argument(f"unknown AISuperResolution parameter(s): {', '.join(sorted(params))}")
    return magnify


def _parse_format(value: str) -> str:
    name = value.strip().lower()
    if name not in FORMATS:
        raise invalid_argument(f"{BASIC_PROCESS}/format/{value}: unknown format; use one of {', '.join(FORMATS)}")
    fmt = FORMATS[name]
    if fmt is None:
        raise invalid_argument(
            f"{BASIC_PROCESS}/format/{value} is documented by CI but not implemented by this stand-in; "
            f"it writes {', '.join(IMPLEMENTED_FORMATS)}"
        )
    return fmt


def _parse_quality(value: str) -> tuple[int, bool]:
    match = _QUALITY.match(value.strip())
    if not match or int(match.group(1)) > MAX_QUALITY:
        raise invalid_argument(
            f"{BASIC_PROCESS}/quality/{value}: quality must be an integer from 0 to {MAX_QUALITY}, optionally "
            "followed by '!' to force it (e.g. 80 or 80!)"
        )
    return int(match.group(1)), match.group(2) == "!"


def _apply_basic_step(step: str, conversion: Conversion) -> Conversion:
    """One `imageMogr2/<name>/<value>/...` step on top of the earlier steps of the pipeline."""
    parts = step.strip().split("/")
    if parts[0] != BASIC_PROCESS or len(parts) < 2:
        raise invalid_argument(
            f"unsupported processing rule {step!r}: this stand-in implements ci-process={CI_PROCESS} and "
            f"{BASIC_PROCESS}/format/<{'|'.join(IMPLEMENTED_FORMATS)}>/quality/<0-100>"
        )
    fmt, quality, forced = conversion.format, conversion.quality, conversion.quality_forced
    names = iter(parts[1:])
    for name in names:
        if name not in ("format", "quality"):
            raise invalid_argument(
                f"{BASIC_PROCESS}/{name} is not implemented by this stand-in; it implements {BASIC_PROCESS}/format "
                "and /quality"
            )
        value = next(names, "")
        if not value:
            raise invalid_argument(f"{BASIC_PROCESS}/{name} needs a value, as in {BASIC_PROCESS}/{name}/<value>")
        if name == "format":
            fmt = _parse_format(value)
        else:
            quality, forced = _parse_quality(value)
    return Conversion(fmt, quality, forced)


def parse_rule(rule: str) -> int | Conversion:
    """A rule string -> the AISuperResolution magnify, or the basic conversion its imageMogr2 pipeline makes."""
    steps = rule.split("|")
    if len(steps) > 1 and any("ci-process" in step for step in steps):
        raise invalid_argument(
            f"rule {rule!r}: ci-process={CI_PROCESS} cannot be chained with other processing by '|'; store the "
            f"super-resolved result first, then convert it with a second image_process call"
        )
    if rule.strip().startswith("ci-process") or not rule.strip().startswith(BASIC_PROCESS):
        return _parse_super_resolution(rule)
    if len(steps) > MAX_PIPELINE_STEPS:
        raise invalid_argument(f"rule has {len(steps)} pipeline steps; CI allows at most {MAX_PIPELINE_STEPS}")
    conversion = Conversion(None, None)
    for step in steps:
        conversion = _apply_basic_step(step, conversion)
    return conversion


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


def _parse_one_rule(raw: object, source_key: str) -> ProcessingRule:
    if not isinstance(raw, dict):
        raise _invalid_pic_operations("each rule must be a JSON object")
    fileid, rule, bucket = raw.get("fileid"), raw.get("rule"), raw.get("bucket")
    if not isinstance(fileid, str):
        raise _invalid_pic_operations("each rule needs a string 'fileid'")
    if not isinstance(rule, str):
        raise _invalid_pic_operations("each rule needs a string 'rule'")
    if bucket is not None and (not isinstance(bucket, str) or not _BUCKET.match(bucket)):
        raise invalid_argument(f"rule bucket must be BucketName-APPID, got {bucket!r}")
    processing = parse_rule(rule)
    key = resolve_fileid(fileid, source_key)
    if isinstance(processing, Conversion):
        return ProcessingRule(key=key, bucket=bucket or None, conversion=processing)
    return ProcessingRule(key=key, bucket=bucket or None, magnify=processing)


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
            f"at most {MAX_RULES} allowed; split them over several requests"
        )
    return PicOperations(
        is_pic_info=int(is_pic_info) == 1,
        rules=tuple(_parse_one_rule(rule, source_key) for rule in rules),
    )
