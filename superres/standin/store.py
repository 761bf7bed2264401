"""Crash-safe on-disk object store behind the stand-in.

Layout under `data_dir`:
    <bucket>/bucket.json          the bucket exists once this marker is in place
    <bucket>/data/<uuid>.bin      object bytes under a fresh unique name per write (older writes: <h>-<uuid>.bin)
    <bucket>/meta/<h>.json        the object's metadata, naming its data file; <h> = sha256(key)
    <bucket>/config/<name>.json   a bucket configuration (e.g. cors), replaced whole

Keys never become paths (they may hold '..', '%', '#', emoji): files are named by the key's hash.

Crash safety: an object exists only once its metadata is in place. Metadata is written to a `.tmp-*` file in
meta/, fsynced, then renamed over the old with os.replace (the commit), and only then is the old data file
unlinked. A data file is written under a name no metadata refers to until that rename. A crash therefore leaves
the old object or the new one, never a mix; at startup, temp files and data files no metadata names are removed.

Durability: a write is acknowledged only once it would survive a power cut, not just kill -9 (for kill -9 alone
the page cache would do). A PUT makes four fsyncs, each needed for that:
    1. the data file: else the metadata could reach the disk before the bytes it names (an empty or torn object);
    2. the data folder: else the data file's name could be lost while the metadata naming it survives (startup
       would then drop the object, and an overwritten one would lose its old version too);
    3. the metadata temp file, before its rename: as 1, for the metadata itself;
    4. the metadata folder, after the rename: the rename is the commit; unsynced, an acknowledged PUT could vanish
       or an overwrite come back as the old object.
1, 2 and 3 depend on nothing but the bytes being written, so they run at once (`durable.together`); 4 follows
them. The folder fsyncs (2, 4) are shared by concurrent writes (`DirSync`, group commit), so under load a PUT
costs two file fsyncs and a share of two folder fsyncs. A DELETE makes one (the metadata folder, after the
unlink); an ACL or tagging change two (3 and 4).

Locking: the event loop reads buckets without a lock (a dict lookup; a bucket is published once its marker is
durable and never removed). `_lock` guards the in-memory index only and is never held across disk I/O. Writers of
one key are serialised by a striped per-key lock held across that key's metadata rename, so the metadata on disk
and the index agree on which write won and the replaced data file is the right one; other keys are not held up.
Readers take no disk lock: `open` retries if an overwrite or delete unlinked the data file under it.
"""

from __future__ import annotations

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import BinaryIO

import orjson

from superres.standin.durable import TMP_PREFIX, DirSync, StagedFile, fsync_dir, together, write_atomically, write_temp
from superres.standin.errors import CosError, no_such_bucket, no_such_key
from superres.standin.index import BucketIndex, ListResult

_write_atomically = write_atomically  # the older name, imported by the multipart uploads module

log = logging.getLogger("superres.standin")

MAX_KEY_BYTES = 850
_COPY_CHUNK = 1024 * 1024
# Characters XML 1.0 cannot carry (C0 controls but tab, LF, CR; U+FFFE/U+FFFF). COS refuses keys with control
# characters; refusing them here keeps every listing and result XML well-formed.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# COS's object overview (436/13324) forbids, among the control characters, only CAN, EM, SUB and ESC in keys;
# other controls are stored, and listings carry them escaped unless asked for encoding-type=url.
_KEY_FORBIDDEN = re.compile(r"[\x18-\x1b]")
_KEY_LOCK_STRIPES = 64
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


@dataclass
class _Bucket:
    index: BucketIndex
    region: str | None
    data: DirSync  # the fsync of <bucket>/data, shared by concurrent writes
    meta: DirSync  # the fsync of <bucket>/meta

    @classmethod
    def at(cls, path: Path, index: BucketIndex, region: str | None) -> _Bucket:
        return cls(index, region, DirSync(path / "data"), DirSync(path / "meta"))


class ObjectStore:
    """Thread-safe bucket/object store; lookups and listings are served from memory (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self._root = Path(data_dir)
        self._root.mkdir(parents=True, exist_ok=True)
        # Stamps Last-Modified; the stand-in swaps in its storage clock (clock.py: real time plus a skew).
        self.clock: Callable[[], float] = time.time
        self._lock = threading.Lock()  # the in-memory indexes only; never held across disk I/O
        self._key_locks = tuple(threading.Lock() for _ in range(_KEY_LOCK_STRIPES))  # held across a key's write
        self._create_lock = threading.Lock()  # bucket creation (rare; worker threads only)
        self._buckets: dict[str, _Bucket] = {}
        for bucket_dir in sorted(self._root.iterdir()):
            if bucket_dir.is_dir() and (bucket_dir / "bucket.json").exists():
                region = _marker_region(bucket_dir / "bucket.json")
                self._buckets[bucket_dir.name] = _Bucket.at(bucket_dir, _recover_bucket(bucket_dir), region)

    # ---- buckets -------------------------------------------------------------------------------
    def create_bucket(self, bucket: str, region: str | None = None) -> None:
        """Create `bucket` (name-appid), in `region` (a COS bucket lives in one region; None: the stand-in's)."""
        if not _BUCKET_DIR.match(bucket):
            raise CosError(400, "InvalidBucketName", f"{bucket!r} is not a valid BucketName-APPID.", bucket)
        with self._create_lock:
            if bucket in self._buckets:
                raise CosError(409, "BucketAlreadyOwnedByYou", "The bucket already exists and you own it.", bucket)
            path = self._root / bucket
            for sub in ("data", "meta"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            marker = {"created": time.time(), **({"region": region} if region else {})}
            write_atomically(path / "bucket.json", json.dumps(marker).encode())  # fsyncs <bucket>/: data/, meta/
            fsync_dir(self._root)  # the bucket's own directory entry
            self._buckets[bucket] = _Bucket.at(path, BucketIndex(), region)  # published whole, in one assignment

    def bucket_exists(self, bucket: str) -> bool:
        return bucket in self._buckets  # no lock: the event loop asks this for every request

    def bucket_region(self, bucket: str) -> str | None:
        """The region `bucket` was created in (None: created before regions were recorded, or without one)."""
        entry = self._buckets.get(bucket)
        return entry.region if entry is not None else None

    def buckets(self) -> list[str]:
        return sorted(self._buckets)

    def bucket_config(self, bucket: str, name: str) -> dict | None:
        """A bucket configuration document (`name` like "cors"), None when none is set."""
        path = self._config_path(bucket, name)
        try:
            return json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None

    def set_bucket_config(self, bucket: str, name: str, doc: dict | None) -> None:
        """Replace a bucket configuration durably (None deletes it)."""
        path = self._config_path(bucket, name)
        if doc is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        path.parent.mkdir(exist_ok=True)
        write_atomically(path, json.dumps(doc).encode("utf-8"))

    def _config_path(self, bucket: str, name: str) -> Path:
        self._bucket(bucket)
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
        """A body to stream into, held in memory while small (no I/O: the event loop may call this), spilled past
        that to its data file under a fresh name (swept at startup if no metadata comes to name it)."""
        self._bucket(bucket)
        return StagedFile(self._root / bucket / "data" / f"{uuid.uuid4().hex}.bin")

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
        """Commit a staged body (from `stage`) as `key`: its bytes, its data folder and its new metadata made durable
        at once, then the metadata swapped in by one rename. `forbid_overwrite`: refuse (409 FileAlreadyExists) if
        `key` exists, checked atomically with the swap."""
        validate_key(key)
        entry = self._bucket(bucket)
        meta_path = self._meta_path(bucket, key)
        assert staged.path.parent == self._root / bucket / "data", "stage the body with ObjectStore.stage"
        info = ObjectInfo(
            key=key,
            size=staged.size,
            etag=etag or f'"{staged.md5_hex}"',
            content_type=content_type,
            meta=dict(meta or {}),
            last_modified=self.clock(),
            data_file=staged.path.name,
            headers=dict(headers or {}),
            storage_class=storage_class,
            acl=dict(acl or {}),
            tags=dict(tags or {}),
        )
        temps: list[Path] = []
        try:
            staged.write_out()  # the data file's name exists from here: the data folder's fsync below covers it
            together(staged.seal, entry.data.sync,
                     lambda: temps.append(write_temp(meta_path.parent, orjson.dumps(info))))  # a dataclass: all fields
            previous = self._swap_meta(bucket, info, temps[0], forbid_overwrite=forbid_overwrite)
        except BaseException:
            for path in temps:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            if self._lookup(bucket, key) is not info:  # not renamed into place: nothing names these bytes
                self._unlink_data(bucket, info.data_file)
            raise
        if previous is not None and previous.data_file != info.data_file:
            self._unlink_data(bucket, previous.data_file)
        return info

    def update(self, bucket: str, key: str, **changes: object) -> ObjectInfo:
        """Change an object's stored attributes (ACL, tags, metadata), keeping its bytes."""
        with self._key_lock(bucket, key):
            info = dataclasses.replace(self.head(bucket, key), **changes)  # type: ignore[arg-type]
            self._write_meta(bucket, info)
        return info

    def bucket_dir(self, bucket: str) -> Path:
        self._bucket(bucket)
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

    def _swap_meta(self, bucket: str, info: ObjectInfo, temp: Path, *, forbid_overwrite: bool) -> ObjectInfo | None:
        """Rename the durable metadata `temp` into place, fsync the folder, publish; the object it replaced."""
        entry = self._bucket(bucket)
        with self._key_lock(bucket, info.key):
            previous = self._lookup(bucket, info.key)
            if forbid_overwrite and previous is not None:
                raise CosError(409, "FileAlreadyExists", "The object already exists and x-cos-forbid-overwrite is "
                               "true.", f"{bucket}/{info.key}")
            os.replace(temp, self._meta_path(bucket, info.key))
            try:
                entry.meta.sync()
            finally:  # from the rename on, this metadata is the key's: the index follows it even if the fsync failed
                with self._lock:
                    entry.index.put(info)
        return previous

    def _write_meta(self, bucket: str, info: ObjectInfo) -> None:
        """Durably replace `info.key`'s metadata, then publish it (the caller holds the key's lock)."""
        entry = self._bucket(bucket)
        write_atomically(self._meta_path(bucket, info.key), orjson.dumps(info), entry.meta)  # a dataclass: all fields
        with self._lock:
            entry.index.put(info)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        info = self._lookup(bucket, key)
        if info is None:
            raise no_such_key(f"{bucket}/{key}")
        return info

    def get(self, bucket: str, key: str) -> tuple[ObjectInfo, Path]:
        """Metadata and data path. The path is only stable until the key is overwritten; prefer `open`."""
        info = self.head(bucket, key)
        return info, self._root / bucket / "data" / info.data_file

    def open(self, bucket: str, key: str) -> tuple[ObjectInfo, BinaryIO]:
        """Metadata and an open handle to the bytes it describes (the handle stays valid after an overwrite)."""
        while True:
            info, path = self.get(bucket, key)
            try:
                return info, open(path, "rb")  # noqa: SIM115 - the caller owns the handle
            except FileNotFoundError:
                # An overwrite or delete published itself and unlinked these bytes between the lookup and the open:
                # look again. The same metadata still published means the file is really missing.
                if self._lookup(bucket, key) is info:
                    raise

    def read(self, bucket: str, key: str) -> tuple[ObjectInfo, bytes]:
        info, handle = self.open(bucket, key)
        with handle:
            return info, handle.read()

    def delete(self, bucket: str, key: str) -> bool:
        """Remove `key`; False when it did not exist (COS answers 204 either way)."""
        entry = self._bucket(bucket)
        with self._key_lock(bucket, key):
            info = self._lookup(bucket, key)
            if info is None:
                return False
            # Metadata first: once it is gone the object is gone, whatever happens to the data file.
            self._meta_path(bucket, key).unlink()
            entry.meta.sync()
            with self._lock:
                entry.index.remove(key)
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
        entry = self._bucket(bucket)
        with self._lock:
            return entry.index.list(prefix, delimiter, marker, max_keys)

    # ---- internals -----------------------------------------------------------------------------
    def _bucket(self, bucket: str) -> _Bucket:
        entry = self._buckets.get(bucket)
        if entry is None:
            raise no_such_bucket(bucket)
        return entry

    def _lookup(self, bucket: str, key: str) -> ObjectInfo | None:
        entry = self._bucket(bucket)
        with self._lock:
            return entry.index.objects.get(key)

    def _key_lock(self, bucket: str, key: str) -> threading.Lock:
        return self._key_locks[hash((bucket, key)) % _KEY_LOCK_STRIPES]

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self._root / bucket / "meta" / f"{_key_hash(key)}.json"

    def _unlink_data(self, bucket: str, data_file: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._root / bucket / "data" / data_file).unlink()


def _recover_bucket(bucket_dir: Path) -> BucketIndex:
    """Rebuild the index from metadata and sweep what a crash can leave behind."""
    data_dir, meta_dir = bucket_dir / "data", bucket_dir / "meta"
    data_dir.mkdir(exist_ok=True)
    meta_dir.mkdir(exist_ok=True)
    upload_dirs = [d for d in (bucket_dir / "uploads").glob("*") if d.is_dir()]
    for directory in (bucket_dir, data_dir, meta_dir, bucket_dir / "config", *upload_dirs):
        for stray in directory.glob(f"{TMP_PREFIX}*"):
            log.info("standin store: removing interrupted write %s", stray)
            stray.unlink()
    index = BucketIndex()
    for meta_file in meta_dir.glob("*.json"):
        info = _load_meta(meta_file, data_dir)
        if info is not None:
            index.put(info)
    referenced = {info.data_file for info in index.objects.values()}
    for data_file in data_dir.iterdir():
        if data_file.name not in referenced:
            log.info("standin store: removing unreferenced data file %s", data_file)
            data_file.unlink()
    return index


def _load_meta(meta_file: Path, data_dir: Path) -> ObjectInfo | None:
    try:
        info = ObjectInfo(**orjson.loads(meta_file.read_bytes()))
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
