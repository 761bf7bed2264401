"""What the CLI says about a failure it knows: one or two lines naming what went wrong and what to do.

`superres` catches every exception that escapes a command in one place (superres.cli) and prints
`describe(exc)` instead of a traceback; `superres --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import errno
import re

import requests
from qcloud_cos.cos_exception import CosClientError, CosServiceError
from superres_fn import ConfigError
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from .deploy.deployment import SelfTriggerError
from .scf.serverless import ServerlessConfigError

# COS codes that mean the keys (or their token) are wrong, not the request.
CREDENTIAL_CODES = frozenset({
    "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidSecurityToken", "ExpiredToken", "AccessDenied",
    "AuthorizationFailure", "RequestTimeTooSkewed", "MissingSecurityToken",
})
KEYS_HINT = ("check TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY (a local stand-in also accepts its demo keys, "
             "see README)")
_HOST_PORT = re.compile(r"host='(?P<host>[^']+)', port=(?P<port>\d+)")


def describe(exc: BaseException) -> str:
    """The message for a failure the CLI knows; anything else is named by its type with a hint to --debug."""
    if isinstance(exc, (ServerlessConfigError, ConfigError, SelfTriggerError)):
        return str(exc)
    if isinstance(exc, CosServiceError):
        return cos_service_error(exc)
    if isinstance(exc, (CosClientError, requests.ConnectionError)):
        return connection_error(str(exc))
    if isinstance(exc, TencentCloudSDKException):
        if exc.get_code() == "ClientNetworkError":  # urllib3's text: say where and what to check instead
            return f"SCF API: {connection_error(exc.get_message() or '')}"
        return f"SCF API: {exc.get_code()}: {exc.get_message()}"
    if isinstance(exc, OSError):
        return os_error(exc)
    return f"unexpected {type(exc).__name__}: {exc} (run `superres --debug ...` for the traceback)"


def cos_service_error(exc: CosServiceError, *, bucket: str | None = None) -> str:
    """`CODE: message` from COS, with what to check for the codes a user can fix."""
    code, message, status = exc.get_error_code(), exc.get_error_msg(), exc.get_status_code()
    if code in CREDENTIAL_CODES:
        return f"COS refused the credentials: {code}: {message}; {KEYS_HINT}"
    if code == "NoSuchBucket":
        name = bucket or _bucket_of(exc) or "the bucket"
        return (f"{name} does not exist: NoSuchBucket: {message}; check the bucket name (name-appid) and its "
                "region (BUCKET and REGION in .env, or --bucket/--region)")
    if code in (None, "", "Unknown"):
        # A HEAD answer has no body, so the SDK knows only the status.
        return f"COS answered HTTP {status} with no error body (a HEAD request)"
    return f"COS error {code} (HTTP {status}): {message}"


def connection_error(text: str) -> str:
    """A request that never got an answer: name the endpoint, and for a local one how to start it."""
    match = _HOST_PORT.search(text)
    if match is None:
        return f"could not reach the endpoint: {text}"
    host, port = match["host"], match["port"]
    refused = "refused" in text.lower()
    what = "connection refused" if refused else "no answer"
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        return (f"cannot reach http://{host}:{port} ({what}): is the stand-in running? Start it with "
                f"`superres local --port {port}`")
    return f"cannot reach {host}:{port} ({what}); check the endpoint and the network"


def os_error(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the address is already in use (another `superres local`?): stop it or pick another --port"
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if where else reason


def port_in_use(host: str, port: int, option: str = "--port") -> str:
    return (f"port {port} on {host} is already in use (another `superres local`?): stop that process or pick "
            f"another with {option}")


def is_address_in_use(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def _bucket_of(exc: CosServiceError) -> str | None:
    try:
        resource = exc.get_resource_location()
    except (KeyError, TypeError):
        return None
    return str(resource).split("/", 1)[0].split(".cos.", 1)[0] or None if resource else None
