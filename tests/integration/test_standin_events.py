"""The event the stand-in fires for each way an object is created, as COS fires it: `Put`, `Copy`,
`CompleteMultipartUpload` (POST Object's `Post` is covered in tests/clients/test_browser_form.py), and nothing
for parts, ACL, tagging or failed requests."""

from __future__ import annotations

import hashlib

import pytest
from qcloud_cos.cos_exception import CosServiceError

from .conftest import EventRecorder

PART = b"p" * (1024 * 1024)


def _names(events: EventRecorder, bucket: str) -> list[tuple[str, str, int]]:
    return [(e.event_name, e.key, e.size) for e in events.for_bucket(bucket)]


def test_multipart_fires_one_event_on_complete_and_none_for_parts(cos, bucket: str,  # type: ignore[no-untyped-def]
                                                                   standin_events: EventRecorder) -> None:
    upload_id = cos.create_multipart_upload(Bucket=bucket, Key="mp.bin")["UploadId"]
    etags = [cos.upload_part(Bucket=bucket, Key="mp.bin", Body=body, PartNumber=n, UploadId=upload_id)["ETag"]
             for n, body in ((1, PART), (2, b"tail"))]
    assert _names(standin_events, bucket) == []
    parts = [{"PartNumber": n, "ETag": etag} for n, etag in zip((1, 2), etags, strict=True)]
    done = cos.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id,
                                         MultipartUpload={"Part": parts})
    digest = hashlib.md5(hashlib.md5(PART).digest() + hashlib.md5(b"tail").digest()).hexdigest()
    assert done["ETag"] == f'"{digest}-2"'
    assert _names(standin_events, bucket) == [("cos:ObjectCreated:CompleteMultipartUpload", "mp.bin",
                                               len(PART) + 4)]
    assert cos.get_object(Bucket=bucket, Key="mp.bin")["Body"].get_raw_stream().read() == PART + b"tail"
    with pytest.raises(CosServiceError) as info:  # the upload is gone once completed
        cos.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id,
                                      MultipartUpload={"Part": parts})
    assert info.value.get_error_code() == "NoSuchUpload"
    assert len(standin_events.for_bucket(bucket)) == 1


def test_upload_part_copy_assembles_from_an_existing_object(cos, bucket: str,  # type: ignore[no-untyped-def]
                                                            standin_events: EventRecorder) -> None:
    cos.put_object(Bucket=bucket, Key="src.bin", Body=PART + b"rest")
    upload_id = cos.create_multipart_upload(Bucket=bucket, Key="dst.bin")["UploadId"]
    source = {"Bucket": bucket, "Key": "src.bin", "Region": "ap-guangzhou"}
    first = cos.upload_part_copy(Bucket=bucket, Key="dst.bin", PartNumber=1, UploadId=upload_id, CopySource=source,
                                 CopySourceRange=f"bytes=0-{len(PART) - 1}")
    second = cos.upload_part_copy(Bucket=bucket, Key="dst.bin", PartNumber=2, UploadId=upload_id,
                                  CopySource=source, CopySourceRange=f"bytes={len(PART)}-{len(PART) + 3}")
    parts = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    cos.complete_multipart_upload(Bucket=bucket, Key="dst.bin", UploadId=upload_id, MultipartUpload={"Part": parts})
    assert cos.get_object(Bucket=bucket, Key="dst.bin")["Body"].get_raw_stream().read() == PART + b"rest"
    assert [name for name, _, _ in _names(standin_events, bucket)] == [
        "cos:ObjectCreated:Put", "cos:ObjectCreated:CompleteMultipartUpload"]


def test_copy_fires_copy_with_the_source_size_and_etag(cos, bucket: str, standin_events: EventRecorder) -> None:  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=bucket, Key="a.bin", Body=b"abc")
    cos.copy_object(Bucket=bucket, Key="b.bin", CopySource={"Bucket": bucket, "Key": "a.bin",
                                                            "Region": "ap-guangzhou"})
    copy_event = standin_events.for_bucket(bucket)[-1]
    assert (copy_event.event_name, copy_event.key, copy_event.size) == ("cos:ObjectCreated:Copy", "b.bin", 3)
    assert copy_event.etag == f'"{hashlib.md5(b"abc").hexdigest()}"'


def test_failed_writes_fire_nothing(cos, bucket: str, standin_events: EventRecorder) -> None:  # type: ignore[no-untyped-def]
    for call in (
        lambda: cos.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"x-cos-meta-a": "v" * 3000}),
        lambda: cos.put_object(Bucket=bucket, Key="m", Body=b"x", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA=="),
        lambda: cos.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "none",
                                                                    "Region": "ap-guangzhou"}),
    ):
        with pytest.raises(CosServiceError):
            call()
    assert _names(standin_events, bucket) == []
