"""Settings read from the environment once, at cold start, into a frozen object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from .errors import ConfigError

AI_SUPER_RESOLUTION_MAX_BYTES = 5 * 1024 * 1024
# Persistent processing refuses anything above 32 MB whatever the operation.
_HARD_MAX_INPUT_BYTES = 32 * 1024 * 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}[a-z0-9]-\d{5,}$|^[a-z0-9]-\d{5,}$")
DEFAULT_SUFFIXES = ("jpg", "jpeg", "png", "bmp", "webp")
# Pic-Operations carries at most five rules (doc 1045/33695), so all outputs go in one CI call.
MAX_OUTPUTS = 5
# Formats an output may be converted to (imageMogr2/format/...); the AISuperResolution result itself is PNG.
OUTPUT_FORMATS = {"jpg": "jpg", "jpeg": "jpg", "webp": "webp", "png": "png"}
# RESULT_NAMES: how a result is named from its upload's key (targets.result_key). "append" adds the result's
# format extension (cat.jpg -> cat.jpg.png), "replace" swaps it (cat.jpg -> cat.png), "keep" leaves the name of a
# PNG result as the upload's (cat.jpg holds PNG; an output with a format still gets its extension appended).
RESULT_NAMES = ("append", "replace", "keep")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Endpoint(NamedTuple):
    """A local COS endpoint (COS_ENDPOINT_URL): the SDK connects here but still names the real host."""

    scheme: str
    host: str
    port: int


class OutputSpec(NamedTuple):
    """One entry of OUTPUTS: a folder under DEST_PREFIX ("" is DEST_PREFIX itself), a magnification, an optional
    format (jpg, webp, png) and quality (1-100) the super-resolved PNG is converted to, and an optional bucket."""

    folder: str
    magnify: int
    format: str | None = None
    quality: int | None = None
    bucket: str | None = None


class Output(NamedTuple):
    """One result per upload: written under `prefix` (DEST_PREFIX + the folder) in `bucket` (None: DEST_BUCKET, else
    the source bucket)."""

    prefix: str
    magnify: int
    format: str | None = None
    quality: int | None = None
    bucket: str | None = None


class Settings(NamedTuple):
    """Immutable (a NamedTuple: cheaper to define than a frozen dataclass, which counts at cold start)."""

    dest_prefix: str
    magnify: int = 2
    dest_bucket: str | None = None
    accepted_suffixes: tuple[str, ...] = DEFAULT_SUFFIXES
    max_input_bytes: int = AI_SUPER_RESOLUTION_MAX_BYTES
    skip_existing: bool = True
    claim_work: bool = True
    region: str | None = None
    endpoint: Endpoint | None = None
    cos_timeout_s: float = 60.0
    output_specs: tuple[OutputSpec, ...] = ()  # OUTPUTS; empty: one output, DEST_PREFIX at MAGNIFY
    # How long a CI call may still write its result after its client gave up (CI_LANDING_BOUND_S).
    ci_landing_bound_s: float = 60.0
    result_names: str = RESULT_NAMES[0]  # RESULT_NAMES; the default, append

    def with_overrides(self, **changes: object) -> Settings:
        return self._replace(**changes)

    @property
    def outputs(self) -> tuple[Output, ...]:
        specs = self.output_specs or (OutputSpec("", self.magnify),)
        return tuple(Output(self.dest_prefix + spec.folder, spec.magnify, spec.format, spec.quality,
                            spec.bucket or self.dest_bucket) for spec in specs)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read and validate every setting; an error names the variable and the allowed values."""
    env = os.environ if environ is None else environ
    settings = Settings(
        dest_prefix=_dest_prefix(env.get("DEST_PREFIX")),
        magnify=_magnify(env.get("MAGNIFY")),
        dest_bucket=_dest_bucket(env.get("DEST_BUCKET")),
        accepted_suffixes=_suffixes(env.get("ACCEPTED_SUFFIXES")),
        max_input_bytes=_max_input_bytes(env.get("MAX_INPUT_BYTES")),
        skip_existing=_flag("SKIP_EXISTING", env.get("SKIP_EXISTING"), default=True),
        claim_work=_flag("CLAIM_WORK", env.get("CLAIM_WORK"), default=True),
        region=(env.get("TENCENTCLOUD_REGION") or "").strip() or None,
        endpoint=parse_endpoint(env.get("COS_ENDPOINT_URL")),
        cos_timeout_s=_positive_float("COS_TIMEOUT_S", env.get("COS_TIMEOUT_S"), default=60.0),
        output_specs=_outputs(env.get("OUTPUTS")),
        ci_landing_bound_s=_positive_float("CI_LANDING_BOUND_S", env.get("CI_LANDING_BOUND_S"), default=60.0),
        result_names=_result_names(env.get("RESULT_NAMES")),
    )
    return settings.with_overrides(**overrides) if overrides else settings


def _dest_prefix(raw: str | None) -> str:
    value = (raw or "").strip()
    if not value or value.strip("/") == "":
        raise ConfigError(
            "DEST_PREFIX",
            f"must name a folder for the results, e.g. 'superres/'; got {raw!r}. "
            "It may not be empty or '/', since results would then land among the uploads.",
        )
    prefix = value.lstrip("/")
    if not prefix.endswith("/"):
        prefix += "/"
    parts = prefix[:-1].split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ConfigError("DEST_PREFIX", f"must not contain empty, '.' or '..' segments; got {raw!r}")
    return prefix


def _magnify(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return 2
    if raw.strip() not in ("2", "4"):
        raise ConfigError("MAGNIFY", f"allowed values are 2 or 4 (default 2); got {raw!r}")
    return int(raw)


def _outputs(raw: str | None) -> tuple[OutputSpec, ...]:
    """OUTPUTS: comma list of FOLDER:MAGNIFY[:FORMAT[:QUALITY]][@BUCKET], folders under DEST_PREFIX."""
    if raw is None or raw.strip() == "":
        return ()
    example = "e.g. 'x2/:2,x4/:4:webp:80' (results under DEST_PREFIX/x2/ and, as WebP quality 80, DEST_PREFIX/x4/)"
    specs: list[OutputSpec] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        item, _, bucket = item.partition("@")
        bucket = bucket.strip()
        if bucket and not _BUCKET_RE.match(bucket):
            raise ConfigError("OUTPUTS", f"bucket {bucket!r} of {item!r} must be '<name>-<appid>', "
                              "e.g. 'results-1250000000'")
        fields = [field.strip() for field in item.split(":")]
        if not 2 <= len(fields) <= 4:
            raise ConfigError("OUTPUTS", f"each output is FOLDER:MAGNIFY[:FORMAT[:QUALITY]][@BUCKET], {example}; "
                              f"got {item!r}")
        folder = fields[0].strip("/")
        if folder and any(part in ("", ".", "..") or part.startswith(".") for part in folder.split("/")):
            raise ConfigError("OUTPUTS", f"folder {fields[0]!r} may not have empty, '.'-leading or '..' segments "
                              "(DEST_PREFIX/.claims/ and .staging/ are the function's own)")
        if fields[1] not in ("2", "4"):
            raise ConfigError("OUTPUTS", f"magnify of {item!r} must be 2 or 4")
        fmt = fields[2].lower() if len(fields) > 2 and fields[2] else None
        if fmt is not None and fmt not in OUTPUT_FORMATS:
            raise ConfigError("OUTPUTS", f"format of {item!r} must be one of jpg, webp, png")
        quality = None
        if len(fields) > 3 and fields[3]:
            if fmt is None or not fields[3].isdigit() or not 1 <= int(fields[3]) <= 100:
                raise ConfigError("OUTPUTS", f"quality of {item!r} must be 1-100, after a format")
            quality = int(fields[3])
        specs.append(OutputSpec(folder + "/" if folder else "", int(fields[1]),
                                OUTPUT_FORMATS[fmt] if fmt else None, quality, bucket or None))
    if not 1 <= len(specs) <= MAX_OUTPUTS:
        raise ConfigError("OUTPUTS", f"1 to {MAX_OUTPUTS} outputs (one Pic-Operations takes five rules); got {raw!r}")
    folders = [spec.folder for spec in specs]
    for i, one in enumerate(folders):
        for other in folders[i + 1:]:
            if one.startswith(other) or other.startswith(one):
                raise ConfigError("OUTPUTS", f"folders {one or '(DEST_PREFIX itself)'!r} and "
                                  f"{other or '(DEST_PREFIX itself)'!r} overlap: one output's results would land "
                                  "among another's")
    return tuple(specs)


def _result_names(raw: str | None) -> str:
    value = (raw or "").strip().lower()
    if not value:
        return RESULT_NAMES[0]
    if value not in RESULT_NAMES:
        raise ConfigError("RESULT_NAMES", "allowed values are append (default: uploads/cat.jpg -> "
                          "superres/uploads/cat.jpg.png), replace (superres/uploads/cat.png) or keep "
                          f"(superres/uploads/cat.jpg, holding PNG); got {raw!r}")
    return value


def _dest_bucket(raw: str | None) -> str | None:
    value = (raw or "").strip()
    if not value:
        return None
    if not _BUCKET_RE.match(value):
        raise ConfigError(
            "DEST_BUCKET",
            f"must be '<name>-<appid>' (lowercase letters, digits, '-'), e.g. 'photos-1250000000'; got {raw!r}",
        )
    return value


def _suffixes(raw: str | None) -> tuple[str, ...]:
    if raw is None or raw.strip() == "":
        return DEFAULT_SUFFIXES
    items = tuple(part.strip().lower().lstrip(".") for part in raw.split(",") if part.strip())
    if not items or any(not item.isalnum() for item in items):
        raise ConfigError(
            "ACCEPTED_SUFFIXES",
            f"must be a comma list of file extensions such as 'jpg,png,webp'; got {raw!r}",
        )
    return items


def _max_input_bytes(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return AI_SUPER_RESOLUTION_MAX_BYTES
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 0 < value <= _HARD_MAX_INPUT_BYTES:
        raise ConfigError(
            "MAX_INPUT_BYTES",
            f"must be a whole number of bytes between 1 and {_HARD_MAX_INPUT_BYTES} "
            f"(default {AI_SUPER_RESOLUTION_MAX_BYTES}, the AISuperResolution limit); got {raw!r}",
        )
    return value


def _flag(name: str, raw: str | None, *, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, f"allowed values are true/false (also 1/0, yes/no, on/off); got {raw!r}")


def _positive_float(name: str, raw: str | None, *, default: float) -> float:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(name, f"must be a positive number of seconds (default {default:g}); got {raw!r}")
    return value


def parse_endpoint(raw: str | None, name: str = "COS_ENDPOINT_URL") -> Endpoint | None:
    """A local COS endpoint URL; an error names `name` (the variable, or a command-line option)."""
    value = (raw or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(
            name,
            f"must look like 'http://127.0.0.1:9000' (scheme, host, optional port, no path); got {raw!r}",
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigError(name, f"has an invalid port: {raw!r}") from exc
    return Endpoint(scheme=parts.scheme, host=parts.hostname, port=port)
