"""POST Object (browser form upload): the form's policy and its signature (pure logic, no HTTP objects).

COS's form signature: SignKey = HMAC-SHA1(SecretKey, q-key-time); StringToSign = SHA1(policy JSON text);
q-signature = HMAC-SHA1(SignKey, StringToSign), all lowercase hex. The policy (base64 JSON) carries an
`expiration` and `conditions`: `{"field": "value"}` (exact), `["eq" | "starts-with", "$field", "value"]`, and
`["content-length-range", min, max]`. Every condition must hold; fields are matched case-insensitively.

The policy's `q-sign-time` condition is checked against the form's `q-key-time`: every Tencent sample (the doc's
and cos-js-sdk-v5's sample server `/post-policy` route) puts `q-sign-time` in the policy and sends only `q-key-time`
in the form, with the same value (spec: web-upload-and-deploy-api.md, section 2). Error texts are COS's
("Condition key q-ak doesn't match the value ...", "You post object request has been expired, ...").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from superres.standin.errors import CosError
from superres.standin.settings import Credential

_REQUIRED = ("policy", "q-sign-algorithm", "q-ak", "q-key-time", "q-signature")


@dataclass(frozen=True)
class FormPolicy:
    conditions: tuple[object, ...]
    length_range: tuple[int, int] | None


def _mismatch(name: str, expected: object) -> CosError:
    return CosError(403, "AccessDenied", f"Condition key {name} doesn't match the value {expected}")


def verify_form(
    fields: Mapping[str, str], credential_for: Callable[[str, str | None], Credential],
    clock: Callable[[], float] = time.time,
) -> tuple[FormPolicy, Credential]:
    """Check the form's signature and the policy's expiry; returns the conditions to check against the upload."""
    missing = [name for name in _REQUIRED if not fields.get(name)]
    if missing:
        raise CosError(403, "AccessDenied", f"the form is missing {', '.join(missing)}")
    if fields["q-sign-algorithm"].lower() != "sha1":
        raise CosError(403, "AccessDenied", "q-sign-algorithm must be sha1")
    credential = credential_for(fields["q-ak"], fields.get("x-cos-security-token") or None)
    try:
        policy_text = base64.b64decode(fields["policy"], validate=True)
        policy = json.loads(policy_text)
    except (binascii.Error, ValueError, RecursionError):
        raise CosError(400, "InvalidPolicyDocument", "policy must be base64 of a JSON document") from None
    key_time = fields["q-key-time"]
    sign_key = hmac.new(credential.secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    string_to_sign = hashlib.sha1(policy_text).hexdigest()
    expected = hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()
    if not hmac.compare_digest(expected.encode(), fields["q-signature"].lower().encode("utf-8", "replace")):
        raise CosError(403, "SignatureDoesNotMatch", "The Signature you specified does not match what we calculated.")
    start, _, end = key_time.partition(";")
    if not (start.isdigit() and end.isdigit() and int(start) <= clock() <= int(end)):
        raise CosError(403, "AccessDenied", "Request has expired")
    if credential.token is not None and fields.get("x-cos-security-token") != credential.token:
        raise CosError(403, "InvalidAccessKeyId", "This SecretId is a temporary key: send x-cos-security-token.")
    if not isinstance(policy, dict) or not isinstance(policy.get("conditions", []), list):
        raise CosError(400, "InvalidPolicyDocument", "policy must be an object with a conditions list")
    try:
        expiration = datetime.fromisoformat(str(policy.get("expiration", "")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise CosError(400, "InvalidPolicyDocument", "policy expiration must be an ISO 8601 time") from None
    now = clock()
    if expiration < now:
        raise CosError(403, "AccessDenied", f"You post object request has been expired, expiration time: "
                       f"{int(expiration)} but the time now : {int(now)}")
    conditions = tuple(policy.get("conditions", []))
    if not conditions:
        raise CosError(400, "InvalidPolicyDocument",
                       "You must provide condition if you specify a policy in post object request.")
    length_range = None
    for condition in conditions:
        if isinstance(condition, list) and condition and condition[0] == "content-length-range":
            if len(condition) != 3 or not all(isinstance(v, int) for v in condition[1:]):
                raise CosError(400, "InvalidPolicyDocument", "content-length-range takes two integers")
            length_range = (condition[1], condition[2])
    return FormPolicy(conditions, length_range), credential


def check_conditions(policy: FormPolicy, fields: Mapping[str, str], bucket: str, key: str, size: int) -> None:
    """Every policy condition against the form (`key` after ${filename} substitution) and the file's size."""
    values = {**{k.lower(): v for k, v in fields.items()}, "bucket": bucket, "key": key}
    values.setdefault("q-sign-time", values.get("q-key-time", ""))
    for condition in policy.conditions:
        if isinstance(condition, dict):
            for name, expected in condition.items():
                if values.get(name.lower().lstrip("$")) != expected:
                    raise _mismatch(name.lstrip("$"), expected)
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with"):
            op, name, expected = condition
            if not isinstance(name, str) or not isinstance(expected, str):
                raise CosError(400, "InvalidPolicyDocument", f"malformed condition {condition!r}")
            actual = values.get(name.lower().lstrip("$"), "")
            if (op == "eq" and actual != expected) or (op == "starts-with" and not actual.startswith(expected)):
                raise _mismatch(name.lstrip("$"), expected)
        elif not (isinstance(condition, list) and condition and condition[0] == "content-length-range"):
            raise CosError(400, "InvalidPolicyDocument", f"unsupported condition {condition!r}")
    if policy.length_range is not None:
        low, high = policy.length_range
        if not low <= size <= high:
            code = "EntityTooLarge" if size > high else "EntityTooSmall"
            raise CosError(400, code, f"the file is {size} bytes; the policy allows {low}..{high}")
