"""Multipart uploads on disk, beside the bucket's objects: initiate, parts, list, abort, complete.

Layout: `<data_dir>/<bucket>/uploads/<upload_id>/upload.json` (key, metadata to apply on completion) and
`part-<n>.bin` + `part-<n>.json` per part. Parts are streamed into `.tmp-*` files and renamed into place, like
objects; an upload survives a restart (COS keeps unfinished uploads until they are aborted). Completion
concatenates the named parts into a staged object file and commits it through the object store, so the object
appears in one metadata rename or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from superres.standin.errors import CosError
from superres.standin.store import ObjectInfo, ObjectStore, StagedFile, _write_atomically

MIN_PART_BYTES = 1024 * 1024  # every part but the last (COS: 1 MB)
MAX_PART_NUMBER = 10000
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    upload_id: str
    key: str
    initiated: float
    content_type: str
    meta: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    storage_class: str = "STANDARD"
    acl: dict[str, object] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str  # quoted MD5 hex of the part
    last_modified: float


def no_such_upload(resource: str) -> CosError:
    return CosError(
        404,
        "NoSuchUpload",
        "The specified multipart upload does not exist. The upload ID might be invalid, or the upload might have "
        "been aborted or completed.",
        resource,
    )


class MultipartUploads:
    """Unfinished multipart uploads of every bucket of one object store."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._lock = threading.Lock()

    def initiate(
        self,
        bucket: str,
        key: str,
        content_type: str,
        meta: Mapping[str, str],
        headers: Mapping[str, str],
        storage_class: str,
        acl: Mapping[str, object] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Upload:
        upload = Upload(
            upload_id=f"{int(time.time())}{uuid.uuid4().hex}",
            key=key,
            initiated=time.time(),
            content_type=content_type,
            meta=dict(meta),
            headers=dict(headers),
            storage_class=storage_class,
            acl=dict(acl or {}),
            tags=dict(tags or {}),
        )
        folder = self._folder(bucket, upload.upload_id)
        folder.mkdir(parents=True)
        _write_atomically(folder / "upload.json", json.dumps(asdict(upload)).encode("utf-8"))
        return upload

    def get(self, bucket: str, key: str, upload_id: str) -> Upload:
        """The upload `upload_id` of `key`; NoSuchUpload for an unknown id or one that belongs to another key."""
        resource = f"{bucket}/{key}"
        if not upload_id or not all(c in "0123456789abcdef" for c in upload_id):
            raise no_such_upload(resource)
        try:
            upload = Upload(**json.loads((self._folder(bucket, upload_id) / "upload.json").read_text("utf-8")))
        except (FileNotFoundError, NotADirectoryError):
            raise no_such_upload(resource) from None
        if upload.key != key:
            raise no_such_upload(resource)
        return upload

    def stage_part(self, bucket: str, upload: Upload) -> StagedFile:
        return StagedFile(self._folder(bucket, upload.upload_id) / f".tmp-{uuid.uuid4().hex}")

    def commit_part(self, bucket: str, upload: Upload, number: int, staged: StagedFile) -> Part:
        folder = self._folder(bucket, upload.upload_id)
        part = Part(number=number, size=staged.size, etag=f'"{staged.md5_hex}"', last_modified=time.time())
        with self._lock:
            if not (folder / "upload.json").exists():  # aborted or completed while the part was streaming
                staged.discard()
                raise no_such_upload(f"{bucket}/{upload.key}")
            staged.commit(folder / f"part-{number}.bin")
            _write_atomically(folder / f"part-{number}.json", json.dumps(asdict(part)).encode("utf-8"))
        return part

    def parts(self, bucket: str, upload: Upload) -> list[Part]:
        folder = self._folder(bucket, upload.upload_id)
        found = []
        for path in folder.glob("part-*.json"):
            with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
                found.append(Part(**json.loads(path.read_text("utf-8"))))
        return sorted(found, key=lambda p: p.number)

    def uploads(self, bucket: str) -> list[Upload]:
        root = self._store.bucket_dir(bucket) / "uploads"
        found = []
        if root.is_dir():
            for folder in root.iterdir():
                with contextlib.suppress(FileNotFoundError, NotADirectoryError, ValueError, TypeError):
                    found.append(Upload(**json.loads((folder / "upload.json").read_text("utf-8"))))
        return sorted(found, key=lambda u: (u.key, u.initiated, u.upload_id))

    def abort(self, bucket: str, upload: Upload) -> None:
        with self._lock:
            self._remove(bucket, upload)

    def complete(self, bucket: str, upload: Upload, requested: list[tuple[int, str]]) -> ObjectInfo:
        """Join the requested parts (ascending numbers, matching ETags) into the object; the upload ends."""
        resource = f"{bucket}/{upload.key}"
        if not requested:
            raise CosError(400, "MalformedXML", "CompleteMultipartUpload must name at least one part.", resource)
        numbers = [n for n, _ in requested]
        if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
            raise CosError(400, "InvalidPartOrder", "The list of parts was not in ascending order.", resource)
        by_number = {p.number: p for p in self.parts(bucket, upload)}
        chosen: list[Part] = []
        for number, etag in requested:
            part = by_number.get(number)
            if part is None or _bare(etag) != _bare(part.etag):
                raise CosError(
                    400,
                    "InvalidPart",
                    f"Part {number} was not uploaded, or its ETag does not match the one given.",
                    resource,
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_BYTES:
                raise CosError(
                    400,
                    "EntityTooSmall",
                    f"Part {part.number} is {part.size} bytes; every part but the last must be at least "
                    f"{MIN_PART_BYTES} bytes.",
                    resource,
                )
        folder = self._folder(bucket, upload.upload_id)
        digests = hashlib.md5()
        staged = self._store.stage(bucket)
        try:
            for part in chosen:
                digests.update(bytes.fromhex(_bare(part.etag)))
                with open(folder / f"part-{part.number}.bin", "rb") as source:
                    while chunk := source.read(_COPY_CHUNK):
                        staged.write(chunk)
            with self._lock:
                if not (folder / "upload.json").exists():
                    raise no_such_upload(resource)
                info = self._store.put_staged(
                    bucket,
                    upload.key,
                    staged,
                    upload.content_type,
                    upload.meta,
                    headers=upload.headers,
                    storage_class=upload.storage_class,
                    etag=f'"{digests.hexdigest()}-{len(chosen)}"',
                    acl=upload.acl,
                    tags=upload.tags,
                )
                self._remove(bucket, upload)
        finally:
            staged.discard()
        return info

    def _remove(self, bucket: str, upload: Upload) -> None:
        folder = self._folder(bucket, upload.upload_id)
        # Marker first: once upload.json is gone the upload no longer exists, whatever is left to delete.
        with contextlib.suppress(FileNotFoundError):
            (folder / "upload.json").unlink()
        shutil.rmtree(folder, ignore_errors=True)

    def _folder(self, bucket: str, upload_id: str) -> Path:
        return self._store.bucket_dir(bucket) / "uploads" / upload_id


def _bare(etag: str) -> str:
    return etag.strip().strip('"').lower()
