"""STS on the stand-in: GetFederationToken and AssumeRole (API 2018-08-13) issuing temporary keys whose policy
the stand-in enforces (spec: web-upload-and-deploy-api.md, section 3).

- Requests are the official SDK's: POST / with a JSON body, X-TC-Action / X-TC-Version / X-TC-Timestamp and a
  TC3-HMAC-SHA256 Authorization, checked here (self-contained; signature, 5-minute timestamp window, key).
- Keys are stateless and survive restarts: TmpSecretKey is an HMAC of TmpSecretId under a secret kept in the data
  folder, and the Token carries the id, the expiry and the policies (compressed), sealed by the same secret. A token
  that does not unseal, or names another SecretId, is refused with 403 InvalidAccessKeyId; an expired one with
  400 ExpiredToken ("The temporary key token has expired", COS's error table).
- GetFederationToken: Name (letters, digits, `-_.@,+=`), Policy (URL-encoded CAM policy, required), DurationSeconds
  (default 1800, at most 7200 as for a root account). AssumeRole: RoleArn naming a role the stand-in knows
  (`qcs::cam::uin/<uin>:roleName/<name>`), RoleSessionName, DurationSeconds (default 7200, at most 43200), and an
  optional Policy: the key's rights are the role's policy intersected with it. Both are signed with one of the
  stand-in's permanent keys (its configured SecretIds); a temporary key asking is AuthFailure.SecretIdNotFound.
- Errors come back as the SDK expects them: HTTP 200 with `{"Response": {"Error": {"Code", "Message"}}}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from superres.standin.cam import Policy, PolicyError, parse_policy
from superres.standin.errors import CosError
from superres.standin.settings import Credential

API_VERSION = "2018-08-13"
MAX_SKEW_S = 300
_NAME = re.compile(r"^[\w+=,.@-]{2,128}$")
_ROLE_ARN = re.compile(r"^qcs::cam::uin/\d+:role(?:Name)?/(?P<role>[\w+=,.@-]+)$")
_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)/tc3_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TempKey:
    secret_id: str
    secret_key: str
    token: str
    expires: int


class TokenAuthority:
    """Issues temporary keys and recognises them again from their token."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self._secret = _load_secret(Path(data_dir) / "sts-secret")
        self._clock = clock

    def issue(self, policies: tuple[Policy, ...], duration_s: int) -> TempKey:
        secret_id = "AKIDtmp" + secrets.token_hex(16)
        expires = int(self._clock()) + duration_s
        payload = json.dumps({"id": secret_id, "exp": expires, "policies": [p.text for p in policies]}).encode()
        sealed = base64.urlsafe_b64encode(zlib.compress(payload, 9)).decode().rstrip("=")
        token = f"{sealed}.{self._mac('token:' + sealed)}"
        return TempKey(secret_id, self._secret_key(secret_id), token, expires)

    def resolve(self, secret_id: str, token: str | None) -> Credential:
        """The temporary credential `secret_id` with `token` stands for, or COS's refusal."""
        if not token:
            raise CosError(403, "InvalidAccessKeyId",
                           "The Access Key Id you provided does not exist in our records (a temporary key must send "
                           "its token in x-cos-security-token).")
        sealed, _, mac = token.partition(".")
        payload = None
        if hmac.compare_digest(mac.encode("utf-8", "replace"), self._mac("token:" + sealed).encode()):
            try:
                payload = json.loads(zlib.decompress(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))))
            except (binascii.Error, ValueError, zlib.error):
                payload = None
        if not isinstance(payload, dict) or payload.get("id") != secret_id:
            raise CosError(403, "InvalidAccessKeyId", "The security token is not valid for this Access Key Id.")
        if payload["exp"] < self._clock():
            raise CosError(400, "ExpiredToken", "The temporary key token has expired")
        policies = tuple(parse_policy(text) for text in payload["policies"])
        return Credential(secret_id, self._secret_key(secret_id), token=token, policies=policies,
                          expires=payload["exp"])

    def _secret_key(self, secret_id: str) -> str:
        return base64.b64encode(hmac.digest(self._secret, b"key:" + secret_id.encode(), "sha256")).decode()[:40]

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:40]


def _load_secret(path: Path) -> bytes:
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret.hex())
        os.replace(tmp, path)
        return secret


def verify_tc3(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, service: str,
               secret_for: Callable[[str], str | None], now: float) -> str:
    """Check a TC3-HMAC-SHA256 request; returns the SecretId that signed it."""
    match = _AUTH.match(headers.get("authorization", ""))
    if match is None:
        raise ApiError("AuthFailure.SignatureFailure", "the Authorization header is not a TC3-HMAC-SHA256 signature")
    secret_key = secret_for(match["id"])
    if secret_key is None:
        raise ApiError("AuthFailure.SecretIdNotFound", "the SecretId is not found")
    stamp = headers.get("x-tc-timestamp", "")
    if not stamp.isdigit() or abs(int(stamp) - now) > MAX_SKEW_S:
        raise ApiError("AuthFailure.SignatureExpire", "X-TC-Timestamp is more than 5 minutes from the server's time")
    date = datetime.fromtimestamp(int(stamp), timezone.utc).strftime("%Y-%m-%d")
    if match["date"] != date or match["service"] != service:
        raise ApiError("AuthFailure.SignatureFailure", "the credential scope does not match the request")
    signed = match["signed"].split(";")
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed)
    canonical = "\n".join([method, path, query, canonical_headers, match["signed"], hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = hmac.digest(("TC3" + secret_key).encode(), date.encode(), "sha256")
    key = hmac.digest(key, service.encode(), "sha256")
    key = hmac.digest(key, b"tc3_request", "sha256")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["sig"]):
        raise ApiError("AuthFailure.SignatureFailure", "the signature does not match")
    return match["id"]


class StsApi:
    """The STS actions, as an ASGI handler for requests carrying X-TC-Action."""

    def __init__(self, credentials: tuple[Credential, ...], roles: Mapping[str, str], authority: TokenAuthority,
                 clock: Callable[[], float] = time.time) -> None:
        self._permanent = {c.secret_id: c for c in credentials if c.token is None}
        self._roles = dict(roles)
        self._authority = authority
        self._clock = clock

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        try:
            response = await self.handle(Request(scope, receive))  # type: ignore[arg-type]
        except ClientDisconnect:
            return  # the caller left before its request body arrived: nobody to answer, nothing issued
        await response(scope, receive, send)  # type: ignore[arg-type]

    async def handle(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            verify_tc3(request.method, request.url.path or "/", request.url.query, headers, body, "sts",
                       self._secret_for, self._clock())
            if headers.get("x-tc-version") != API_VERSION:
                raise ApiError("InvalidParameterValue", f"X-TC-Version must be {API_VERSION}")
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                raise ApiError("InvalidParameter", "the request body is not JSON") from None
            action = headers.get("x-tc-action", "")
            if action == "GetFederationToken":
                result = self._federation_token(params)
            elif action == "AssumeRole":
                result = self._assume_role(params)
            else:
                raise ApiError("InvalidAction", f"{action!r} is not served here (GetFederationToken, AssumeRole)")
        except ApiError as exc:
            return JSONResponse({"Response": {"Error": {"Code": exc.code, "Message": exc.message},
                                              "RequestId": request_id}})
        return JSONResponse({"Response": {**result, "RequestId": request_id}})

    def _secret_for(self, secret_id: str) -> str | None:
        credential = self._permanent.get(secret_id)
        return credential.secret_key if credential else None

    def _federation_token(self, params: dict) -> dict:
        name = params.get("Name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ApiError("InvalidParameter.ParamError", "Name must be 2-128 characters of letters, digits, -_.@,+=")
        if not params.get("Policy"):
            raise ApiError("MissingParameter", "Policy is required")
        policies = (self._policy(params["Policy"]),)
        return self._issue(policies, _duration(params, default=1800, most=7200))

    def _assume_role(self, params: dict) -> dict:
        match = _ROLE_ARN.match(str(params.get("RoleArn", "")))
        if match is None or match["role"] not in self._roles:
            raise ApiError("ResourceNotFound.RoleNotFound", f"role {params.get('RoleArn')!r} is not known here "
                           f"(roles: {', '.join(sorted(self._roles)) or 'none'})")
        session = params.get("RoleSessionName")
        if not isinstance(session, str) or not _NAME.match(session):
            raise ApiError("InvalidParameter.ParamError", "RoleSessionName must be 2-128 characters [\\w+=,.@-]")
        policies = [parse_policy(self._roles[match["role"]])]
        if params.get("Policy"):
            policies.append(self._policy(params["Policy"]))
        return self._issue(tuple(policies), _duration(params, default=7200, most=43200))

    @staticmethod
    def _policy(encoded: object) -> Policy:
        if not isinstance(encoded, str):
            raise ApiError("InvalidParameter.StrategyFormatError", "Policy must be a URL-encoded JSON string")
        if len(encoded) > 2048 * 3:
            raise ApiError("InvalidParameter.PolicyTooLong", "Policy is too long")
        try:
            return parse_policy(unquote(encoded))
        except PolicyError as exc:
            raise ApiError("InvalidParameter.StrategyFormatError", str(exc)) from None

    def _issue(self, policies: tuple[Policy, ...], duration_s: int) -> dict:
        key = self._authority.issue(policies, duration_s)
        expiration = datetime.fromtimestamp(key.expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"Credentials": {"Token": key.token, "TmpSecretId": key.secret_id, "TmpSecretKey": key.secret_key},
                "ExpiredTime": key.expires, "Expiration": expiration}


def _duration(params: dict, *, default: int, most: int) -> int:
    value = params.get("DurationSeconds", default)
    if not isinstance(value, int) or not 1 <= value <= most:
        raise ApiError("InvalidParameter.OverTimeError", f"DurationSeconds must be 1..{most}")
    return value
