"""TC3-HMAC-SHA256, TencentCloud API 3.0's request signature, verified for the local cloud APIs (SCF, CAM, and
any other service served the same way, e.g. STS): as tencentcloud-sdk-python's AbstractClient signs
(shared/spec/web-upload-and-deploy-api.md section 3.2)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

# TencentCloud API 3.0 rejects requests whose X-TC-Timestamp is more than 5 minutes off.
MAX_CLOCK_SKEW_S = 300


class Tc3Error(Exception):
    """A refused signature, with the API's error code (AuthFailure.*)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class KeyPair(Protocol):
    secret_id: str
    secret_key: str
    token: str | None


@dataclass(frozen=True)
class SignedCall:
    """What TC3 covers: the method, path, query, headers (any case), body."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


def verify_tc3(call: SignedCall, credentials: Mapping[str, KeyPair], clock: Callable[[], float]) -> tuple[KeyPair, str]:
    """The matching credential and the signed service name (the credential scope's), or Tc3Error."""
    headers = {k.lower(): v for k, v in call.headers.items()}
    fields = _parse(headers.get("authorization", ""))
    secret_id, date, service, terminator = (fields["Credential"].split("/") + ["", "", "", ""])[:4]
    credential = credentials.get(secret_id)
    if credential is None:
        raise Tc3Error("AuthFailure.SecretIdNotFound", "the SecretId is not found; check your credentials")
    try:
        timestamp = int(headers.get("x-tc-timestamp", ""))
    except ValueError:
        raise Tc3Error("AuthFailure.InvalidAuthorization", "X-TC-Timestamp is missing or not a number") from None
    if abs(clock() - timestamp) > MAX_CLOCK_SKEW_S:
        raise Tc3Error("AuthFailure.SignatureExpire", "the request's timestamp is more than 5 minutes off")
    if not service or terminator != "tc3_request" or date != utc_date(timestamp):
        raise Tc3Error("AuthFailure.InvalidAuthorization", f"credential scope {fields['Credential']!r} is not "
                       f"'<SecretId>/{utc_date(timestamp)}/<service>/tc3_request'")
    signed = {name.lower(): headers.get(name.lower(), "") for name in fields["SignedHeaders"].split(";")}
    expected = tc3_signature(credential.secret_key, method=call.method, path=call.path or "/", query=call.query,
                             headers=signed, body=call.body, timestamp=timestamp, service=service)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise Tc3Error("AuthFailure.SignatureFailure",
                       "the signature does not match: check the SecretKey and the signing steps")
    if credential.token and headers.get("x-tc-token") != credential.token:
        raise Tc3Error("AuthFailure.TokenFailure", "the temporary credential's token is missing or wrong")
    return credential, service


def tc3_signature(secret_key: str, *, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                  timestamp: int, service: str) -> str:
    """The canonical request over the signed headers and the body's SHA-256, then HMAC over date, service and
    'tc3_request'."""
    canonical_headers = "".join(f"{name}:{value.strip()}\n" for name, value in headers.items())
    canonical_request = "\n".join([method.upper(), path, query, canonical_headers, ";".join(headers),
                                   hashlib.sha256(body).hexdigest()])
    date = utc_date(timestamp)
    string_to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/{service}/tc3_request",
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


def _parse(authorization: str) -> dict[str, str]:
    algorithm, _, rest = authorization.partition(" ")
    if algorithm != "TC3-HMAC-SHA256":
        raise Tc3Error("AuthFailure.InvalidAuthorization", "Authorization must use TC3-HMAC-SHA256")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise Tc3Error("AuthFailure.InvalidAuthorization", "Authorization lacks Credential, SignedHeaders or Signature")
    return fields
