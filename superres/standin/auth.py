"""Verification of COS `q-sign-algorithm=sha1` Authorization headers (platform facts, section 5).

Pure: `SignatureVerifier.verify` takes the parsed request and the header value and either returns the
matching credential or raises `CosError`. No HTTP objects, so it is testable with hand-made requests.

Choices where the docs are silent (documented here, asserted by tests):
- Only the parameters and headers named in `q-url-param-list` / `q-header-list` are signed, so only those are
  checked (as with real COS). A named parameter or header missing from the request -> SignatureDoesNotMatch.
- A credential with a token is a temporary key. Its request must carry `x-cos-security-token` (or
  `x-ci-security-token`): missing -> 403 InvalidAccessKeyId (the SecretId alone is not a valid key);
  present but different -> 403 ExpiredToken (the session behind it is not the one issued).
- `q-key-time` feeds the SignKey and `q-sign-time` the StringToSign and the validity window, as in the doc.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from superres.standin.errors import CosError
from superres.standin.settings import Credential

if TYPE_CHECKING:
    from superres.standin.sts import TokenAuthority

_TOKEN_HEADERS = ("x-cos-security-token", "x-ci-security-token")
_REQUIRED_FIELDS = ("q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-signature")


@dataclass(frozen=True)
class SignedRequest:
    """What the signature covers: method, URL-decoded path, decoded query parameters, headers (any case)."""

    method: str
    path: str
    params: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class AuthorizationFields:
    secret_id: str
    sign_time: tuple[int, int]
    key_time: str
    sign_time_raw: str
    header_list: tuple[str, ...]
    param_list: tuple[str, ...]
    signature: str


def _encode(value: str | bytes) -> str:
    return quote(value, "-_.~")


def _canonical(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {_encode(k).lower(): _encode(v) for k, v in pairs}


def _parse_window(raw: str, field_name: str) -> tuple[int, int]:
    start, sep, end = raw.partition(";")
    if not sep or not start.isdigit() or not end.isdigit():
        raise CosError(403, "AccessDenied", f"{field_name} must be '<start>;<end>' Unix seconds, got {raw!r}")
    return int(start), int(end)


def parse_authorization(value: str) -> AuthorizationFields:
    """Split `q-sign-algorithm=sha1&q-ak=...&q-signature=...` into its fields (values are not URL-encoded)."""
    fields: dict[str, str] = {}
    for part in value.strip().split("&"):
        name, _, field_value = part.partition("=")
        fields[name.strip().lower()] = field_value.strip()
    missing = [name for name in _REQUIRED_FIELDS if not fields.get(name)]
    if missing:
        raise CosError(403, "AccessDenied", f"Authorization is missing {', '.join(missing)}")
    if fields["q-sign-algorithm"].lower() != "sha1":
        raise CosError(403, "AccessDenied", f"q-sign-algorithm must be sha1, got {fields['q-sign-algorithm']!r}")
    _parse_window(fields["q-key-time"], "q-key-time")
    return AuthorizationFields(
        secret_id=fields["q-ak"],
        sign_time=_parse_window(fields["q-sign-time"], "q-sign-time"),
        key_time=fields["q-key-time"],
        sign_time_raw=fields["q-sign-time"],
        header_list=tuple(h for h in fields.get("q-header-list", "").split(";") if h),
        param_list=tuple(p for p in fields.get("q-url-param-list", "").split(";") if p),
        signature=fields["q-signature"].lower(),
    )


PRESIGN_PARAMS = frozenset({*_REQUIRED_FIELDS, "q-header-list", "q-url-param-list", "x-cos-security-token"})


def authorization_from_query(params: Mapping[str, str]) -> str | None:
    """A presigned URL carries the Authorization fields as query parameters; None when it carries none."""
    if "q-signature" not in params and "q-sign-algorithm" not in params:
        return None
    names = (*_REQUIRED_FIELDS, "q-header-list", "q-url-param-list")
    return "&".join(f"{name}={params.get(name, '')}" for name in names)


def _pick_signed(listed: tuple[str, ...], present: dict[str, str], what: str) -> str:
    missing = [name for name in listed if name not in present]
    if missing:
        raise CosError(
            403, "SignatureDoesNotMatch", f"{what} {', '.join(missing)} signed in Authorization but not sent"
        )
    return "&".join(f"{name}={present[name]}" for name in sorted(listed))


def http_string(request: SignedRequest, fields: AuthorizationFields) -> str:
    """`method\\npath\\nparams\\nheaders\\n` over exactly the names the client listed."""
    params = _pick_signed(fields.param_list, _canonical(request.params.items()), "URL parameter(s)")
    headers = _pick_signed(fields.header_list, _canonical(request.headers.items()), "header(s)")
    return f"{request.method.lower()}\n{request.path}\n{params}\n{headers}\n"


def sign(secret_key: str, key_time: str, sign_time: str, format_string: str) -> str:
    """The doc's steps 2, 6 and 7: SignKey, StringToSign, Signature (lowercase hex)."""
    sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
    digest = hashlib.sha1(format_string.encode()).hexdigest()
    string_to_sign = f"sha1\n{sign_time}\n{digest}\n"
    return hmac.new(sign_key.encode(), string_to_sign.encode(), hashlib.sha1).hexdigest()


class SignatureVerifier:
    """Checks an Authorization header against the configured credentials."""

    def __init__(self, credentials: Iterable[Credential], clock: Callable[[], float] = time.time,
                 temp_keys: TokenAuthority | None = None) -> None:
        self._by_id = {c.secret_id: c for c in credentials}
        self._clock = clock
        self._temp_keys = temp_keys

    def credential(self, secret_id: str, token: str | None) -> Credential:
        """A configured key, else a temporary key STS issued (recognised by its token), else InvalidAccessKeyId."""
        credential = self._by_id.get(secret_id)
        if credential is not None:
            return credential
        if self._temp_keys is None:
            raise CosError(403, "InvalidAccessKeyId", "The Access Key Id you provided does not exist in our records.")
        return self._temp_keys.resolve(secret_id, token)

    def verify(self, authorization: str | None, request: SignedRequest) -> Credential:
        if not authorization:
            raise CosError(403, "AccessDenied", "Access Denied. The request carries no Authorization header.")
        fields = parse_authorization(authorization)
        credential = self.credential(fields.secret_id, _token(request.headers))
        self._check_window(fields)
        self._check_token(credential, request.headers)
        expected = sign(credential.secret_key, fields.key_time, fields.sign_time_raw, http_string(request, fields))
        if not hmac.compare_digest(expected.encode(), fields.signature.encode("utf-8", "replace")):
            raise CosError(
                403,
                "SignatureDoesNotMatch",
                "The Signature you specified does not match what we calculated.",
            )
        return credential

    def _check_window(self, fields: AuthorizationFields) -> None:
        now = self._clock()
        start, end = fields.sign_time
        if not start <= now <= end:
            raise CosError(403, "AccessDenied", "Request has expired")

    @staticmethod
    def _check_token(credential: Credential, headers: Mapping[str, str]) -> None:
        if credential.token is None:
            return
        sent = _token(headers)
        if sent is None:
            raise CosError(
                403,
                "InvalidAccessKeyId",
                "This SecretId is a temporary key: send its token in x-cos-security-token.",
            )
        if not hmac.compare_digest(sent.encode(), credential.token.encode()):
            raise CosError(403, "ExpiredToken", "The provided token is not valid for this SecretId.")


def _token(headers: Mapping[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    return next((lowered[h] for h in _TOKEN_HEADERS if h in lowered), None)
