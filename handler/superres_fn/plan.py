"""Process or skip, with a reason: the same rules for the trigger and for backfill."""

from __future__ import annotations

import json
from typing import NamedTuple

from .config import Settings
from .events import CosRecord
from .targets import Target, plan_targets

# COS refuses object keys longer than this many UTF-8 bytes.
MAX_KEY_BYTES = 850
# The detail of an already_done skip.
ALREADY_DONE = "the destination holds a result made from this version of the upload by the same rule (SKIP_EXISTING)"

PROCESS = "process"
SKIP = "skip"


class Decision(NamedTuple):
    action: str  # PROCESS or SKIP
    reason: str
    dest_bucket: str
    dest_key: str
    detail: str | None = None
    targets: tuple[Target, ...] = ()  # what a PROCESS decision has to make, one per output

    @property
    def should_process(self) -> bool:
        return self.action == PROCESS


def decide(record: CosRecord, settings: Settings, *, duplicate: bool = False) -> Decision:
    """Decide from the record and the settings alone whether it is work for CI; whether its results are already done
    is the record run's question (record.py), asked under the claim."""
    targets = plan_targets(record.bucket, record.key, settings)
    dest_bucket, dest_key = targets[0].bucket, targets[0].key

    def skip(reason: str, detail: str) -> Decision:
        return Decision(SKIP, reason, dest_bucket, dest_key, detail)

    if not record.is_object_created:
        return skip("not_object_created", f"{record.event_name} is not an upload event")
    if duplicate:
        return skip("duplicate_record", "the same upload appears earlier in this event")
    if record.key.startswith(settings.dest_prefix):
        # Recursion guard: results land under the prefix and would otherwise trigger us again.
        return skip("under_destination_prefix", f"key is under DEST_PREFIX {settings.dest_prefix!r}")
    if record.key.endswith("/"):
        return skip("folder_marker", "key ends with '/': a folder marker, not an image")
    if any(segment in (".", "..") for segment in record.key.split("/")):
        # CI resolves fileid paths: "/superres/a/../../x.jpg" would land outside DEST_PREFIX, maybe on
        # another object. COS keys may contain such segments; results for them are never written.
        return skip("unsafe_key", "key has '.' or '..' path segments; its result could land outside DEST_PREFIX")
    suffix = _suffix(record.key)
    if suffix not in settings.accepted_suffixes:
        return skip("suffix_not_accepted", f"suffix {suffix!r} is not in ACCEPTED_SUFFIXES")
    if record.size == 0:
        return skip("empty_object", "the object has zero bytes")
    if record.size > settings.max_input_bytes:
        return skip(
            "too_large",
            f"source is {record.size / 1048576:.1f} MB; the limit is {settings.max_input_bytes / 1048576:.1f} MB "
            "(MAX_INPUT_BYTES; AISuperResolution takes at most 5 MB)",
        )
    if any(len(t.key.encode()) > MAX_KEY_BYTES for t in targets):
        return skip("destination_key_too_long", f"a result key (DEST_PREFIX + the key, named by RESULT_NAMES) "
                    f"exceeds COS's {MAX_KEY_BYTES}-byte key limit")
    return Decision(PROCESS, "accepted", dest_bucket, dest_key, targets=tuple(targets))


def pic_operations_for(rules: list[tuple[str, str, str]], *, record_bucket: str, is_pic_info: int = 1) -> str:
    """The Pic-Operations header: one rule per (bucket, fileid key, rule), at most five. The fileid starts with '/':
    without it CI stores relative to the source. `bucket` only for results that go to another bucket."""
    items: list[dict[str, object]] = []
    for bucket, key, rule in rules:
        item: dict[str, object] = {"fileid": "/" + key, "rule": rule}
        if bucket != record_bucket:
            item["bucket"] = bucket
        items.append(item)
    # ASCII-only JSON (\uXXXX escapes): HTTP header values travel as Latin-1, so a raw CJK or emoji key in
    # the fileid would be mangled on the wire and break the request signature.
    return json.dumps({"is_pic_info": is_pic_info, "rules": items}, ensure_ascii=True, separators=(",", ":"))


def _suffix(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return name.rpartition(".")[2].lower() if "." in name else ""
