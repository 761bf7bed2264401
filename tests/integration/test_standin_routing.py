"""Every request is routed on method + sub-resource + copy header, as COS routes it: sub-resource requests never
touch the object's bytes, and anything not implemented answers COS XML 501 NotImplemented and changes nothing
(no stored byte, no trigger event). Hand-signed HTTP with the SDK's own signer, so each request is exactly the one
named."""

from __future__ import annotations

import hashlib

import pytest
import requests
import xmltodict

from superres.standin import StandIn

from .conftest import EventRecorder
from .test_refusals import _snapshot

BODY = b"the original bytes, which must survive"


def send(standin: StandIn, cos, method: str, bucket: str, key: str = "", params: dict | None = None,  # type: ignore[no-untyped-def]
         headers: dict | None = None, body: bytes = b"") -> requests.Response:
    """A request signed by cos-python-sdk-v5's signer over exactly these parameters and headers."""
    host = standin.settings.bucket_host(bucket)
    params = params or {}
    headers = {"Host": host, **(headers or {})}
    headers["Authorization"] = cos.get_auth(Method=method, Bucket=bucket, Key=key or "/", Params=params,
                                            Headers=headers)
    url = f"{standin.endpoint_url}/{requests.utils.quote(key, safe='/')}"
    return requests.request(method, url, params=params, headers=headers, data=body, timeout=30)


def error_code(response: requests.Response) -> str:
    assert response.headers["Content-Type"] == "application/xml"
    return xmltodict.parse(response.content)["Error"]["Code"]


@pytest.fixture
def stored(cos, bucket: str, standin_events: EventRecorder) -> str:  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=bucket, Key="k.bin", Body=BODY)
    assert len(standin_events.for_bucket(bucket)) == 1
    return bucket


def assert_untouched(cos, bucket: str, events: EventRecorder) -> None:  # type: ignore[no-untyped-def]
    got = cos.get_object(Bucket=bucket, Key="k.bin")
    assert got["Body"].get_raw_stream().read() == BODY
    assert got["ETag"] == f'"{hashlib.md5(BODY).hexdigest()}"'
    assert [e.event_name for e in events.for_bucket(bucket)] == ["cos:ObjectCreated:Put"]  # the setup's PUT only


NOT_IMPLEMENTED = {
    "delete_version": ("DELETE", {"versionId": "v1"}, {}),
    "append": ("PUT", {"append": "", "position": "0"}, {}),
    "restore": ("POST", {"restore": ""}, {}),
    "select": ("POST", {"select": "", "select-type": "2"}, {}),
    "symlink": ("PUT", {"symlink": ""}, {}),
    "delete_acl": ("DELETE", {"acl": ""}, {}),
    "get_version": ("GET", {"versionId": "v1"}, {}),
    "put_retention": ("PUT", {"retention": ""}, {}),
    "post_plain": ("POST", {}, {}),
    "acl_and_tagging_together": ("PUT", {"acl": "", "tagging": ""}, {}),
    "copy_onto_acl": ("PUT", {"acl": ""}, {"x-cos-copy-source": "x-1250000000.cos.ap-guangzhou.myqcloud.com/k"}),
}


@pytest.mark.parametrize("name", sorted(NOT_IMPLEMENTED))
def test_unimplemented_object_request_is_501_and_changes_nothing(standin, cos, stored: str,  # type: ignore[no-untyped-def]
                                                                  standin_events: EventRecorder, name: str):
    method, params, headers = NOT_IMPLEMENTED[name]
    before = _snapshot(standin)
    response = send(standin, cos, method, stored, "k.bin", params, headers, body=b"garbage that must not land")
    assert response.status_code == 501
    assert error_code(response) == "NotImplemented"
    assert _snapshot(standin) == before
    assert_untouched(cos, stored, standin_events)


@pytest.mark.parametrize(
    ("method", "params"),
    [("DELETE", {}), ("PUT", {"website": ""}), ("GET", {"versions": ""}), ("PUT", {"lifecycle": ""}),
     ("DELETE", {"tagging": ""}), ("POST", {"uploads": ""}), ("GET", {"acl": ""})],
)
def test_unimplemented_bucket_request_is_501(standin, cos, stored: str, method: str, params: dict):  # type: ignore[no-untyped-def]
    before = _snapshot(standin)
    response = send(standin, cos, method, stored, "", params, body=b"<x/>")
    assert (response.status_code, error_code(response)) == (501, "NotImplemented")
    assert _snapshot(standin) == before


@pytest.mark.parametrize("method", ["PATCH", "TRACE", "PROPFIND", "MKCOL", "FOO"])
def test_methods_cos_does_not_serve_answer_405_method_not_allowed(standin, cos, stored: str, method: str,  # type: ignore[no-untyped-def]
                                                                   standin_events: EventRecorder):
    # 405, as COS answers, not 501: SDKs retry a 5xx.
    before = _snapshot(standin)
    response = send(standin, cos, method, stored, "k.bin", body=b"garbage that must not land")
    assert (response.status_code, error_code(response)) == (405, "MethodNotAllowed")
    unsigned = requests.request(method, f"{standin.endpoint_url}/k.bin",
                                headers={"Host": standin.settings.bucket_host(stored)}, timeout=10)
    assert (unsigned.status_code, error_code(unsigned)) == (405, "MethodNotAllowed")
    assert _snapshot(standin) == before
    assert_untouched(cos, stored, standin_events)


def test_a_tampered_signed_parameter_is_refused_for_its_signature_before_routing(standin, cos, stored: str):  # type: ignore[no-untyped-def]
    # COS authenticates first: a request whose signed parameter was changed is a bad signature, whatever it asks.
    host = standin.settings.bucket_host(stored)
    auth = cos.get_auth(Method="PUT", Bucket=stored, Key="k.bin", Params={"acl": ""}, Headers={"Host": host})
    response = requests.put(f"{standin.endpoint_url}/k.bin", params={"symlink": ""},
                            headers={"Host": host, "Authorization": auth}, data=b"x", timeout=10)
    assert (response.status_code, error_code(response)) == (403, "SignatureDoesNotMatch")


def test_an_unsigned_request_for_an_unimplemented_route_is_access_denied(standin, stored: str):  # type: ignore[no-untyped-def]
    response = requests.put(f"{standin.endpoint_url}/k.bin", params={"symlink": ""},
                            headers={"Host": standin.settings.bucket_host(stored)}, timeout=10)
    assert (response.status_code, error_code(response)) == (403, "AccessDenied")


def test_put_acl_and_tagging_change_neither_bytes_nor_fire_events(standin, cos, stored: str,  # type: ignore[no-untyped-def]
                                                                   standin_events: EventRecorder):
    assert send(standin, cos, "PUT", stored, "k.bin", {"acl": ""}, {"x-cos-acl": "public-read"}).status_code == 200
    tagging = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
    assert send(standin, cos, "PUT", stored, "k.bin", {"tagging": ""}, body=tagging).status_code == 200
    assert_untouched(cos, stored, standin_events)


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [("PUT", {"partNumber": "1", "uploadId": "deadbeef"}, "NoSuchUpload"),
     ("DELETE", {"uploadId": "deadbeef"}, "NoSuchUpload"),
     ("GET", {"uploadId": "deadbeef"}, "NoSuchUpload"),
     ("POST", {"uploadId": "deadbeef"}, "NoSuchUpload"),
     ("PUT", {"partNumber": "0", "uploadId": "deadbeef"}, "InvalidArgument"),
     ("PUT", {"acl": ""}, "MalformedXML"),
     ("PUT", {"tagging": ""}, "MalformedXML")],
)
def test_sub_resource_errors_leave_the_object_alone(standin, cos, stored: str, standin_events: EventRecorder,  # type: ignore[no-untyped-def]
                                                    method: str, params: dict, code: str):
    before = _snapshot(standin)
    response = send(standin, cos, method, stored, "k.bin", params, body=b"not xml")
    assert 400 <= response.status_code < 500
    assert error_code(response) == code
    assert _snapshot(standin) == before
    assert_untouched(cos, stored, standin_events)


def test_copy_from_a_missing_source_is_no_such_key_and_keeps_the_destination(standin, cos, stored: str,  # type: ignore[no-untyped-def]
                                                                             standin_events: EventRecorder):
    source = f"{standin.settings.bucket_host(stored)}/missing.bin"
    response = send(standin, cos, "PUT", stored, "k.bin", headers={"x-cos-copy-source": source})
    assert (response.status_code, error_code(response)) == (404, "NoSuchKey")
    assert_untouched(cos, stored, standin_events)


def test_sub_resource_gets_return_their_documents_not_the_object(standin, cos, stored: str):  # type: ignore[no-untyped-def]
    acl = send(standin, cos, "GET", stored, "k.bin", {"acl": ""})
    assert "AccessControlPolicy" in xmltodict.parse(acl.content)
    tagging = send(standin, cos, "GET", stored, "k.bin", {"tagging": ""})
    assert "Tagging" in xmltodict.parse(tagging.content)
    uploads = send(standin, cos, "GET", stored, "", {"uploads": ""})
    assert "ListMultipartUploadsResult" in xmltodict.parse(uploads.content)
    for response in (acl, tagging, uploads):
        assert BODY not in response.content


def test_self_copy_without_changes_is_refused_and_replaced_keeps_the_bytes(cos, stored: str,  # type: ignore[no-untyped-def]
                                                                            standin_events: EventRecorder):
    source = {"Bucket": stored, "Key": "k.bin", "Region": "ap-guangzhou"}
    from qcloud_cos.cos_exception import CosServiceError

    with pytest.raises(CosServiceError) as info:
        cos.copy_object(Bucket=stored, Key="k.bin", CopySource=source)
    assert info.value.get_error_code() == "InvalidRequest"
    cos.copy_object(Bucket=stored, Key="k.bin", CopySource=source, CopyStatus="Replaced",
                    Metadata={"x-cos-meta-new": "1"}, ContentType="text/plain")
    head = cos.head_object(Bucket=stored, Key="k.bin")
    assert head["x-cos-meta-new"] == "1" and head["Content-Type"] == "text/plain"
    assert cos.get_object(Bucket=stored, Key="k.bin")["Body"].get_raw_stream().read() == BODY
