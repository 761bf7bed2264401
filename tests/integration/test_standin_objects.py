"""COS object and bucket API of the stand-in, through the unmodified cos-python-sdk-v5 over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

import pytest
import requests
import xmltodict
from qcloud_cos.cos_exception import CosServiceError

from superres.standin import StandIn, StandinSettings

from .conftest import EventRecorder

BODY = b"0123456789abcdefghij"


def _read(response: dict) -> bytes:
    return response["Body"].get_raw_stream().read()


def _keys(listing: dict) -> list[str]:
    return [item["Key"] for item in listing.get("Contents", [])]


def _prefixes(listing: dict) -> list[str]:
    return [item["Prefix"] for item in listing.get("CommonPrefixes", [])]


def _service_error(call, *args, **kwargs) -> CosServiceError:  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value


def test_put_then_get_returns_the_body_and_an_md5_etag(cos, bucket: str) -> None:
    put = cos.put_object(Bucket=bucket, Key="a.bin", Body=BODY)
    got = cos.get_object(Bucket=bucket, Key="a.bin")
    md5 = f'"{hashlib.md5(BODY).hexdigest()}"'
    assert put["ETag"] == md5
    assert got["ETag"] == md5
    assert _read(got) == BODY
    assert got["Content-Length"] == str(len(BODY))


def test_metadata_and_content_type_round_trip(cos, bucket: str) -> None:
    cos.put_object(
        Bucket=bucket, Key="m.dat", Body=BODY, ContentType="image/x-test", Metadata={"x-cos-meta-origin": "camera-7"}
    )
    for response in (cos.get_object(Bucket=bucket, Key="m.dat"), cos.head_object(Bucket=bucket, Key="m.dat")):
        assert response["Content-Type"] == "image/x-test"
        assert response["x-cos-meta-origin"] == "camera-7"
        assert "Last-Modified" in response


def test_content_type_defaults_from_the_key_extension(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="photo.jpg", Body=BODY)
    assert cos.head_object(Bucket=bucket, Key="photo.jpg")["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("header", "expected", "content_range"),
    [
        ("bytes=2-5", BODY[2:6], "bytes 2-5/20"),
        ("bytes=15-", BODY[15:], "bytes 15-19/20"),
        ("bytes=-3", BODY[-3:], "bytes 17-19/20"),
        ("bytes=10-999", BODY[10:], "bytes 10-19/20"),
    ],
)
def test_range_get_returns_the_slice(cos, bucket: str, header: str, expected: bytes, content_range: str) -> None:
    cos.put_object(Bucket=bucket, Key="r.bin", Body=BODY)
    got = cos.get_object(Bucket=bucket, Key="r.bin", Range=header)
    assert _read(got) == expected
    assert got["Content-Range"] == content_range
    assert got["Content-Length"] == str(len(expected))


def test_unsatisfiable_range_is_416_invalid_range(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="r.bin", Body=BODY)
    err = _service_error(cos.get_object, Bucket=bucket, Key="r.bin", Range="bytes=20-30")
    assert (err.get_status_code(), err.get_error_code()) == (416, "InvalidRange")


def test_416_names_the_object_size_in_content_range(standin: StandIn, cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="r.bin", Body=BODY)
    host = standin.settings.bucket_host(bucket)
    authorization = cos.get_auth(Method="GET", Bucket=bucket, Key="r.bin", Headers={"Host": host})
    response = requests.get(
        f"{standin.endpoint_url}/r.bin", headers={"Host": host, "Authorization": authorization, "Range": "bytes=-0"}
    )
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */20"


def test_head_object_reports_size_and_etag(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="h.bin", Body=BODY)
    head = cos.head_object(Bucket=bucket, Key="h.bin")
    assert head["Content-Length"] == str(len(BODY))
    assert head["ETag"] == f'"{hashlib.md5(BODY).hexdigest()}"'


def test_delete_removes_the_object_and_answers_204(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="d.bin", Body=BODY)
    assert cos.object_exists(Bucket=bucket, Key="d.bin") is True
    cos.delete_object(Bucket=bucket, Key="d.bin")
    assert cos.object_exists(Bucket=bucket, Key="d.bin") is False
    err = _service_error(cos.get_object, Bucket=bucket, Key="d.bin")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")
    cos.delete_object(Bucket=bucket, Key="d.bin")  # deleting a missing key is not an error in COS


@pytest.mark.parametrize(
    "key",
    [
        "with space.txt",
        "plus+sign.txt",
        "100%.txt",
        "%2F-looks-encoded.txt",
        "hash#tag.txt",
        "what?.txt",
        "a&b=c.txt",
        "中文目录/图片.jpg",
        "emoji-😀/🐱.png",
        "dir/./dot.txt",
        "a//double.txt",
    ],
)
def test_unusual_keys_round_trip_through_put_get_and_list(cos, bucket: str, key: str) -> None:
    cos.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert _read(cos.get_object(Bucket=bucket, Key=key, KeySimplifyCheck=False)) == key.encode()
    assert _keys(cos.list_objects(Bucket=bucket)) == [key]
    assert _keys(cos.list_objects(Bucket=bucket, EncodingType="url")) == [requests.utils.quote(key, safe="/")]


def test_list_with_prefix_and_delimiter_groups_common_prefixes(cos, bucket: str) -> None:
    for key in ("in/a.jpg", "in/b.jpg", "in/sub/c.jpg", "out/x.png", "top.txt"):
        cos.put_object(Bucket=bucket, Key=key, Body=b"x")
    root = cos.list_objects(Bucket=bucket, Delimiter="/")
    assert _keys(root) == ["top.txt"]
    assert _prefixes(root) == ["in/", "out/"]
    inside = cos.list_objects(Bucket=bucket, Prefix="in/", Delimiter="/")
    assert _keys(inside) == ["in/a.jpg", "in/b.jpg"]
    assert _prefixes(inside) == ["in/sub/"]
    assert inside["Prefix"] == "in/"
    assert _keys(cos.list_objects(Bucket=bucket, Prefix="in/")) == ["in/a.jpg", "in/b.jpg", "in/sub/c.jpg"]


def test_list_entries_carry_etag_size_and_storage_class(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="k", Body=BODY)
    (entry,) = cos.list_objects(Bucket=bucket)["Contents"]
    assert entry["ETag"] == f'"{hashlib.md5(BODY).hexdigest()}"'
    assert entry["Size"] == str(len(BODY))
    assert entry["StorageClass"] == "STANDARD"
    assert entry["LastModified"].endswith("Z")


def test_list_pages_with_max_keys_and_marker_cover_every_key_once(cos, bucket: str) -> None:
    keys = sorted(f"k{i:02d}" for i in range(7))
    for key in keys:
        cos.put_object(Bucket=bucket, Key=key, Body=b"x")
    seen, marker, pages = [], "", 0
    while True:
        page = cos.list_objects(Bucket=bucket, MaxKeys=3, Marker=marker)
        seen += _keys(page)
        pages += 1
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert seen == keys
    assert pages == 3


def test_list_pages_with_delimiter_do_not_repeat_a_common_prefix(cos, bucket: str) -> None:
    for key in ("a/1", "a/2", "a/3", "b", "c/1", "d"):
        cos.put_object(Bucket=bucket, Key=key, Body=b"x")
    entries, marker = [], ""
    while True:
        page = cos.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2, Marker=marker)
        entries += _keys(page) + _prefixes(page)
        if page["IsTruncated"] == "false":
            break
        marker = page["NextMarker"]
    assert sorted(entries) == ["a/", "b", "c/", "d"]


def test_create_bucket_twice_is_409_and_head_bucket_works(standin: StandIn, cos) -> None:
    name = f"t{uuid.uuid4().hex[:12]}-{standin.settings.appid}"
    cos.create_bucket(Bucket=name)
    assert cos.head_bucket(Bucket=name)["x-cos-bucket-region"] == standin.settings.region
    err = _service_error(cos.create_bucket, Bucket=name)
    assert (err.get_status_code(), err.get_error_code()) == (409, "BucketAlreadyOwnedByYou")
    assert standin.bucket_exists(name)


def test_missing_bucket_is_404_no_such_bucket(standin: StandIn, cos) -> None:
    missing = f"missing{uuid.uuid4().hex[:8]}-{standin.settings.appid}"
    err = _service_error(cos.get_object, Bucket=missing, Key="x")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchBucket")
    assert _service_error(cos.head_bucket, Bucket=missing).get_status_code() == 404


def test_upload_file_single_part(cos, bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "small.bin"
    local.write_bytes(BODY * 100)
    response = cos.upload_file(Bucket=bucket, Key="up/small.bin", LocalFilePath=str(local), EnableMD5=True)
    assert response["ETag"] == f'"{hashlib.md5(BODY * 100).hexdigest()}"'
    assert _read(cos.get_object(Bucket=bucket, Key="up/small.bin")) == BODY * 100


def test_put_with_enable_md5_is_accepted(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="md5.bin", Body=BODY, EnableMD5=True)
    assert cos.object_exists(Bucket=bucket, Key="md5.bin")


@pytest.mark.parametrize(
    ("content_md5", "code"),
    [(base64.b64encode(hashlib.md5(b"other").digest()).decode(), "BadDigest"), ("not-base64!", "InvalidDigest")],
)
def test_wrong_content_md5_is_refused_and_nothing_stored(cos, bucket: str, content_md5: str, code: str) -> None:
    err = _service_error(cos.put_object, Bucket=bucket, Key="bad.bin", Body=BODY, ContentMD5=content_md5)
    assert (err.get_status_code(), err.get_error_code()) == (400, code)
    assert _keys(cos.list_objects(Bucket=bucket)) == []


def test_key_over_850_bytes_is_key_too_long(cos, bucket: str) -> None:
    err = _service_error(cos.put_object, Bucket=bucket, Key="k" * 851, Body=BODY)
    assert (err.get_status_code(), err.get_error_code()) == (400, "KeyTooLong")


def test_every_response_carries_request_id_and_server(standin: StandIn, cos, bucket: str) -> None:
    put = cos.put_object(Bucket=bucket, Key="id.bin", Body=BODY)
    assert put["x-cos-request-id"]
    assert put["Server"] == "tencent-cos"
    anonymous = requests.get(f"{standin.endpoint_url}/id.bin", headers={"Host": standin.settings.bucket_host(bucket)})
    error = xmltodict.parse(anonymous.content)["Error"]
    assert anonymous.status_code == 403
    assert anonymous.headers["Content-Type"] == "application/xml"
    assert anonymous.headers["x-cos-request-id"] == error["RequestId"]
    assert anonymous.headers["Server"] == "tencent-cos"
    assert set(error) == {"Code", "Message", "Resource", "RequestId", "TraceId"}


def test_host_for_another_region_is_refused_with_a_clear_message(standin: StandIn, bucket: str) -> None:
    host = standin.settings.bucket_host(bucket).replace(standin.settings.region, "ap-beijing")
    response = requests.get(f"{standin.endpoint_url}/x", headers={"Host": host})
    assert response.status_code == 404
    assert "ap-beijing" in xmltodict.parse(response.content)["Error"]["Message"]


def test_host_that_is_not_a_bucket_host_is_invalid_uri(standin: StandIn) -> None:
    response = requests.get(f"{standin.endpoint_url}/x", headers={"Host": "example.com"})
    assert response.status_code == 400
    assert xmltodict.parse(response.content)["Error"]["Code"] == "InvalidURI"


def test_put_emits_object_created_with_the_uploaders_authorization(
    cos, bucket: str, standin_events: EventRecorder
) -> None:
    cos.put_object(Bucket=bucket, Key="ev/a.txt", Body=BODY, Metadata={"x-cos-meta-k": "v"})
    (event,) = standin_events.for_bucket(bucket)
    assert (event.key, event.size, event.event_name) == ("ev/a.txt", len(BODY), "cos:ObjectCreated:Put")
    assert event.etag == f'"{hashlib.md5(BODY).hexdigest()}"'
    assert event.meta == {"x-cos-meta-k": "v"}
    assert event.authorization.startswith("q-sign-algorithm=sha1&q-ak=")
    assert event.source_ip == "127.0.0.1"
    assert event.request_id


def test_a_failing_callback_does_not_fail_the_write(tmp_path: Path) -> None:
    def broken(_event: object) -> None:
        raise RuntimeError("trigger is down")

    with StandIn(StandinSettings(tmp_path), on_object_created=broken) as server:
        bucket = server.create_bucket("cb")
        client = server.client()
        client.put_object(Bucket=bucket, Key="k", Body=BODY)
        assert _read(client.get_object(Bucket=bucket, Key="k")) == BODY


def test_objects_survive_a_restart_on_the_same_data_dir(tmp_path: Path) -> None:
    settings = StandinSettings(tmp_path)
    with StandIn(settings) as first:
        bucket = first.create_bucket("keep")
        first.client().put_object(Bucket=bucket, Key="中文 key+1", Body=BODY)
    with StandIn(settings) as second:
        client = second.client()
        assert _keys(client.list_objects(Bucket=bucket)) == ["中文 key+1"]
        assert _read(client.get_object(Bucket=bucket, Key="中文 key+1")) == BODY


def test_utf8_metadata_and_pic_operations_values_verify_and_round_trip(standin, bucket):
    """The SDK sends str header values as UTF-8 and signs them that way; CJK values must not break signing."""
    client = standin.client()
    client.put_object(Bucket=bucket, Key="meta-utf8.txt", Body=b"x", Metadata={"x-cos-meta-name": "猫 photo"})
    raw = client.head_object(Bucket=bucket, Key="meta-utf8.txt")["x-cos-meta-name"]
    assert raw.encode("latin-1").decode("utf-8") == "猫 photo"
