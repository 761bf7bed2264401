"""Crash-safe on-disk object store behind the stand-in.

Layout under `data_dir`:
    <bucket>/bucket.json          the bucket exists once this marker is in place
    <bucket>/data/<h>-<uuid>.bin  object bytes; a fresh unique name per write
    <bucket>/meta/<h>.json        the object's metadata, naming its data file; <h> = sha256(key)
    <bucket>/config/<name>.json   a bucket configuration (e.g. cors), replaced whole

Keys never become paths (they may hold '..', '%', '#', emoji): files are named by the key's hash.

Crash safety: every file is written to a `.tmp-*` file in its final directory, fsynced, then renamed with
os.replace, and the directory fsynced. An object exists only once its metadata is in place; an overwrite
replaces the metadata in one rename and only then unlinks the old data file. A crash therefore leaves the
old object or the new one, never a mix. At startup, temp files and data files no metadata names are removed.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO

from superres.standin.errors import CosError, no_such_bucket, no_such_key

log = logging.getLogger("superres.standin")

MAX_KEY_BYTES = 850
_COPY_CHUNK = 1024 * 1024
# Characters XML 1.0 cannot carry (C0 controls but tab, LF, CR; U+FFFE/U+FFFF). COS refuses keys with control
# characters; refusing them here keeps every listing and result XML well-formed.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# COS's object overview (436/13324) forbids, among the control characters, only CAN, EM, SUB and ESC in keys;
# other controls are stored, and listings carry them escaped unless asked for encoding-type=url.
_KEY_FORBIDDEN = re.compile(r"[\x18-\x1b]")
_TMP_PREFIX = ".tmp-"
_BUCKET_DIR = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-\d+$")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # quoted MD5 hex, as COS sends it
    content_type: str
    meta: dict[str, str]  # x-cos-meta-* headers, lowercased names
    last_modified: float  # Unix seconds
    data_file: str
    # Stored standard headers (Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires),
    # lowercased names; storage class; ACL grants and tags stored beside the object (defaults for older metadata).
    headers: dict[str, str] = field(default_factory=dict)
    storage_class: str = "STANDARD"
    acl: dict[str, object] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def last_modified_http(self) -> str:
        return formatdate(self.last_modified, usegmt=True)

    @property
    def last_modified_iso(self) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.last_modified))
        return f"{stamp}.{int(self.last_modified * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class ListResult:
    contents: tuple[ObjectInfo, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_marker: str


@dataclass
class _BucketIndex:
    objects: dict[str, ObjectInfo] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # sorted; str order == UTF-8 byte order, as COS lists

    def put(self, info: ObjectInfo) -> None:
        if info.key not in self.objects:
            bisect.insort(self.keys, info.key)
        self.objects[info.key] = info

    def remove(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]


def validate_key(key: str) -> None:
    if not key:
        raise CosError(400, "InvalidArgument", "The object key must not be empty.")
    if _KEY_FORBIDDEN.search(key):
        raise CosError(400, "InvalidObjectName", "The object key must not contain CAN, EM, SUB or ESC (0x18-0x1B).")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise CosError(400, "InvalidObjectName", "The object key is not valid UTF-8.") from None
    if size > MAX_KEY_BYTES:
        raise CosError(400, "KeyTooLong", f"The object key is {size} bytes; the limit is {MAX_KEY_BYTES}.", key)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(target: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over `target`, fsync the directory."""
    tmp = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


class StagedFile:
    """A body being received: written in chunks, hashed as it goes, then committed by rename or discarded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._md5 = hashlib.md5()
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - closed by commit/discard

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)
        self._md5.update(chunk)
        self.size += len(chunk)

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()

    @property
    def md5_digest(self) -> bytes:
        return self._md5.digest()

    def read_all(self) -> bytes:
        """The bytes received so far (for small bodies that must be decoded, e.g. a CI source)."""
        assert self._file is not None
        self._file.flush()
        return self.path.read_bytes()

    def reader(self) -> BinaryIO:
        """The bytes received so far, streamed (the caller closes it)."""
        assert self._file is not None
        self._file.flush()
        return open(self.path, "rb")  # noqa: SIM115

    def commit(self, target: Path) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self.path, target)
        _fsync_dir(target.parent)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class ObjectStore:
    """Thread-safe bucket/object store; listing is served from an in-memory sorted index."""

    def __init__(self, data_dir: Path) -> None:
        self._root = Path(data_dir)
        # Stamps Last-Modified; the stand-in swaps in its storage clock (clock.py: real time plus a skew).
        self.clock: Callable[[], float] = time.time
        self._root.mkdir(parents=True, exist_ok=True)
        # One lock for index and metadata swaps; the slow part (writing data) happens outside it.
        self._lock = threading.RLock()
        self._buckets: dict[str, _BucketIndex] = {}
        self._regions: dict[str, str | None] = {}
        for bucket_dir in sorted(self._root.iterdir()):
            if bucket_dir.is_dir() and (bucket_dir / "bucket.json").exists():
                self._buckets[bucket_dir.name] = self._recover_bucket(bucket_dir)
                self._regions[bucket_dir.name] = _marker_region(bucket_dir / "bucket.json")

    # ---- buckets -------------------------------------------------------------------------------
    def create_bucket(self, bucket: str, region: str | None = None) -> None:
        """Create `bucket` (name-appid), in `region` (a COS bucket lives in one region; None: the stand-in's)."""
        if not _BUCKET_DIR.match(bucket):
            raise CosError(400, "InvalidBucketName", f"{bucket!r} is not a valid BucketName-APPID.", bucket)
        with self._lock:
            if bucket in self._buckets:
                raise CosError(409, "BucketAlreadyOwnedByYou", "The bucket already exists and you own it.", bucket)
            path = self._root / bucket
            for sub in ("data", "meta"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            marker = {"created": time.time(), **({"region": region} if region else {})}
            _write_atomically(path / "bucket.json", json.dumps(marker).encode())
            self._buckets[bucket] = _BucketIndex()
            self._regions[bucket] = region

    def bucket_exists(self, bucket: str) -> bool:
        with self._lock:
            return bucket in self._buckets

    def bucket_region(self, bucket: str) -> str | None:
        """The region `bucket` was created in (None: created before regions were recorded, or without one)."""
        with self._lock:
            return self._regions.get(bucket)

    def buckets(self) -> list[str]:
        with self._lock:
            return sorted(self._buckets)

    def bucket_config(self, bucket: str, name: str) -> dict | None:
        """A bucket configuration document (`name` like "cors"), None when none is set."""
        path = self._config_path(bucket, name)
        with self._lock:
            try:
                return json.loads(path.read_text("utf-8"))
            except FileNotFoundError:
                return None

    def set_bucket_config(self, bucket: str, name: str, doc: dict | None) -> None:
        """Replace a bucket configuration durably (None deletes it)."""
        path = self._config_path(bucket, name)
        with self._lock:
            if doc is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                return
            path.parent.mkdir(exist_ok=True)
            _write_atomically(path, json.dumps(doc).encode("utf-8"))

    def _config_path(self, bucket: str, name: str) -> Path:
        self._index(bucket)
        return self._root / bucket / "config" / f"{name}.json"

    # ---- objects -------------------------------------------------------------------------------
    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        meta: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        staged = self.stage(bucket)
        try:
            staged.write(data)
            return self.put_staged(bucket, key, staged, content_type, meta)
        finally:
            staged.discard()

    def stage(self, bucket: str) -> StagedFile:
        """A temp file in the bucket's data folder to stream a body into (swept at startup if never committed)."""
        self._index(bucket)
        return StagedFile(self._root / bucket / "data" / f"{_TMP_PREFIX}{uuid.uuid4().hex}")

    def put_staged(
        self,
        bucket: str,
        key: str,
        staged: StagedFile,
        content_type: str = "application/octet-stream",
        meta: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        storage_class: str = "STANDARD",
        etag: str | None = None,
        acl: Mapping[str, object] | None = None,
        tags: Mapping[str, str] | None = None,
        forbid_overwrite: bool = False,
    ) -> ObjectInfo:
        """Commit a staged body as `key`: fsync, rename into place, then swap the metadata in one rename.
        `forbid_overwrite`: refuse (409 FileAlreadyExists) if `key` exists, checked atomically with the swap."""
        validate_key(key)
        self._index(bucket)
        data_file = f"{_key_hash(key)}-{uuid.uuid4().hex}.bin"
        staged.commit(self._root / bucket / "data" / data_file)
        info = ObjectInfo(
            key=key,
            size=staged.size,
            etag=etag or f'"{staged.md5_hex}"',
            content_type=content_type,
            meta=dict(meta or {}),
            last_modified=self.clock(),
            data_file=data_file,
            headers=dict(headers or {}),
            storage_class=storage_class,
            acl=dict(acl or {}),
            tags=dict(tags or {}),
        )
        try:
            self._swap_meta(bucket, info, forbid_overwrite=forbid_overwrite)
        except CosError:
            self._unlink_data(bucket, data_file)
            raise
        return info

    def update(self, bucket: str, key: str, **changes: object) -> ObjectInfo:
        """Change an object's stored attributes (ACL, tags, metadata), keeping its bytes."""
        with self._lock:
            info = dataclasses.replace(self.head(bucket, key), **changes)  # type: ignore[arg-type]
            _write_atomically(self._meta_path(bucket, key), json.dumps(asdict(info)).encode("utf-8"))
            self._index(bucket).put(info)
        return info

    def bucket_dir(self, bucket: str) -> Path:
        self._index(bucket)
        return self._root / bucket

    def stage_copy(self, src_bucket: str, src_key: str, dst_bucket: str) -> tuple[ObjectInfo, StagedFile]:
        """The source's metadata and a staged copy of its bytes in the destination bucket (streamed)."""
        staged = self.stage(dst_bucket)
        try:
            info, handle = self.open(src_bucket, src_key)
            with handle:
                while chunk := handle.read(_COPY_CHUNK):
                    staged.write(chunk)
        except BaseException:
            staged.discard()
            raise
        return info, staged

    def _swap_meta(self, bucket: str, info: ObjectInfo, *, forbid_overwrite: bool = False) -> None:
        with self._lock:
            index = self._index(bucket)
            previous = index.objects.get(info.key)
            if forbid_overwrite and previous is not None:
                raise CosError(409, "FileAlreadyExists", "The object already exists and x-cos-forbid-overwrite is "
                               "true.", f"{bucket}/{info.key}")
            _write_atomically(self._meta_path(bucket, info.key), json.dumps(asdict(info)).encode("utf-8"))
            index.put(info)
        if previous is not None and previous.data_file != info.data_file:
            self._unlink_data(bucket, previous.data_file)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        with self._lock:
            info = self._index(bucket).objects.get(key)
        if info is None:
            raise no_such_key(f"{bucket}/{key}")
        return info

    def get(self, bucket: str, key: str) -> tuple[ObjectInfo, Path]:
        """Metadata and data path. The path is only stable until the key is overwritten; prefer `open`."""
        info = self.head(bucket, key)
        return info, self._root / bucket / "data" / info.data_file

    def open(self, bucket: str, key: str) -> tuple[ObjectInfo, BinaryIO]:
        """Metadata and an open handle, taken under the lock so a concurrent overwrite cannot unlink it first."""
        with self._lock:
            info, path = self.get(bucket, key)
            return info, open(path, "rb")  # noqa: SIM115 - the caller owns the handle

    def read(self, bucket: str, key: str) -> tuple[ObjectInfo, bytes]:
        info, handle = self.open(bucket, key)
        with handle:
            return info, handle.read()

    def delete(self, bucket: str, key: str) -> bool:
        """Remove `key`; False when it did not exist (COS answers 204 either way)."""
        with self._lock:
            index = self._index(bucket)
            info = index.objects.get(key)
            if info is None:
                return False
            # Metadata first: once it is gone the object is gone, whatever happens to the data file.
            self._meta_path(bucket, key).unlink()
            _fsync_dir(self._root / bucket / "meta")
            index.remove(key)
        self._unlink_data(bucket, info.data_file)
        return True

    def list(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        marker: str = "",
        max_keys: int = 1000,
    ) -> ListResult:
        """COS GET Bucket semantics: keys after `marker`, grouped by `delimiter` into common prefixes."""
        with self._lock:
            index = self._index(bucket)
            keys = index.keys
            contents: list[ObjectInfo] = []
            prefixes: list[str] = []
            last = ""
            start = max(bisect.bisect_right(keys, marker), bisect.bisect_left(keys, prefix))
            for key in self._keys_from(keys, start, prefix):
                entry = self._common_prefix(key, prefix, delimiter)
                if entry is not None and (entry <= marker or (prefixes and prefixes[-1] == entry)):
                    continue  # already reported on this page or a previous one
                if len(contents) + len(prefixes) >= max_keys:
                    return ListResult(tuple(contents), tuple(prefixes), True, last)
                if entry is None:
                    contents.append(index.objects[key])
                    last = key
                else:
                    prefixes.append(entry)
                    last = entry
            return ListResult(tuple(contents), tuple(prefixes), False, "")

    # ---- internals -----------------------------------------------------------------------------
    @staticmethod
    def _keys_from(keys: list[str], start: int, prefix: str) -> Iterator[str]:
        for i in range(start, len(keys)):
            key = keys[i]
            if key.startswith(prefix):
                yield key
            elif key > prefix:
                return  # sorted: no later key can carry the prefix

    @staticmethod
    def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
        if not delimiter:
            return None
        cut = key.find(delimiter, len(prefix))
        return None if cut < 0 else key[: cut + len(delimiter)]

    def _index(self, bucket: str) -> _BucketIndex:
        with self._lock:
            index = self._buckets.get(bucket)
        if index is None:
            raise no_such_bucket(bucket)
        return index

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self._root / bucket / "meta" / f"{_key_hash(key)}.json"

    def _unlink_data(self, bucket: str, data_file: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._root / bucket / "data" / data_file).unlink()

    def _recover_bucket(self, bucket_dir: Path) -> _BucketIndex:
        """Rebuild the index from metadata and sweep what a crash can leave behind."""
        data_dir, meta_dir = bucket_dir / "data", bucket_dir / "meta"
        data_dir.mkdir(exist_ok=True)
        meta_dir.mkdir(exist_ok=True)
        upload_dirs = [d for d in (bucket_dir / "uploads").glob("*") if d.is_dir()]
        for directory in (bucket_dir, data_dir, meta_dir, bucket_dir / "config", *upload_dirs):
            for stray in directory.glob(f"{_TMP_PREFIX}*"):
                log.info("standin store: removing interrupted write %s", stray)
                stray.unlink()
        index = _BucketIndex()
        for meta_file in meta_dir.glob("*.json"):
            info = self._load_meta(meta_file, data_dir)
            if info is not None:
                index.put(info)
        referenced = {info.data_file for info in index.objects.values()}
        for data_file in data_dir.iterdir():
            if data_file.name not in referenced:
                log.info("standin store: removing unreferenced data file %s", data_file)
                data_file.unlink()
        return index

    @staticmethod
    def _load_meta(meta_file: Path, data_dir: Path) -> ObjectInfo | None:
        try:
            info = ObjectInfo(**json.loads(meta_file.read_text("utf-8")))
        except (ValueError, TypeError) as exc:
            # Cannot come from our own writes (metadata lands by rename); keep the file for inspection.
            log.warning("standin store: ignoring unreadable metadata %s: %s", meta_file, exc)
            return None
        if not (data_dir / info.data_file).is_file():
            log.warning("standin store: metadata %s names a missing data file; dropping it", meta_file)
            meta_file.unlink()
            return None
        return info


def _marker_region(marker: Path) -> str | None:
    try:
        region = json.loads(marker.read_text(encoding="utf-8")).get("region")
    except (OSError, ValueError, AttributeError):
        return None
    return region if isinstance(region, str) else None
