"""cos-python-sdk-v5's high-level helpers, unmodified, against the local stack: upload_file (multipart above
1 MB), download_file, copy/copy_object, delete_objects, presigned GET/PUT fetched with plain HTTP, ACL and
tagging round trips. Uploads are followed through the trigger to the function's log line and its result."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import requests
from qcloud_cos.cos_exception import CosServiceError

from .conftest import BUCKET, Stack, image_size, large_photo_png, photo_png, result_of

HOST = {"Host": f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"}


def _read(response: dict) -> bytes:
    return response["Body"].get_raw_stream().read()


def test_upload_file_of_a_1_2_mb_photo_is_multipart_and_super_resolved(stack: Stack, tmp_path: Path) -> None:
    local = photo_png(tmp_path / "astronaut.png", 1280, 853)
    assert 1.2e6 < local.stat().st_size < 5 * 1024 * 1024  # above the SDK's 1 MB part size, within CI's limit
    client = stack.client()
    client.upload_file(Bucket=BUCKET, Key="uploads/py-1.2mb.png", LocalFilePath=str(local))
    line = stack.function_line("uploads/py-1.2mb.png")
    assert line["event_name"] == "cos:ObjectCreated:CompleteMultipartUpload"
    assert line["outcome"] == "processed"
    assert _read(client.get_object(Bucket=BUCKET, Key="uploads/py-1.2mb.png")) == local.read_bytes()
    result = _read(client.get_object(Bucket=BUCKET, Key=result_of("uploads/py-1.2mb.png")))
    assert image_size(result) == (2560, 1706)


def test_upload_file_of_a_25_mb_photo_lands_and_the_function_skips_it_as_too_large(stack: Stack,
                                                                                   tmp_path: Path) -> None:
    # AISuperResolution takes at most 5 MB: the function's documented answer is a `too_large` skip (no CI call).
    local = large_photo_png(tmp_path / "big.png", 25 * 1024 * 1024)
    client = stack.client()
    client.upload_file(Bucket=BUCKET, Key="uploads/py-25mb.png", LocalFilePath=str(local), MAXThread=4)
    line = stack.function_line("uploads/py-25mb.png")
    assert line["event_name"] == "cos:ObjectCreated:CompleteMultipartUpload"
    assert (line["outcome"], line["reason"]) == ("skipped", "too_large")
    assert line["size"] == local.stat().st_size
    head = client.head_object(Bucket=BUCKET, Key="uploads/py-25mb.png")
    assert int(head["Content-Length"]) == local.stat().st_size
    assert head["ETag"].strip('"').endswith("-25") or head["ETag"].strip('"').count("-") == 1
    downloaded = tmp_path / "back.png"
    client.download_file(Bucket=BUCKET, Key="uploads/py-25mb.png", DestFilePath=str(downloaded))  # ranged, > 20 MB
    assert hashlib.md5(downloaded.read_bytes()).digest() == hashlib.md5(local.read_bytes()).digest()
    assert not client.object_exists(Bucket=BUCKET, Key=result_of("uploads/py-25mb.png"))


def test_copy_makes_an_identical_object_and_a_copy_event(stack: Stack, tmp_path: Path) -> None:
    client = stack.client()
    body = photo_png(tmp_path / "c.png", 200, 150).read_bytes()
    client.put_object(Bucket=BUCKET, Key="staging/c.png", Body=body, Metadata={"x-cos-meta-camera": "x100"})
    source = {"Bucket": BUCKET, "Key": "staging/c.png", "Region": "ap-guangzhou"}
    result = client.copy_object(Bucket=BUCKET, Key="uploads/copied.png", CopySource=source)
    assert result["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    copied = client.get_object(Bucket=BUCKET, Key="uploads/copied.png")
    assert _read(copied) == body and copied["x-cos-meta-camera"] == "x100"
    line = stack.function_line("uploads/copied.png")
    assert (line["event_name"], line["outcome"]) == ("cos:ObjectCreated:Copy", "processed")
    assert image_size(_read(client.get_object(Bucket=BUCKET, Key=result_of("uploads/copied.png")))) == (400, 300)
    # (The high-level `client.copy` first HEADs the source at <bucket>.cos.<region>.myqcloud.com whatever the
    # client's IP/Port, an SDK limitation outside the stand-in's reach; copy_object is what it then calls.)


def test_delete_objects_removes_what_it_names_and_reports_each(stack: Stack) -> None:
    client = stack.client()
    for key in ("del/a", "del/b", "del/keep"):
        client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    response = client.delete_objects(Bucket=BUCKET, Delete={"Object": [{"Key": "del/a"}, {"Key": "del/b"},
                                                                        {"Key": "del/never-was"}]})
    assert sorted(d["Key"] for d in response["Deleted"]) == ["del/a", "del/b", "del/never-was"]
    assert [o["Key"] for o in client.list_objects(Bucket=BUCKET, Prefix="del/")["Contents"]] == ["del/keep"]
    quiet = client.delete_objects(Bucket=BUCKET, Delete={"Quiet": "true", "Object": [{"Key": "del/keep"}]})
    assert "Deleted" not in quiet
    assert "Contents" not in client.list_objects(Bucket=BUCKET, Prefix="del/")


def _fetch(method: str, url: str, **kwargs: object) -> requests.Response:
    """In IP/Port mode the URL holds the IP, so the bucket's domain goes in the Host header (what `curl --resolve`
    does); the URLs below are signed for that host (`Headers=HOST`), as they would be against real COS."""
    return requests.request(method, url, headers=HOST, timeout=60, **kwargs)  # type: ignore[arg-type]


def test_presigned_put_then_get_with_plain_http(stack: Stack, tmp_path: Path) -> None:
    client = stack.client()
    body = photo_png(tmp_path / "p.png", 120, 80).read_bytes()
    put_url = client.get_presigned_url(Bucket=BUCKET, Key="uploads/presigned.png", Method="PUT", Expired=300,
                                     Headers=HOST)
    assert _fetch("PUT", put_url, data=body).status_code == 200
    line = stack.function_line("uploads/presigned.png")
    assert (line["event_name"], line["outcome"]) == ("cos:ObjectCreated:Put", "processed")
    get_url = client.get_presigned_download_url(Bucket=BUCKET, Key="uploads/presigned.png", Expired=300,
                                                 Headers=HOST)
    got = _fetch("GET", get_url)
    assert (got.status_code, got.content) == (200, body)
    # the signature covers the path: the same URL for another key is refused
    assert _fetch("GET", get_url.replace("presigned.png", "other.png")).status_code == 403
    expired = client.get_presigned_download_url(Bucket=BUCKET, Key="uploads/presigned.png", Expired=-10,
                                                 Headers=HOST)
    assert _fetch("GET", expired).status_code == 403


def test_presigned_ci_process_url_returns_the_super_resolved_image(stack: Stack, tmp_path: Path) -> None:
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="staging/ci.png", Body=photo_png(tmp_path / "ci.png", 60, 40).read_bytes())
    url = client.get_presigned_url(Bucket=BUCKET, Key="staging/ci.png", Method="GET",
                                   Params={"ci-process": "AISuperResolution"}, Headers=HOST)
    response = _fetch("GET", url)
    assert response.status_code == 200
    assert image_size(response.content) == (120, 80)


def test_acl_and_tagging_round_trip_without_touching_the_object(stack: Stack) -> None:
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="meta/acl.txt", Body=b"keep me")
    client.put_object_acl(Bucket=BUCKET, Key="meta/acl.txt", ACL="public-read")
    grants = client.get_object_acl(Bucket=BUCKET, Key="meta/acl.txt")["AccessControlList"]["Grant"]
    assert {g["Permission"] for g in grants} == {"FULL_CONTROL", "READ"}
    assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") for g in grants)
    tags = {"Tag": [{"Key": "project", "Value": "superres"}, {"Key": "stage", "Value": "test"}]}
    client.put_object_tagging(Bucket=BUCKET, Key="meta/acl.txt", Tagging={"TagSet": tags})
    got = client.get_object_tagging(Bucket=BUCKET, Key="meta/acl.txt")["TagSet"]["Tag"]
    assert sorted((t["Key"], t["Value"]) for t in got) == [("project", "superres"), ("stage", "test")]
    client.delete_object_tagging(Bucket=BUCKET, Key="meta/acl.txt")
    assert "Tag" not in (client.get_object_tagging(Bucket=BUCKET, Key="meta/acl.txt").get("TagSet") or {})
    assert _read(client.get_object(Bucket=BUCKET, Key="meta/acl.txt")) == b"keep me"


def _upload_parts(client, key: str, parts: list[bytes]) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etags = [{"PartNumber": n, "ETag": client.upload_part(Bucket=BUCKET, Key=key, Body=body, PartNumber=n,
                                                          UploadId=upload_id)["ETag"]}
             for n, body in enumerate(parts, start=1)]
    return upload_id, etags


@pytest.mark.parametrize(
    ("name", "code"),
    [("wrong_etag", "InvalidPart"), ("descending", "InvalidPartOrder"), ("small_first_part", "EntityTooSmall"),
     ("missing_part", "InvalidPart")],
)
def test_complete_multipart_errors_store_nothing(stack: Stack, name: str, code: str) -> None:
    client = stack.client()
    key = f"mp-errors/{name}.bin"
    big, small = b"a" * (1024 * 1024), b"b" * 100
    upload_id, parts = _upload_parts(client, key, [small, big] if name == "small_first_part" else [big, small])
    if name == "wrong_etag":
        parts[1]["ETag"] = '"00000000000000000000000000000000"'
    elif name == "descending":
        parts.reverse()
    elif name == "missing_part":
        parts.append({"PartNumber": 3, "ETag": parts[0]["ETag"]})
    with pytest.raises(CosServiceError) as info:
        client.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Part": parts})
    assert (info.value.get_status_code(), info.value.get_error_code()) == (400, code)
    assert not client.object_exists(Bucket=BUCKET, Key=key)
    listed = client.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
    assert [int(p["PartNumber"]) for p in listed["Part"]] == [1, 2]
    client.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
    with pytest.raises(CosServiceError) as gone:
        client.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
    assert gone.value.get_error_code() == "NoSuchUpload"
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Upload", [])
    assert uploads == []
