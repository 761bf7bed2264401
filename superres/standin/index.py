"""The in-memory index of one bucket's objects: a dict by key and the keys kept sorted, for COS listing semantics.

Not thread-safe by itself: the object store guards it with its in-memory lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from superres.standin.store import ObjectInfo


@dataclass(frozen=True)
class ListResult:
    contents: tuple[ObjectInfo, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_marker: str


@dataclass
class BucketIndex:
    objects: dict[str, ObjectInfo] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # sorted; str order == UTF-8 byte order, as COS lists

    def put(self, info: ObjectInfo) -> None:
        if info.key not in self.objects:
            bisect.insort(self.keys, info.key)
        self.objects[info.key] = info

    def remove(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]

    def list(self, prefix: str, delimiter: str, marker: str, max_keys: int) -> ListResult:
        """COS GET Bucket semantics: keys after `marker`, grouped by `delimiter` into common prefixes."""
        keys = self.keys
        contents: list[ObjectInfo] = []
        prefixes: list[str] = []
        last = ""
        start = max(bisect.bisect_right(keys, marker), bisect.bisect_left(keys, prefix))
        for key in _keys_from(keys, start, prefix):
            entry = _common_prefix(key, prefix, delimiter)
            if entry is not None and (entry <= marker or (prefixes and prefixes[-1] == entry)):
                continue  # already reported on this page or a previous one
            if len(contents) + len(prefixes) >= max_keys:
                return ListResult(tuple(contents), tuple(prefixes), True, last)
            if entry is None:
                contents.append(self.objects[key])
                last = key
            else:
                prefixes.append(entry)
                last = entry
        return ListResult(tuple(contents), tuple(prefixes), False, "")


def _keys_from(keys: list[str], start: int, prefix: str) -> Iterator[str]:
    for i in range(start, len(keys)):
        key = keys[i]
        if key.startswith(prefix):
            yield key
        elif key > prefix:
            return  # sorted: no later key can carry the prefix


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    cut = key.find(delimiter, len(prefix))
    return None if cut < 0 else key[: cut + len(delimiter)]
