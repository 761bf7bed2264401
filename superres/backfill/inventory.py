"""COS Inventory reports as a backfill source: manifest.json + CSV files, as COS writes them.

Layout and format (Tencent COS "Inventory Overview", intl doc 436/30622; shared/spec/tencent-platform-facts.md):
    <dest-prefix>/<appid>/<source-bucket>/<config-id>/<YYYYMMDD>/manifest.json
    <dest-prefix>/<appid>/<source-bucket>/<config-id>/<hash>.csv.gz
manifest.json names the source bucket and appid, `fileFormat` "CSV", `fileSchema` (the CSV's columns, e.g.
"Appid, Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, ...") and `files` [{key, size, md5Checksum}].
The CSV files have no header row; the Key column is URL-encoded ("must be decoded before you can use it").
Rows come in no promised order, so they are sorted by key here with bounded memory (sorted runs on disk,
then a k-way merge) before the diff planner merges them with the destination listings.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import io
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote_plus, unquote_plus

from .plan import ListedObject, parse_last_modified

SORT_RUN_OBJECTS = 200_000  # objects per sorted run held in memory (~60 MB at most)
_DEFAULT_SCHEMA = ("Appid", "Bucket", "Key", "Size", "LastModifiedDate", "ETag")


class InventoryError(ValueError):
    """The report cannot be read: what is wrong with it and where."""


@dataclass(frozen=True)
class Manifest:
    where: str  # the manifest's path or cos://bucket/key, for messages
    source_bucket: str  # "<name>-<appid>"
    schema: tuple[str, ...]
    files: tuple[str, ...]
    object_count: int | None
    _open: Callable[[str], IO[bytes]]

    def open_file(self, key: str) -> IO[bytes]:
        return self._open(key)


def load_manifest(spec: str, *, client: object = None, default_bucket: str | None = None) -> Manifest:
    """A manifest from a local path, or from COS: `cos://BUCKET/KEY`, or a key in `default_bucket`."""
    path = Path(spec)
    if path.is_dir():
        path = path / "manifest.json"
    if path.is_file():
        return _parse_manifest(path.read_bytes(), str(path), _local_opener(path.parent))
    if spec.startswith("cos://"):
        bucket, _, key = spec[len("cos://"):].partition("/")
    else:
        bucket, key = default_bucket or "", spec
    if client is None or not bucket or not key or spec.startswith(("/", ".")):
        raise InventoryError(f"--inventory {spec!r}: no such file, and not a COS key (cos://BUCKET/KEY or a key in "
                             "the bucket)")
    opener = _cos_opener(client, bucket)
    data = opener(key).read()
    return _parse_manifest(data, f"cos://{bucket}/{key}", opener)


def _parse_manifest(data: bytes, where: str, opener: Callable[[str], IO[bytes]]) -> Manifest:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InventoryError(f"{where} is not JSON ({exc}); pass the report's manifest.json") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise InventoryError(f"{where} has no 'files' list: is it a COS Inventory manifest.json?")
    if str(doc.get("fileFormat", "CSV")).upper() != "CSV":
        raise InventoryError(f"{where}: fileFormat {doc.get('fileFormat')!r}; only CSV reports are read")
    schema = tuple(part.strip() for part in str(doc.get("fileSchema") or "").split(",") if part.strip())
    schema = schema or _DEFAULT_SCHEMA
    if "Key" not in schema:
        raise InventoryError(f"{where}: fileSchema {doc.get('fileSchema')!r} has no Key column")
    name, appid = str(doc.get("sourceBucket") or ""), str(doc.get("sourceAppid") or "")
    bucket = name if not appid or name.endswith(f"-{appid}") else f"{name}-{appid}"
    files = tuple(str(f.get("key")) for f in doc["files"] if isinstance(f, dict) and f.get("key"))
    count = doc.get("filterObjectCount") or doc.get("listObjectCount")
    return Manifest(where, bucket, schema, files, int(count) if str(count or "").isdigit() else None, opener)


def _local_opener(manifest_dir: Path) -> Callable[[str], IO[bytes]]:
    def open_local(key: str) -> IO[bytes]:
        # A data file's key is its key in the report's bucket; a downloaded report keeps that layout under some
        # root, or keeps the files next to the manifest (or one folder up, where COS puts them).
        candidates = [ancestor / key for ancestor in (manifest_dir, *manifest_dir.parents)]
        candidates += [manifest_dir / Path(key).name, manifest_dir.parent / Path(key).name]
        for candidate in candidates:
            if candidate.is_file():
                return candidate.open("rb")
        raise InventoryError(f"the report's data file {key!r} is not next to {manifest_dir / 'manifest.json'} "
                             "(download the whole report folder)")
    return open_local


def _cos_opener(client: object, bucket: str) -> Callable[[str], IO[bytes]]:
    def open_cos(key: str) -> IO[bytes]:
        from qcloud_cos.cos_exception import CosServiceError

        try:
            response = client.get_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
        except CosServiceError as exc:
            raise InventoryError(f"cos://{bucket}/{key}: {exc.get_error_code()} "
                                 f"({exc.get_error_msg()})") from None
        return response["Body"].get_raw_stream()  # type: ignore[no-any-return]
    return open_cos


def rows(manifest: Manifest) -> Iterator[ListedObject]:
    """Every current, non-delete-marker object the report lists, in the report's order."""
    schema = manifest.schema
    index = {name: i for i, name in enumerate(schema)}
    key_i, size_i, etag_i = index["Key"], index.get("Size"), index.get("ETag")
    modified_i, latest_i, marker_i = index.get("LastModifiedDate"), index.get("IsLatest"), index.get("IsDeleteMarker")
    for name in manifest.files:
        with manifest.open_file(name) as raw:
            text = io.TextIOWrapper(_maybe_gunzip(raw, name), encoding="utf-8", newline="")
            for line, row in enumerate(csv.reader(text), 1):
                if not row:
                    continue
                if len(row) < len(schema):
                    raise InventoryError(f"{name} line {line}: {len(row)} columns, the manifest's fileSchema has "
                                         f"{len(schema)}")
                if line == 1 and tuple(cell.strip() for cell in row[:len(schema)]) == schema:
                    continue  # a header row (COS writes none; a hand-made report may)
                if latest_i is not None and row[latest_i].lower() == "false":
                    continue
                if marker_i is not None and row[marker_i].lower() == "true":
                    continue
                size = row[size_i] if size_i is not None else ""
                # Form encoding (a space is '+', a plus '%2B'), as the S3 inventory format COS follows writes it
                # (cloud-custodian#1997: S3 Inventory keys need unquote_plus); percent-only keys decode the same.
                yield ListedObject(unquote_plus(row[key_i]), int(size) if size.isdigit() else 0,
                                   row[etag_i] if etag_i is not None else "",
                                   parse_last_modified(row[modified_i]) if modified_i is not None else None)


def _maybe_gunzip(raw: IO[bytes], name: str) -> IO[bytes]:
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if name.endswith(".gz") or head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def sorted_objects(objects: Iterable[ListedObject], *, prefix: str = "", after: str | None = None,
                   run_size: int = SORT_RUN_OBJECTS) -> Iterator[ListedObject]:
    """`objects` under `prefix` and after `after`, sorted by key, holding at most `run_size` in memory."""
    run: list[ListedObject] = []
    runs: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="superres-inventory-") as tmp:
        for obj in objects:
            if not obj.key.startswith(prefix) or (after is not None and obj.key <= after):
                continue
            run.append(obj)
            if len(run) >= run_size:
                runs.append(_write_run(sorted(run, key=_by_key), Path(tmp) / f"run-{len(runs)}.jsonl"))
                run = []
        run.sort(key=_by_key)
        if not runs:
            yield from run
            return
        if run:
            runs.append(_write_run(run, Path(tmp) / f"run-{len(runs)}.jsonl"))
        yield from heapq.merge(*(_read_run(path) for path in runs), key=_by_key)


def _by_key(obj: ListedObject) -> str:
    return obj.key


def _write_run(objects: list[ListedObject], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for obj in objects:
            fh.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
    return path


def _read_run(path: Path) -> Iterator[ListedObject]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield ListedObject(*json.loads(line))


def write_report(root: Path, *, bucket: str, objects: Iterable[ListedObject], files: int = 2,
                 config_id: str = "superres", date: str = "20261202", dest_prefix: str = "cos_bucket_inventory",
                 shuffle_seed: int | None = 7) -> Path:
    """Write a report in the layout and format COS writes (for tests and benchmarks); returns manifest.json.

    Keys are URL-encoded (form encoding, as COS/S3 inventory CSVs are), files gzip-compressed, no header row,
    rows in no particular order."""
    name, _, appid = bucket.rpartition("-")
    base = root / dest_prefix / appid / name / config_id
    base.mkdir(parents=True, exist_ok=True)
    items = list(objects)
    if shuffle_seed is not None:
        import random

        random.Random(shuffle_seed).shuffle(items)
    schema = ("Appid", "Bucket", "Key", "Size", "LastModifiedDate", "ETag", "StorageClass")
    entries = []
    for part in range(max(1, files)):
        chunk = items[part::max(1, files)]
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for obj in chunk:
            modified = "" if obj.last_modified is None else _iso(obj.last_modified)
            writer.writerow([appid, name, quote_plus(obj.key, safe="/"), obj.size, modified, obj.etag, "STANDARD"])
        data = gzip.compress(buffer.getvalue().encode("utf-8"), mtime=0)
        digest = hashlib.md5(data).hexdigest()  # noqa: S324 - the manifest's md5Checksum, not security
        key = f"{dest_prefix}/{appid}/{name}/{config_id}/{digest}.csv.gz"
        (root / key).write_bytes(data)
        entries.append({"key": key, "size": str(len(data)), "md5Checksum": digest})
    manifest = {
        "sourceAppid": appid, "sourceBucket": name, "destinationAppid": appid, "destinationBucket": name,
        "fileFormat": "CSV", "listObjectCount": str(len(items)),
        "listStorageSize": str(sum(o.size for o in items)), "filterObjectCount": str(len(items)),
        "filterStorageSize": str(sum(o.size for o in items)), "fileSchema": ", ".join(schema), "files": entries,
    }
    path = base / date / "manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (path.parent / "manifest.checksum").write_text(hashlib.md5(path.read_bytes()).hexdigest(),  # noqa: S324
                                                   encoding="utf-8")
    return path


def _iso(stamp: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}Z"



@dataclass
class InventorySource:
    """A backfill source: the report's objects under `prefix`, sorted by key."""

    manifest: Manifest
    prefix: str = ""
    description: str = "inventory"

    def objects(self, after: str | None) -> Iterator[ListedObject]:
        return sorted_objects(rows(self.manifest), prefix=self.prefix, after=after)

    def total(self) -> int | None:
        # The manifest counts the whole report; under a narrower prefix the total is not known in advance.
        return self.manifest.object_count if not self.prefix else None
