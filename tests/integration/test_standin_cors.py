"""Bucket CORS as COS does it: PUT/GET/DELETE ?cors through cos-python-sdk-v5 (kept durably), the unsigned
OPTIONS preflight matched against the rules (403 AccessForbidden when nothing matches), and Access-Control-* on
actual answers, errors included, without ever refusing an actual request for CORS."""

from __future__ import annotations

import pytest
import requests
import xmltodict
from qcloud_cos.cos_exception import CosServiceError

from superres.standin import StandIn, StandinSettings

from .test_standin_routing import send

PAGE = "http://127.0.0.1:8123"
RULE = {
    "ID": "web",
    "AllowedOrigin": [PAGE, "https://*.example.com"],
    "AllowedMethod": ["PUT", "GET", "POST", "HEAD"],
    "AllowedHeader": ["*"],
    "ExposeHeader": ["ETag", "Content-Length", "x-cos-request-id"],
    "MaxAgeSeconds": "600",
}
NARROW = {"AllowedOrigin": ["*"], "AllowedMethod": ["GET"], "AllowedHeader": ["range", "x-cos-meta-*"],
          "MaxAgeSeconds": "5"}


@pytest.fixture
def cors_bucket(cos, bucket: str) -> str:  # type: ignore[no-untyped-def]
    cos.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRule": [RULE, NARROW]})
    return bucket


def preflight(standin: StandIn, bucket: str, key: str, origin: str, method: str,
              headers: str | None = None, query: str = "") -> requests.Response:
    sent = {"Host": standin.settings.bucket_host(bucket), "Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return requests.options(f"{standin.endpoint_url}/{key}{query}", headers=sent, timeout=10)


def test_cors_configuration_round_trips_through_the_sdk(cos, cors_bucket: str):  # type: ignore[no-untyped-def]
    rules = cos.get_bucket_cors(Bucket=cors_bucket)["CORSRule"]
    assert rules[0]["ID"] == "web"
    assert rules[0]["AllowedOrigin"] == RULE["AllowedOrigin"]
    assert rules[0]["ExposeHeader"] == RULE["ExposeHeader"]
    assert rules[1]["AllowedHeader"] == ["range", "x-cos-meta-*"]


def test_no_configuration_is_404_no_such_cors_configuration(cos, bucket: str):  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        cos.get_bucket_cors(Bucket=bucket)
    assert (info.value.get_status_code(), info.value.get_error_code()) == (404, "NoSuchCORSConfiguration")


def test_delete_removes_the_configuration_and_preflights_then_fail(standin, cos, cors_bucket: str):  # type: ignore[no-untyped-def]
    cos.delete_bucket_cors(Bucket=cors_bucket)
    with pytest.raises(CosServiceError):
        cos.get_bucket_cors(Bucket=cors_bucket)
    assert preflight(standin, cors_bucket, "a.jpg", PAGE, "PUT").status_code == 403


def test_configuration_survives_a_restart(tmp_path):  # type: ignore[no-untyped-def]
    settings = StandinSettings(data_dir=tmp_path)
    with StandIn(settings) as first:
        bucket = first.create_bucket("durable")
        first.client().put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRule": [RULE]})
    with StandIn(settings) as second:
        assert second.client().get_bucket_cors(Bucket=bucket)["CORSRule"][0]["ID"] == "web"


def test_preflight_needs_no_signature_and_grants_the_rule(standin, cors_bucket: str):  # type: ignore[no-untyped-def]
    response = preflight(standin, cors_bucket, "uploads/a.jpg", PAGE, "PUT",
                         "content-type,x-cos-security-token,Authorization", query="?uploads")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == PAGE
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Allow-Methods"] == "PUT,GET,POST,HEAD"
    assert response.headers["Access-Control-Allow-Headers"] == "content-type,x-cos-security-token,authorization"
    assert response.headers["Access-Control-Expose-Headers"] == "ETag,Content-Length,x-cos-request-id"
    assert response.headers["Access-Control-Max-Age"] == "600"


def test_wildcard_origin_matches_any_run_of_characters(standin, cors_bucket: str):  # type: ignore[no-untyped-def]
    assert preflight(standin, cors_bucket, "a", "https://shop.eu.example.com", "PUT").status_code == 200
    assert preflight(standin, cors_bucket, "a", "http://shop.example.com", "PUT").status_code == 403


def test_listed_headers_must_all_be_allowed(standin, cors_bucket: str):  # type: ignore[no-untyped-def]
    ok = preflight(standin, cors_bucket, "a", "http://elsewhere.test", "GET", "Range,x-cos-meta-author")
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in ok.headers
    assert ok.headers["Access-Control-Allow-Headers"] == "range,x-cos-meta-*"
    refused = preflight(standin, cors_bucket, "a", "http://elsewhere.test", "GET", "range,x-custom")
    assert refused.status_code == 403


@pytest.mark.parametrize(("origin", "method"), [("http://evil.test", "PUT"), (PAGE, "DELETE")])
def test_preflight_without_a_matching_rule_is_403_access_forbidden(standin, cors_bucket: str, origin: str,  # type: ignore[no-untyped-def]
                                                                    method: str):
    response = preflight(standin, cors_bucket, "a.jpg", origin, method)
    assert response.status_code == 403
    error = xmltodict.parse(response.content)["Error"]
    assert error["Code"] == "AccessForbidden"
    assert error["Message"].startswith("CORSResponse: This CORS request is not allowed.")
    assert "Access-Control-Allow-Origin" not in response.headers


def get(standin: StandIn, cos, bucket: str, key: str, origin: str | None = None) -> requests.Response:  # type: ignore[no-untyped-def]
    return send(standin, cos, "GET", bucket, key, headers={"Origin": origin} if origin else {})


def test_actual_answers_carry_the_rule_headers_and_errors_too(standin, cos, cors_bucket: str):  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=cors_bucket, Key="a.txt", Body=b"hello")
    got = get(standin, cos, cors_bucket, "a.txt", PAGE)
    assert got.status_code == 200
    assert got.headers["Access-Control-Allow-Origin"] == PAGE
    assert got.headers["Access-Control-Expose-Headers"] == "ETag,Content-Length,x-cos-request-id"
    assert "Vary" not in got.headers  # ResponseVary is off unless configured
    error = get(standin, cos, cors_bucket, "nope.txt", PAGE)
    assert error.status_code == 404
    assert error.headers["Access-Control-Allow-Origin"] == PAGE


def test_an_actual_request_from_another_origin_is_served_without_cors_headers(standin, cos, cors_bucket: str):  # type: ignore[no-untyped-def]
    cos.put_bucket_cors(Bucket=cors_bucket, CORSConfiguration={"CORSRule": [RULE]})
    cos.put_object(Bucket=cors_bucket, Key="b.txt", Body=b"hello")
    got = get(standin, cos, cors_bucket, "b.txt", "http://evil.test")
    assert got.status_code == 200  # COS does not refuse; the browser does, seeing no Allow-Origin
    assert not any(name.lower().startswith("access-control-") for name in got.headers)


def test_response_vary_adds_vary_origin(standin, cos, bucket: str):  # type: ignore[no-untyped-def]
    body = (b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"
            b"</CORSRule><ResponseVary>true</ResponseVary></CORSConfiguration>")
    assert send(standin, cos, "PUT", bucket, "", {"cors": ""}, body=body).status_code == 200
    cos.put_object(Bucket=bucket, Key="v.txt", Body=b"x")
    assert get(standin, cos, bucket, "v.txt").headers["Vary"] == "Origin"
    assert cos.get_bucket_cors(Bucket=bucket)["ResponseVary"] == "true"


@pytest.mark.parametrize(
    ("rule", "code"),
    [({"AllowedOrigin": ["http://*.a.*"], "AllowedMethod": ["GET"]}, "InvalidArgument"),
     ({"AllowedOrigin": ["*"], "AllowedMethod": ["OPTIONS"]}, "InvalidArgument"),
     ({"AllowedOrigin": ["*"], "AllowedMethod": ["GET"], "ExposeHeader": ["*"]}, "InvalidArgument"),
     ({"AllowedMethod": ["GET"]}, "MalformedXML")],
)
def test_invalid_rules_are_refused_and_change_nothing(cos, cors_bucket: str, rule: dict, code: str):  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        cos.put_bucket_cors(Bucket=cors_bucket, CORSConfiguration={"CORSRule": [rule]})
    assert info.value.get_error_code() == code
    assert cos.get_bucket_cors(Bucket=cors_bucket)["CORSRule"][0]["ID"] == "web"
