"""What one upload becomes: one Target per output, with the rule that makes it and where its result lands.

The same type serves the function (which decides, calls CI and publishes) and backfill's planner (which looks for
candidates): one shape for "an output of an upload" from settings to the log line.

Provenance ("freshness by content"): a result is published by a server-side copy from a staging object that carries
two metadata headers, the source version it was made from and the rule that made it. A target is done for an upload
when its result carries that upload's version and the target's rule; clocks are not compared (see `is_done`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from .config import Output, Settings

if TYPE_CHECKING:
    from .gateway import ObjectState

# Claims on work in progress (CLAIM_WORK) live in this folder under DEST_PREFIX.
CLAIMS_FOLDER = ".claims/"
# What CI writes lands here first, under a name tied to the source version and the rule, and is then published to
# the target's key by a copy that stamps its provenance.
STAGING_FOLDER = ".staging/"
# x-cos-meta-* names of a published result's provenance (COS lower-cases metadata names).
META_SOURCE = "superres-source"
META_RULE = "superres-rule"
# The upload a result was made from (source_folder's digest of bucket and key): under RESULT_NAMES=replace two
# uploads that differ only in their extension (cat.jpg, cat.png) share result names, and this says whose it is.
META_UPLOAD = "superres-upload"
# Content types of the formats a result may have (AISuperResolution itself writes PNG).
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


class Target(NamedTuple):
    """One output of one upload: the bucket and key its result is published to, and the rule that makes it."""

    index: int
    output: Output
    bucket: str
    key: str

    @property
    def magnify(self) -> int:
        return self.output.magnify

    @property
    def format(self) -> str:
        """The result's format: CI's PNG unless the output converts it."""
        return self.output.format or "png"

    @property
    def converts(self) -> bool:
        """Whether CI's PNG is converted (a second CI call): for jpg and webp, not for png."""
        return self.format != "png"

    @property
    def rule_id(self) -> str:
        """The rule that makes the result, as stamped on it: changing MAGNIFY, the format or the quality makes
        results made under the old rule stale, and nothing else does."""
        rule = f"x{self.output.magnify}"
        if self.output.format:
            rule += f":{self.output.format}"
        if self.output.quality:
            rule += f":q{self.output.quality}"
        return rule

    @property
    def sr_rule(self) -> str:
        return f"ci-process=AISuperResolution&magnify={self.output.magnify}"

    @property
    def convert_rule(self) -> str:
        rule = f"imageMogr2/format/{self.format}"
        return rule + (f"/quality/{self.output.quality}!" if self.output.quality else "")

    def staged(self, settings: Settings, source_folder: str, version: str, fmt: str | None = None) -> str:
        """The staging key of this target's result (in `fmt`, default its own format) for one source version."""
        digest = hashlib.sha256(f"{version}|{self.bucket}/{self.key}|{self.rule_id}".encode()).hexdigest()[:32]
        return f"{staging_folder(settings, source_folder)}{digest}.{fmt or self.format}"

    def stamp(self, version: str, upload: str) -> dict[str, str]:
        """The metadata a published result carries (x-cos-meta-*): the source version, the rule, the upload."""
        return {f"x-cos-meta-{META_SOURCE}": version, f"x-cos-meta-{META_RULE}": self.rule_id,
                f"x-cos-meta-{META_UPLOAD}": upload}


def plan_targets(record_bucket: str, key: str, settings: Settings) -> list[Target]:
    """Each output of the upload `key`: its result's key (result_key), in the output's bucket, DEST_BUCKET or the
    source's."""
    names = settings.result_names
    return [Target(i, output, output.bucket or record_bucket, result_key(output, key, names))
            for i, output in enumerate(settings.outputs)]


def result_key(output: Output, key: str, names: str) -> str:
    """The key of the result of upload `key` for `output`, under RESULT_NAMES `names`: the output's prefix + the
    upload's name with the result format's extension appended (append: cat.jpg.png, cat.jpg.webp) or in place of
    the upload's (replace: cat.png), or, for a PNG result of an output without a format, unchanged (keep: cat.jpg)."""
    if names == "keep" and not output.format:
        return output.prefix + key
    ext = output.format or "png"
    if names == "replace":
        return f"{output.prefix}{name_stem(key)}.{ext}"
    return f"{output.prefix}{key}.{ext}"


def name_stem(key: str) -> str:
    """The upload's key without its extension (the part of its last segment after the last '.', when that segment
    has something before the dot)."""
    folder, _, name = key.rpartition("/")
    stem, dot, _ = name.rpartition(".")
    return key[: len(folder) + bool(folder) + len(stem)] if dot and stem else key


def claim_folder(settings: Settings, record_bucket: str, key: str) -> str:
    """Whose claim an upload takes: its own (source_folder), except under RESULT_NAMES=replace, where every upload
    sharing result names (cat.jpg, cat.png) takes the same one, so they never work on those results at once."""
    if settings.result_names == "replace":
        return source_folder(record_bucket, f"{name_stem(key)}|replace")
    return source_folder(record_bucket, key)


def source_folder(record_bucket: str, key: str) -> str:
    """A fixed-length name for the upload, under which its claims and staged results live (any key fits)."""
    return hashlib.sha256(f"{record_bucket}/{key}".encode()).hexdigest()


def staging_folder(settings: Settings, folder: str) -> str:
    return f"{settings.dest_prefix}{STAGING_FOLDER}{folder}/"


def in_flight_key(settings: Settings, folder: str, version: str) -> str:
    """The marker of a CI call for `version` that failed without an answer and may still land."""
    digest = hashlib.sha256(version.encode()).hexdigest()[:32]
    return f"{staging_folder(settings, folder)}{digest}.inflight"


def claim_root(settings: Settings, folder: str) -> str:
    return f"{settings.dest_prefix}{CLAIMS_FOLDER}{folder}"


def version_of(etag: str | None) -> str | None:
    """A source version's identity: its ETag, without quotes. The ETag names the content, so the same bytes uploaded
    again (a re-sent PUT, a copy onto itself, a new version id in a versioned bucket) are the same version and need
    no new result; a version id would make them different."""
    value = (etag or "").strip().strip('"').lower()
    return value or None


def is_done(meta: Mapping[str, str] | None, target: Target, version: str) -> bool:
    """Whether a result carrying `meta` was made from `version` of the source by the target's rule."""
    return meta is not None and meta.get(META_SOURCE) == version and meta.get(META_RULE) == target.rule_id


def made_from_another(meta: Mapping[str, str] | None, upload: str) -> bool:
    """Whether a result says it was made from another upload than `upload` (a result name two uploads share)."""
    owner = meta.get(META_UPLOAD) if meta is not None else None
    return owner is not None and owner != upload


def is_unstamped(meta: Mapping[str, str] | None) -> bool:
    """A result made before provenance was recorded (or written by other code)."""
    return meta is None or META_SOURCE not in meta


def is_current(state: ObjectState | None, target: Target, version: str, source: ObjectState) -> bool:
    """Done for this version: stamped with it and the target's rule. A result made before provenance was recorded
    counts as done only when COS wrote it strictly after the source (one clock, COS's; the same second is not
    enough, so a re-upload within the second of an old result is processed)."""
    if state is None:
        return False
    if is_done(meta_of(state), target, version):
        return True
    return (is_unstamped(meta_of(state)) and state.last_modified is not None and source.last_modified is not None
            and state.last_modified > source.last_modified)


def version_read(ci_etag: str | None, version: str) -> str:
    """The version CI says it read (OriginalInfo/ETag) when it is a COS ETag of another version: the source changed
    between our HEAD and CI's read, and the result answers the newer upload. Otherwise the version we checked."""
    read = version_of(ci_etag)
    if read and read != version and _looks_like_cos_etag(read):
        return read
    return version


def _looks_like_cos_etag(value: str) -> bool:
    head, _, parts = value.partition("-")
    return len(head) == 32 and all(c in "0123456789abcdef" for c in head) and (not parts or parts.isdigit())


def meta_of(state: ObjectState | None) -> Mapping[str, str] | None:
    """A HEAD's metadata, None for an object that is not there."""
    return state.meta if state is not None else None
