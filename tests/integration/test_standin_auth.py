"""COS signature checks: the pure verifier against signatures made by the SDK's own CosS3Auth, and the same
cases end to end over HTTP."""

from __future__ import annotations

import time

import pytest
import requests
import xmltodict
from qcloud_cos import CosConfig
from qcloud_cos.cos_auth import CosS3Auth
from qcloud_cos.cos_exception import CosServiceError

from superres.standin import CosError, Credential, StandIn
from superres.standin.auth import SignatureVerifier, SignedRequest
from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

from .conftest import TEMP_SECRET_ID, TEMP_SECRET_KEY, TEMP_TOKEN

HOST = "photos-1250000000.cos.ap-guangzhou.myqcloud.com"
DEMO = Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)
TEMP = Credential(TEMP_SECRET_ID, TEMP_SECRET_KEY, token=TEMP_TOKEN)


def _sdk_signed(
    method: str,
    key: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    credential: Credential = DEMO,
    expire: int = 300,
) -> tuple[str, SignedRequest]:
    """Sign like the SDK does (CosS3Auth over a prepared requests.Request) and describe what the server sees."""
    params = params or {}
    config = CosConfig(Region="ap-guangzhou", SecretId=credential.secret_id, SecretKey=credential.secret_key)
    prepared = requests.Request(
        method,
        f"http://127.0.0.1:1/{requests.utils.quote(key)}",
        headers={"Host": HOST, **(headers or {})},
        params=params,
        data=body,
    ).prepare()
    CosS3Auth(config, key, params=params, expire=expire)(prepared)
    seen = SignedRequest(method=method, path="/" + key, params=params, headers=dict(prepared.headers))
    return prepared.headers["Authorization"], seen


def _code(call, *args) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(CosError) as info:
        call(*args)
    return info.value.status, info.value.code


# ---- the pure verifier ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "key", "params", "headers", "body"),
    [
        ("GET", "photo.jpg", {}, {}, None),
        ("PUT", "in/中文 +%#?😀.jpg", {}, {"Content-Type": "image/jpeg", "x-cos-meta-a": "b c"}, b"data"),
        ("POST", "in/a.jpg", {"image_process": ""}, {"Pic-Operations": '{"rules": []}'}, None),
        ("GET", "", {"prefix": "a b/", "delimiter": "/", "max-keys": "10", "encoding-type": "url"}, {}, None),
        ("GET", "x.png", {"ci-process": "AISuperResolution", "magnify": "4"}, {"Range": "bytes=0-1"}, None),
    ],
)
def test_signatures_made_by_the_sdk_verify(method, key, params, headers, body) -> None:  # type: ignore[no-untyped-def]
    authorization, seen = _sdk_signed(method, key, params, headers, body)
    assert SignatureVerifier([DEMO]).verify(authorization, seen) == DEMO


def test_wrong_secret_key_is_signature_does_not_match() -> None:
    authorization, seen = _sdk_signed("GET", "a.jpg", credential=Credential(DEMO_SECRET_ID, "not-the-key"))
    assert _code(SignatureVerifier([DEMO]).verify, authorization, seen) == (403, "SignatureDoesNotMatch")


def test_unknown_secret_id_is_invalid_access_key_id() -> None:
    authorization, seen = _sdk_signed("GET", "a.jpg", credential=Credential("AKIDunknown", DEMO_SECRET_KEY))
    assert _code(SignatureVerifier([DEMO]).verify, authorization, seen) == (403, "InvalidAccessKeyId")


@pytest.mark.parametrize("offset_s", [10_000, -10_000])
def test_outside_the_sign_time_window_is_request_has_expired(offset_s: int) -> None:
    authorization, seen = _sdk_signed("GET", "a.jpg", expire=300)
    verifier = SignatureVerifier([DEMO], clock=lambda: time.time() + offset_s)
    with pytest.raises(CosError) as info:
        verifier.verify(authorization, seen)
    assert (info.value.status, info.value.code, info.value.message) == (403, "AccessDenied", "Request has expired")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: SignedRequest(r.method, "/b.jpg", r.params, r.headers),
        lambda r: SignedRequest("DELETE", r.path, r.params, r.headers),
        lambda r: SignedRequest(r.method, r.path, {"ci-process": "AISuperResolution", "magnify": "2"}, r.headers),
        lambda r: SignedRequest(r.method, r.path, r.params, {**r.headers, "Host": "other-1250000000.cos.x.com"}),
    ],
    ids=["path", "method", "param", "host"],
)
def test_request_changed_after_signing_is_signature_does_not_match(tamper) -> None:  # type: ignore[no-untyped-def]
    authorization, seen = _sdk_signed("GET", "a.jpg", {"ci-process": "AISuperResolution", "magnify": "4"})
    assert _code(SignatureVerifier([DEMO]).verify, authorization, tamper(seen)) == (403, "SignatureDoesNotMatch")


def test_signed_header_missing_from_the_request_is_signature_does_not_match() -> None:
    authorization, seen = _sdk_signed("PUT", "a.jpg", headers={"x-cos-meta-a": "1"}, body=b"x")
    headers = {k: v for k, v in seen.headers.items() if k.lower() != "x-cos-meta-a"}
    stripped = SignedRequest(seen.method, seen.path, seen.params, headers)
    assert _code(SignatureVerifier([DEMO]).verify, authorization, stripped) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("authorization", [None, ""])
def test_missing_authorization_is_access_denied(authorization: str | None) -> None:
    _, seen = _sdk_signed("GET", "a.jpg")
    assert _code(SignatureVerifier([DEMO]).verify, authorization, seen) == (403, "AccessDenied")


@pytest.mark.parametrize(
    "authorization",
    ["garbage", "q-sign-algorithm=md5&q-ak=x&q-sign-time=1;2&q-key-time=1;2&q-signature=ab", "q-ak=only"],
)
def test_malformed_authorization_is_access_denied(authorization: str) -> None:
    _, seen = _sdk_signed("GET", "a.jpg")
    assert _code(SignatureVerifier([DEMO]).verify, authorization, seen) == (403, "AccessDenied")


def test_temporary_key_needs_its_token() -> None:
    verifier = SignatureVerifier([DEMO, TEMP])
    for token_header in ("x-cos-security-token", "x-ci-security-token"):
        authorization, seen = _sdk_signed("GET", "a.jpg", headers={token_header: TEMP_TOKEN}, credential=TEMP)
        assert verifier.verify(authorization, seen) == TEMP
    authorization, seen = _sdk_signed("GET", "a.jpg", credential=TEMP)
    assert _code(verifier.verify, authorization, seen) == (403, "InvalidAccessKeyId")
    authorization, seen = _sdk_signed("GET", "a.jpg", headers={"x-cos-security-token": "stale"}, credential=TEMP)
    assert _code(verifier.verify, authorization, seen) == (403, "ExpiredToken")


# ---- end to end over HTTP ------------------------------------------------------------------------
def _http_error(call, *args, **kwargs) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value.get_status_code(), info.value.get_error_code()


def _raw_error(response: requests.Response) -> tuple[int, str]:
    return response.status_code, xmltodict.parse(response.content)["Error"]["Code"]


def test_http_request_without_authorization_is_403_access_denied(standin: StandIn, cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.txt", Body=b"x")
    host = standin.settings.bucket_host(bucket)
    assert _raw_error(requests.get(f"{standin.endpoint_url}/a.txt", headers={"Host": host})) == (403, "AccessDenied")


def test_http_wrong_secret_key_is_403_signature_does_not_match(standin: StandIn, bucket: str) -> None:
    client = standin.client(secret_id=DEMO_SECRET_ID, secret_key="wrong-secret-key")
    assert _http_error(client.put_object, Bucket=bucket, Key="a.txt", Body=b"x") == (403, "SignatureDoesNotMatch")


def test_http_unknown_secret_id_is_403_invalid_access_key_id(standin: StandIn, bucket: str) -> None:
    client = standin.client(secret_id="AKIDnobody", secret_key=DEMO_SECRET_KEY)
    assert _http_error(client.list_objects, Bucket=bucket) == (403, "InvalidAccessKeyId")


def test_http_signature_copied_to_another_path_is_refused(standin: StandIn, cos, bucket: str) -> None:
    for key in ("a.txt", "b.txt"):
        cos.put_object(Bucket=bucket, Key=key, Body=key.encode())
    host = standin.settings.bucket_host(bucket)
    authorization = cos.get_auth(Method="GET", Bucket=bucket, Key="a.txt", Headers={"Host": host})
    headers = {"Host": host, "Authorization": authorization}
    genuine = requests.get(f"{standin.endpoint_url}/a.txt", headers=headers)
    assert (genuine.status_code, genuine.content) == (200, b"a.txt")
    copied = requests.get(f"{standin.endpoint_url}/b.txt", headers=headers)
    assert _raw_error(copied) == (403, "SignatureDoesNotMatch")


def test_http_signature_with_changed_query_is_refused(standin: StandIn, cos, bucket: str) -> None:
    host = standin.settings.bucket_host(bucket)
    authorization = cos.get_auth(Method="GET", Bucket=bucket, Key="/", Params={"prefix": "a"}, Headers={"Host": host})
    url = f"{standin.endpoint_url}/"
    headers = {"Host": host, "Authorization": authorization}
    assert requests.get(url, params={"prefix": "a"}, headers=headers).status_code == 200
    assert _raw_error(requests.get(url, params={"prefix": "b"}, headers=headers)) == (403, "SignatureDoesNotMatch")


def test_http_expired_signature_is_403_request_has_expired(standin: StandIn, cos, bucket: str) -> None:
    host = standin.settings.bucket_host(bucket)
    # The SDK starts the window 60 s in the past; a negative Expired ends it before now.
    authorization = cos.get_auth(Method="GET", Bucket=bucket, Key="/", Expired=-120, Headers={"Host": host})
    response = requests.get(f"{standin.endpoint_url}/", headers={"Host": host, "Authorization": authorization})
    assert _raw_error(response) == (403, "AccessDenied")
    assert xmltodict.parse(response.content)["Error"]["Message"] == "Request has expired"


def test_http_temporary_key_with_its_token_works(standin: StandIn, bucket: str) -> None:
    client = standin.client(secret_id=TEMP_SECRET_ID, secret_key=TEMP_SECRET_KEY, token=TEMP_TOKEN)
    client.put_object(Bucket=bucket, Key="t.txt", Body=b"x")
    assert client.object_exists(Bucket=bucket, Key="t.txt")


def test_http_temporary_key_without_token_is_403_invalid_access_key_id(standin: StandIn, bucket: str) -> None:
    client = standin.client(secret_id=TEMP_SECRET_ID, secret_key=TEMP_SECRET_KEY)
    assert _http_error(client.put_object, Bucket=bucket, Key="t.txt", Body=b"x") == (403, "InvalidAccessKeyId")


def test_http_temporary_key_with_wrong_token_is_403_expired_token(standin: StandIn, bucket: str) -> None:
    client = standin.client(secret_id=TEMP_SECRET_ID, secret_key=TEMP_SECRET_KEY, token="someone-elses-token")
    assert _http_error(client.put_object, Bucket=bucket, Key="t.txt", Body=b"x") == (403, "ExpiredToken")


def test_refused_requests_store_nothing(standin: StandIn, cos, bucket: str) -> None:
    bad = standin.client(secret_id=DEMO_SECRET_ID, secret_key="wrong-secret-key")
    with pytest.raises(CosServiceError):
        bad.put_object(Bucket=bucket, Key="nope.txt", Body=b"x")
    assert "Contents" not in cos.list_objects(Bucket=bucket)
