"""POST Object, the browser form upload (no SDK has a helper for it: a web page builds the form), sent with plain
HTTP multipart/form-data: a signed policy lets the upload in, the `Post` event reaches the function, and a form
the policy does not allow stores nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

from .conftest import BUCKET, Stack, image_size, photo_png, result_of

HOST = {"Host": f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"}


def _form(key: str, *, conditions: list | None = None, expires_in: int = 600, secret: str = DEMO_SECRET_KEY,
          extra: dict | None = None) -> dict[str, str]:
    now = int(time.time())
    key_time = f"{now - 60};{now + expires_in}"
    expiration = datetime.fromtimestamp(now + expires_in, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    policy = json.dumps({"expiration": expiration, "conditions": [
        {"q-sign-algorithm": "sha1"}, {"q-ak": DEMO_SECRET_ID}, {"q-sign-time": key_time}, {"bucket": BUCKET},
        *(conditions or [])]}).encode()
    sign_key = hmac.new(secret.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    signature = hmac.new(sign_key.encode(), hashlib.sha1(policy).hexdigest().encode(), hashlib.sha1).hexdigest()
    return {"key": key, "policy": base64.b64encode(policy).decode(), "q-sign-algorithm": "sha1",
            "q-ak": DEMO_SECRET_ID, "q-key-time": key_time, "q-sign-time": key_time, "q-signature": signature,
            **(extra or {})}


def _post(stack: Stack, fields: dict[str, str], body: bytes, filename: str = "photo.png") -> requests.Response:
    return requests.post(f"{stack.endpoint}/", data=fields, files={"file": (filename, body, "image/png")},
                         headers=HOST, timeout=60)


def test_form_upload_fires_post_and_is_super_resolved(stack: Stack, tmp_path: Path) -> None:
    body = photo_png(tmp_path / "f.png", 100, 70).read_bytes()
    fields = _form("uploads/form/${filename}", conditions=[["starts-with", "$key", "uploads/form/"]],
                   extra={"success_action_status": "201", "x-cos-meta-origin": "browser"})
    response = _post(stack, fields, body, filename="cat.png")
    assert response.status_code == 201, response.text
    assert "<Key>uploads/form/cat.png</Key>" in response.text
    line = stack.function_line("uploads/form/cat.png")
    assert (line["event_name"], line["outcome"]) == ("cos:ObjectCreated:Post", "processed")
    client = stack.client()
    stored = client.get_object(Bucket=BUCKET, Key="uploads/form/cat.png")
    assert stored["Body"].get_raw_stream().read() == body and stored["x-cos-meta-origin"] == "browser"
    result = client.get_object(Bucket=BUCKET, Key=result_of("uploads/form/cat.png"))["Body"].get_raw_stream().read()
    assert image_size(result) == (200, 140)


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [("wrong_secret", 403, "SignatureDoesNotMatch"), ("expired", 403, "AccessDenied"),
     ("key_outside_prefix", 403, "AccessDenied"), ("too_big", 400, "EntityTooLarge"),
     ("tampered_policy", 403, "SignatureDoesNotMatch")],
)
def test_form_the_policy_does_not_allow_stores_nothing(stack: Stack, name: str, status: int, code: str) -> None:
    key = f"forms/{name}.bin"
    conditions = [["starts-with", "$key", "forms/"], ["content-length-range", 0, 10]]
    if name == "wrong_secret":
        fields = _form(key, conditions=conditions, secret="not-the-key")
    elif name == "expired":
        fields = _form(key, conditions=conditions, expires_in=-30)
    elif name == "key_outside_prefix":
        fields = _form("elsewhere/x.bin", conditions=conditions)
    elif name == "tampered_policy":
        fields = _form(key, conditions=conditions)
        fields["policy"] = base64.b64encode(base64.b64decode(fields["policy"]).replace(b"forms/", b"")).decode()
    else:
        fields = _form(key, conditions=conditions)
    response = _post(stack, fields, b"x" * (100 if name == "too_big" else 5))
    assert response.status_code == status, response.text
    assert f"<Code>{code}</Code>" in response.text
    client = stack.client()
    assert not client.object_exists(Bucket=BUCKET, Key=key)
    assert not client.object_exists(Bucket=BUCKET, Key="elsewhere/x.bin")
