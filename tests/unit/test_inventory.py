"""COS Inventory reports: manifest.json + gzip CSV files with URL-encoded keys, as COS writes them, read back in
key order with bounded memory."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from superres.backfill.inventory import (
    InventoryError,
    InventorySource,
    load_manifest,
    rows,
    sorted_objects,
    write_report,
)
from superres.backfill.plan import ListedObject

BUCKET = "photos-1250000000"


def _objects() -> list[ListedObject]:
    keys = ["uploads/a b.jpg", "uploads/a+b.jpg", "uploads/照片/猫.png", "uploads/100%.png", "uploads/q?x=1#y.jpg",
            'uploads/comma,"quote".jpg']
    return [ListedObject(k, 10 + i, f'"etag{i}"', 1700000000.0 + i) for i, k in enumerate(keys)]


def test_keys_are_decoded_and_rows_read_back_from_the_layout_cos_writes(tmp_path: Path) -> None:
    manifest_path = write_report(tmp_path, bucket=BUCKET, objects=_objects(), files=3)
    assert manifest_path.relative_to(tmp_path).parts[:4] == ("cos_bucket_inventory", "1250000000", "photos",
                                                             "superres")
    manifest = load_manifest(str(manifest_path))
    assert manifest.source_bucket == BUCKET and manifest.object_count == 6 and len(manifest.files) == 3
    assert sorted(rows(manifest)) == sorted(_objects())


def test_a_report_folder_or_a_hand_made_plain_csv_with_a_header_is_read(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text('Appid,Bucket,Key,Size,LastModifiedDate,ETag\n'
                                       '"1250000000","photos","uploads%2Fx.jpg","5","2026-01-01T00:00:00.000Z",'
                                       '"e"\n', encoding="utf-8")
    (tmp_path / "manifest.json").write_text(json.dumps({
        "sourceAppid": "1250000000", "sourceBucket": "photos", "fileFormat": "CSV",
        "fileSchema": "Appid, Bucket, Key, Size, LastModifiedDate, ETag",
        "files": [{"key": "cos_bucket_inventory/1250000000/photos/x/data.csv", "size": "1"}]}), encoding="utf-8")
    manifest = load_manifest(str(tmp_path))
    (obj,) = rows(manifest)
    assert (obj.key, obj.size, obj.etag) == ("uploads/x.jpg", 5, "e")


def test_delete_markers_and_old_versions_are_left_out(tmp_path: Path) -> None:
    data = gzip.compress(b'"photos","a.jpg","v1","false","false","5"\n"photos","a.jpg","v2","true","false","5"\n'
                         b'"photos","b.jpg","v3","true","true","0"\n')
    (tmp_path / "x.csv.gz").write_bytes(data)
    (tmp_path / "manifest.json").write_text(json.dumps({
        "sourceBucket": "photos-1250000000", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size", "files": [{"key": "x.csv.gz"}]}))
    assert [o.key for o in rows(load_manifest(str(tmp_path / "manifest.json")))] == ["a.jpg"]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not JSON"),
    ('{"fileFormat": "CSV"}', "has no 'files' list"),
    ('{"fileFormat": "ORC", "files": []}', "only CSV reports are read"),
    ('{"fileSchema": "Bucket, Size", "files": []}', "has no Key column"),
])
def test_a_bad_manifest_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(InventoryError, match=message):
        load_manifest(str(tmp_path / "manifest.json"))


def test_a_missing_data_file_or_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"files": [{"key": "gone.csv.gz"}]}')
    with pytest.raises(InventoryError, match="is not next to"):
        list(rows(load_manifest(str(tmp_path))))
    with pytest.raises(InventoryError, match="no such file"):
        load_manifest(str(tmp_path / "nope" / "manifest.json"))


def test_sorting_spills_sorted_runs_and_merges_them_filtered_by_prefix_and_resume_point() -> None:
    objects = [ListedObject(f"p/{(i * 7919) % 1000:04d}.jpg", i, "", None) for i in range(1000)]
    objects.append(ListedObject("q/other.jpg", 1, "", None))
    out = list(sorted_objects(objects, prefix="p/", after="p/0499.jpg", run_size=64))  # 16 runs on disk
    assert [o.key for o in out] == [f"p/{i:04d}.jpg" for i in range(500, 1000)]


def test_the_source_total_is_the_manifests_count_only_for_the_whole_report(tmp_path: Path) -> None:
    manifest = load_manifest(str(write_report(tmp_path, bucket=BUCKET, objects=_objects())))
    assert InventorySource(manifest).total() == 6
    assert InventorySource(manifest, prefix="uploads/照片/").total() is None
    assert [o.key for o in InventorySource(manifest, prefix="uploads/照片/").objects(None)] == ["uploads/照片/猫.png"]
