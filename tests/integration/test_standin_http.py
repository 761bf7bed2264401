"""COS's HTTP semantics in the stand-in: conditional requests, stored standard headers, storage class,
`response-*` overrides, Range rules, the 2 KB metadata cap, and malformed input answered with a COS XML 4xx
(never a 500, never ill-formed XML)."""

from __future__ import annotations

import json
import logging
import socket
import time
from urllib.parse import unquote

import pytest
import requests
import xmltodict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qcloud_cos.cos_exception import CosServiceError

from superres.standin import StandIn
from superres.standin.xmldoc import xml_text
from tests.cut_off import send_cut_off

from .request_log import RequestLog
from .test_refusals import _snapshot
from .test_standin_routing import error_code, send

BODY = b"0123456789abcdefghij"


def _status(call, *args, **kwargs) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value.get_status_code(), info.value.get_error_code()


@pytest.fixture
def obj(cos, bucket: str) -> str:  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=bucket, Key="o.bin", Body=BODY)
    return bucket


def test_conditional_get_answers_304_and_412(standin, cos, obj: str) -> None:  # type: ignore[no-untyped-def]
    head = cos.head_object(Bucket=obj, Key="o.bin")
    etag, modified = head["ETag"], head["Last-Modified"]
    assert send(standin, cos, "GET", obj, "o.bin", headers={"If-None-Match": etag}).status_code == 304
    assert send(standin, cos, "GET", obj, "o.bin", headers={"If-Modified-Since": modified}).status_code == 304
    assert send(standin, cos, "GET", obj, "o.bin", headers={"If-None-Match": '"other"'}).content == BODY
    failed = send(standin, cos, "GET", obj, "o.bin", headers={"If-Match": '"other"'})
    assert (failed.status_code, error_code(failed)) == (412, "PreconditionFailed")
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert send(standin, cos, "GET", obj, "o.bin", headers={"If-Unmodified-Since": old}).status_code == 412
    assert send(standin, cos, "GET", obj, "o.bin", headers={"If-Match": etag}).content == BODY
    assert _status(cos.get_object, Bucket=obj, Key="o.bin", IfMatch='"nope"') == (412, "PreconditionFailed")


def test_standard_headers_and_storage_class_are_stored_and_returned(cos, bucket: str) -> None:  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=bucket, Key="h.txt", Body=BODY, CacheControl="max-age=60",
                   ContentDisposition='attachment; filename="h.txt"', ContentEncoding="identity",
                   Expires="Wed, 21 Oct 2037 07:28:00 GMT", StorageClass="STANDARD_IA")
    for response in (cos.head_object(Bucket=bucket, Key="h.txt"), cos.get_object(Bucket=bucket, Key="h.txt")):
        assert response["Cache-Control"] == "max-age=60"
        assert response["Content-Disposition"] == 'attachment; filename="h.txt"'
        assert response["Content-Encoding"] == "identity"
        assert response["Expires"] == "Wed, 21 Oct 2037 07:28:00 GMT"
        assert response["x-cos-storage-class"] == "STANDARD_IA"
    (entry,) = cos.list_objects(Bucket=bucket)["Contents"]
    assert entry["StorageClass"] == "STANDARD_IA"
    assert _status(cos.put_object, Bucket=bucket, Key="x", Body=b"x", StorageClass="GOLD") == (
        400, "InvalidStorageClass")


def test_response_overrides_change_the_answer_not_the_object(cos, obj: str) -> None:  # type: ignore[no-untyped-def]
    got = cos.get_object(Bucket=obj, Key="o.bin", ResponseContentType="text/csv",
                         ResponseContentDisposition="inline", ResponseCacheControl="no-cache")
    assert (got["Content-Type"], got["Content-Disposition"], got["Cache-Control"]) == ("text/csv", "inline",
                                                                                      "no-cache")
    assert cos.head_object(Bucket=obj, Key="o.bin")["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("header", ["bytes=20-", "bytes=25-30", "bytes=" + "9" * 5000 + "-", "bytes=-0"])
def test_ranges_starting_past_the_end_are_416(standin, cos, obj: str, header: str) -> None:  # type: ignore[no-untyped-def]
    response = send(standin, cos, "GET", obj, "o.bin", headers={"Range": header})
    assert (response.status_code, error_code(response)) == (416, "InvalidRange")
    assert response.headers["Content-Range"] == "bytes */20"


def test_huge_suffix_and_end_are_clamped(standin, cos, obj: str) -> None:  # type: ignore[no-untyped-def]
    response = send(standin, cos, "GET", obj, "o.bin", headers={"Range": "bytes=-" + "9" * 5000})
    assert (response.status_code, response.content) == (206, BODY)
    response = send(standin, cos, "GET", obj, "o.bin", headers={"Range": "bytes=5-" + "9" * 5000})
    assert (response.status_code, response.content) == (206, BODY[5:])


def test_user_metadata_over_2_kb_is_refused(cos, bucket: str) -> None:  # type: ignore[no-untyped-def]
    status = _status(cos.put_object, Bucket=bucket, Key="m", Body=b"x", Metadata={"x-cos-meta-big": "v" * 2100})
    assert status == (400, "MetadataTooLarge")
    assert "Contents" not in cos.list_objects(Bucket=bucket)
    cos.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"x-cos-meta-ok": "v" * 1900})


def test_non_ascii_signature_is_403_not_500(standin: StandIn, obj: str) -> None:
    auth = ("q-sign-algorithm=sha1&q-ak=AKIDsuperresLOCALdemo0000000000000000&q-sign-time=1;9999999999"
            "&q-key-time=1;9999999999&q-header-list=&q-url-param-list=&q-signature=签名")
    response = requests.get(f"{standin.endpoint_url}/o.bin", timeout=10, headers={
        "Host": standin.settings.bucket_host(obj), "Authorization": auth.encode().decode("latin-1")})
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")


def test_deeply_nested_pic_operations_is_400(standin, cos, obj: str) -> None:  # type: ignore[no-untyped-def]
    nested = '{"rules": ' + "[" * 5000 + "]" * 5000 + "}"
    before = _snapshot(standin)
    status = _status(cos.ci_image_process, Bucket=obj, Key="o.bin", PicOperations=nested)
    assert status == (400, "InvalidPicOperations")
    assert _snapshot(standin) == before


@pytest.mark.parametrize("key", ["esc\x1bkey", "can\x18key", "em\x19key", "sub\x1a.png"])
def test_keys_with_cos_forbidden_control_characters_are_refused_with_well_formed_xml(standin, cos, bucket: str,  # type: ignore[no-untyped-def]
                                                                       key: str) -> None:
    response = send(standin, cos, "PUT", bucket, key, body=b"x")
    assert (response.status_code, error_code(response)) == (400, "InvalidObjectName")  # error_code parses it
    listing = send(standin, cos, "GET", bucket, "")
    assert xmltodict.parse(listing.content)["ListBucketResult"].get("Contents") is None


@pytest.mark.parametrize("key", ["rs\x1ekey", "bell\x07.png", "us\x1fkey"])
def test_keys_with_other_control_characters_are_stored_as_cos_stores_them(standin, cos, bucket: str,  # type: ignore[no-untyped-def]
                                                                          key: str) -> None:
    cos.put_object(Bucket=bucket, Key=key, Body=b"ctl")
    assert cos.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream().read() == b"ctl"
    listed = cos.list_objects(Bucket=bucket, EncodingType="url")["Contents"]
    assert [unquote(c["Key"]) for c in listed] == [key]
    plain = send(standin, cos, "GET", bucket, "")  # without encoding-type the key is shown escaped, well-formed
    assert xmltodict.parse(plain.content)["ListBucketResult"]["Contents"]["Key"] == xml_text(key)


def test_key_with_a_line_feed_round_trips_with_cos_xml_answers(standin, cos, bucket: str) -> None:  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=bucket, Key="line\nfeed.txt", Body=b"lf")
    assert cos.get_object(Bucket=bucket, Key="line\nfeed.txt")["Body"].get_raw_stream().read() == b"lf"
    missing = send(standin, cos, "GET", bucket, "no\nsuch")
    assert (missing.status_code, error_code(missing)) == (404, "NoSuchKey")
    assert [c["Key"] for c in cos.list_objects(Bucket=bucket, EncodingType="url")["Contents"]] == ["line%0Afeed.txt"]


def test_fileid_with_a_double_leading_slash_is_refused(standin, cos, obj: str) -> None:  # type: ignore[no-untyped-def]
    ops = json.dumps({"rules": [{"fileid": "//x.png", "rule": "ci-process=AISuperResolution"}]})
    assert _status(cos.ci_image_process, Bucket=obj, Key="o.bin", PicOperations=ops) == (400, "InvalidArgument")


@pytest.mark.parametrize(
    ("root", "body"),
    [("Delete", b"<Delete><Object><Key>a</Key>"), ("Delete", b"<Other/>"), ("Delete", b"\x00\x01"),
     ("Delete", b'<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&e;</Key></Object></Delete>'),
     ("Delete", b"<Delete></Delete>")],
)
def test_malformed_xml_bodies_are_400_malformed_xml(standin, cos, obj: str, root: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot(standin)
    response = send(standin, cos, "POST", obj, "", {"delete": ""}, body=body)
    assert response.status_code == 400
    assert error_code(response) in ("MalformedXML",)
    assert _snapshot(standin) == before


MALFORMED_REQUESTS = {
    "huge_max_parts": ("GET", "o.bin", {"uploadId": "ab12", "max-parts": "9" * 40}, {}, b""),
    "word_max_uploads": ("GET", "", {"uploads": "", "max-uploads": "many"}, {}, b""),
    "huge_part_number": ("PUT", "o.bin", {"partNumber": "9" * 40, "uploadId": "ab12"}, {}, b"x"),
    "non_utf8_copy_source": ("PUT", "c.bin", {},
                             {"x-cos-copy-source": "x-1250000000.cos.ap-guangzhou.myqcloud.com/%ff"},
                             b""),
    "copy_source_without_key": ("PUT", "c.bin", {}, {"x-cos-copy-source": "nonsense"}, b""),
    "bad_canned_acl": ("PUT", "o.bin", {"acl": ""}, {"x-cos-acl": "everyone-writes"}, b""),
    "bad_grant": ("PUT", "o.bin", {"acl": ""}, {"x-cos-grant-read": "somebody"}, b""),
    "eleven_tags": ("PUT", "t.bin", {}, {"x-cos-tagging": "&".join(f"k{i}=v" for i in range(11))}, b"x"),
    "tag_xml_without_key": ("PUT", "o.bin", {"tagging": ""}, {}, b"<Tagging><TagSet><Tag><Value>v</Value></Tag>"
                                                              b"</TagSet></Tagging>"),
    "acl_xml_bad_permission": ("PUT", "o.bin", {"acl": ""}, {}, b"<AccessControlPolicy><AccessControlList><Grant>"
                               b"<Grantee><ID>x</ID></Grantee><Permission>ALL</Permission></Grant>"
                               b"</AccessControlList></AccessControlPolicy>"),
    "multi_range": ("GET", "o.bin", {}, {"Range": "bytes=1-2,4-5"}, b""),
    "garbage_dates": ("GET", "o.bin", {}, {"If-Modified-Since": "yesterday", "If-Unmodified-Since": "\x7f"}, b""),
    "encoding_type_other": ("GET", "", {"encoding-type": "base64"}, {}, b""),
    "thousand_and_one_deletes": ("POST", "", {"delete": ""}, {},
                                 b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>"),
    "response_override_with_newline": ("GET", "o.bin", {"response-content-type": "a\nb"}, {}, b""),
    "lower_case_storage_class": ("PUT", "s.bin", {}, {"x-cos-storage-class": "standard_ia"}, b"x"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_REQUESTS))
def test_malformed_requests_never_answer_500_and_always_cos_xml(standin, cos, obj: str, name: str) -> None:  # type: ignore[no-untyped-def]
    method, key, params, headers, body = MALFORMED_REQUESTS[name]
    response = send(standin, cos, method, obj, key, params, headers, body)
    assert response.status_code < 500, response.text
    if response.status_code >= 300:
        xmltodict.parse(response.content)["Error"]["Code"]  # noqa: B018 - a well-formed COS error document
    assert send(standin, cos, "GET", obj, "o.bin").content == BODY


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from([("POST", "", {"delete": ""}), ("PUT", "o.bin", {"acl": ""}),
                            ("PUT", "o.bin", {"tagging": ""}), ("POST", "o.bin", {"uploadId": "ab12"})]),
    body=st.one_of(st.binary(max_size=300),
                   st.text(max_size=200).map(lambda t: f"<Delete><Object><Key>{t}</Key></Object></Delete>".encode())),
)
def test_arbitrary_xml_bodies_never_answer_500(standin, cos, obj: str, target: tuple, body: bytes) -> None:  # type: ignore[no-untyped-def]
    method, key, params = target
    response = send(standin, cos, method, obj, key, params, body=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 300:
        xmltodict.parse(response.content)["Error"]["Code"]  # noqa: B018 - a well-formed COS error document


def test_a_body_cut_off_mid_upload_is_incomplete_not_an_internal_error(  # type: ignore[no-untyped-def]
        standin: StandIn, cos, obj: str, standin_events, caplog: pytest.LogCaptureFixture) -> None:
    """A client killed mid-PUT (the trigger's worker stopped by a second Ctrl-C) closes the connection before its
    Content-Length arrived: the stand-in logs one access line with IncompleteBody, no traceback, and the object
    already stored under that key is untouched (no event, no partial body)."""
    caplog.set_level(logging.INFO, logger="superres.standin")
    events_before = len(standin_events.for_bucket(obj))
    headers = {"Host": standin.settings.bucket_host(obj)}
    headers["Authorization"] = cos.get_auth(Method="PUT", Bucket=obj, Key="o.bin", Headers=headers)
    with RequestLog.attached() as seen:
        send_cut_off(standin.port, "PUT /o.bin HTTP/1.1", headers)
        deadline = time.monotonic() + 10
        while not (cut := [e for e in list(seen.entries) if (e["method"], e["key"]) == ("PUT", "o.bin")]):
            assert time.monotonic() < deadline, "no access line for the cut-off PUT"
            time.sleep(0.05)
    assert [line["code"] for line in cut] == ["IncompleteBody"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("superres")]
    assert cos.get_object(Bucket=obj, Key="o.bin")["Body"].get_raw_stream().read() == BODY
    assert len(standin_events.for_bucket(obj)) == events_before


def test_response_header_names_keep_cos_casing_on_the_wire(standin: StandIn, cos, obj: str) -> None:  # type: ignore[no-untyped-def]
    """SDK answers are plain dicts of the wire's header names: coscmd's download reads `Content-Length`, SDK users
    `response['ETag']`. The HTTP server must not lowercase them (uvicorn's httptools protocol does, and it is what
    uvicorn picks by itself wherever httptools is installed, as it is in this test environment)."""
    headers = {"Host": standin.settings.bucket_host(obj)}
    headers["Authorization"] = cos.get_auth(Method="HEAD", Bucket=obj, Key="o.bin", Headers=headers)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", standin.port), timeout=10) as conn:
        conn.sendall(f"HEAD /o.bin HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    names = [line.split(b":", 1)[0] for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]]
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert {b"Content-Length", b"ETag", b"Last-Modified", b"Content-Type"} <= set(names), names
    assert b"x-cos-request-id" in names
