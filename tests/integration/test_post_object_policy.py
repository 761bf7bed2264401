"""POST Object policies as COS checks them, with the forms Tencent's own samples build: cos-js-sdk-v5's sample
server (`server/sts.js`, route /post-policy) puts `q-sign-time` in the policy and the page sends only
`q-key-time`; `demo/noSDK/post_sign.html` sends key, signature fields, policy, file. A refused form stores nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from datetime import datetime, timezone

import pytest
import requests
import xmltodict

from superres.standin import StandIn
from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

from .conftest import EventRecorder
from .test_refusals import _snapshot


def sample_server_policy(bucket: str, cos_key: str, *, now: int | None = None, extra: list | None = None,
                         ak: str = DEMO_SECRET_ID, secret_key: str = DEMO_SECRET_KEY) -> dict[str, str]:
    """What the sample server's /post-policy answers (its JS, line for line: JSON.stringify is compact)."""
    now = int(time.time()) if now is None else now
    exp = now + 900
    q_key_time = f"{now};{exp}"
    policy = json.dumps({
        "expiration": datetime.fromtimestamp(exp, timezone.utc).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"),
        "conditions": [{"q-sign-algorithm": "sha1"}, {"q-ak": ak}, {"q-sign-time": q_key_time},
                       {"bucket": bucket}, {"key": cos_key}, *(extra or [])],
    }, separators=(",", ":"))
    sign_key = hmac.new(secret_key.encode(), q_key_time.encode(), hashlib.sha1).hexdigest()
    string_to_sign = hashlib.sha1(policy.encode()).hexdigest()
    signature = hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()
    return {"cosKey": cos_key, "policy": base64.b64encode(policy.encode()).decode(), "qSignAlgorithm": "sha1",
            "qAk": ak, "qKeyTime": q_key_time, "qSignature": signature}


def page_post(standin: StandIn, bucket: str, answer: dict[str, str], body: bytes = b"photo bytes",
              key: str | None = None, token: str | None = None) -> requests.Response:
    """demo/noSDK/post_sign.html's FormData, in its order (the token only when signing with a temporary key)."""
    fields = {"key": key or answer["cosKey"], **({"x-cos-security-token": token} if token else {}),
              "q-sign-algorithm": answer["qSignAlgorithm"], "q-ak": answer["qAk"],
              "q-key-time": answer["qKeyTime"], "q-signature": answer["qSignature"], "policy": answer["policy"]}
    return requests.post(f"{standin.endpoint_url}/", data=fields, files={"file": ("a.jpg", body, "image/jpeg")},
                         headers={"Host": standin.settings.bucket_host(bucket)}, timeout=30)


def refusal(response: requests.Response) -> tuple[int, str, str]:
    error = xmltodict.parse(response.content)["Error"]
    return response.status_code, error["Code"], error["Message"]


def test_the_doc_signing_test_vector_reproduces() -> None:
    sign_key = hmac.new(b"BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz", b"1567150692;1567157892", hashlib.sha1).hexdigest()
    assert sign_key == "39acc8c9f34ba5b19bce4e965b370cd3f62d2fba"
    signature = hmac.new(sign_key.encode(), b"d5d903b8360468bc81c1311f134989bc8c8b5b89", hashlib.sha1).hexdigest()
    assert signature == "7758dc9a832e9d301dca704cacbf9d9f8172fdef"


def test_tencents_sample_form_uploads_and_fires_post(standin, cos, bucket: str,  # type: ignore[no-untyped-def]
                                                      standin_events: EventRecorder):
    key = f"file/{time.strftime('%Y%m%d')}/{time.strftime('%Y%m%d')}_{random.randint(100000, 999999)}.jpg"
    response = page_post(standin, bucket, sample_server_policy(bucket, key))
    assert response.status_code == 204
    assert response.headers["ETag"] == f'"{hashlib.md5(b"photo bytes").hexdigest()}"'
    assert cos.get_object(Bucket=bucket, Key=key)["Body"].get_raw_stream().read() == b"photo bytes"
    assert [e.event_name for e in standin_events.for_bucket(bucket)] == ["cos:ObjectCreated:Post"]


def test_a_key_the_policy_does_not_name_is_refused_and_stores_nothing(standin, bucket: str):  # type: ignore[no-untyped-def]
    before = _snapshot(standin)
    response = page_post(standin, bucket, sample_server_policy(bucket, "file/a.jpg"), key="file/b.jpg")
    assert refusal(response) == (403, "AccessDenied", "Condition key key doesn't match the value file/a.jpg")
    assert _snapshot(standin) == before


def test_a_q_key_time_other_than_the_policys_q_sign_time_is_refused(standin, bucket: str):  # type: ignore[no-untyped-def]
    now = int(time.time())
    answer = sample_server_policy(bucket, "file/a.jpg", now=now)
    other = sample_server_policy(bucket, "file/a.jpg", now=now - 5)  # same policy shape, another window
    forged = {**answer, "qKeyTime": other["qKeyTime"], "qSignature": other["qSignature"]}
    assert page_post(standin, bucket, forged).status_code == 403


def test_a_policy_for_another_bucket_or_ak_is_refused(standin, bucket: str):  # type: ignore[no-untyped-def]
    wrong_bucket = sample_server_policy("other-1250000000", "file/a.jpg")
    assert refusal(page_post(standin, bucket, wrong_bucket))[:2] == (403, "AccessDenied")


def test_an_expired_policy_is_refused_with_cos_message(standin, bucket: str):  # type: ignore[no-untyped-def]
    answer = sample_server_policy(bucket, "file/a.jpg", now=int(time.time()) - 1000)
    status, code, message = refusal(page_post(standin, bucket, answer))
    assert (status, code) == (403, "AccessDenied")
    assert message.startswith("Request has expired") or message.startswith("You post object request has been expired")


@pytest.mark.parametrize(("extra", "body", "code"), [
    ([["content-length-range", 1, 5]], b"too many bytes", "EntityTooLarge"),
    ([["starts-with", "$Content-Type", "image/"]], b"x", "AccessDenied"),  # the form sends no Content-Type field
])
def test_other_conditions_hold_or_nothing_is_stored(standin, bucket: str, extra: list, body: bytes, code: str):  # type: ignore[no-untyped-def]
    before = _snapshot(standin)
    response = page_post(standin, bucket, sample_server_policy(bucket, "file/a.jpg", extra=extra), body=body)
    assert refusal(response)[1] == code
    assert _snapshot(standin) == before
