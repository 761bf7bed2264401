"""The two COS/CI calls the function makes, through cos-python-sdk-v5, with SDK errors made typed."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from .config import Endpoint, Settings
from .errors import CosCallError, CredentialsError

T = TypeVar("T")

# The SDK logs every HEAD miss as a WARNING and, at DEBUG, request headers including x-cos-security-token.
# Should the runtime configure the root logger, those records would print as extra, unstructured lines (or a
# secret); our one JSON line per record already carries the COS code, message and request id.
logging.getLogger("qcloud_cos").propagate = False


class Gateway(Protocol):
    """`timeout` (seconds) bounds one request; the pipeline passes what is left of the invocation."""

    def exists(self, bucket: str, key: str, region: str, timeout: float | None = None) -> bool: ...

    def image_process(
        self, bucket: str, key: str, region: str, pic_operations: str, timeout: float | None = None
    ) -> object: ...


class CosGateway:
    """Builds one SDK client per (region, credentials) and reuses it while the container lives.

    SCF hands each invocation the execution role's temporary keys in the environment; when they
    rotate, the cache key changes and a fresh client is built.
    """

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._environ = os.environ if environ is None else environ
        self._clients: dict[tuple[str, str, str, str | None], CosS3Client] = {}
        self._lock = threading.Lock()

    def exists(self, bucket: str, key: str, region: str, timeout: float | None = None) -> bool:
        client = self._client(region, timeout)
        return _typed(lambda: bool(client.object_exists(Bucket=bucket, Key=key)))

    def image_process(
        self, bucket: str, key: str, region: str, pic_operations: str, timeout: float | None = None
    ) -> object:
        client = self._client(region, timeout)
        _headers, data = _typed(lambda: client.ci_image_process(Bucket=bucket, Key=key, PicOperations=pic_operations))
        return data

    def _client(self, region: str, timeout: float | None = None) -> CosS3Client:
        secret_id, secret_key, token = _credentials(self._environ)
        if timeout is not None and timeout < self._settings.cos_timeout_s:
            # Near the invocation's end: a one-off client whose timeout ends before SCF would kill us.
            return CosS3Client(self._config(region, secret_id, secret_key, token, timeout), retry=0)
        cache_key = (region, secret_id, secret_key, token)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                # Credentials changed (or first use): drop clients built with the old keys.
                self._clients = {k: v for k, v in self._clients.items() if k[1:] == cache_key[1:]}
                client = CosS3Client(
                    self._config(region, secret_id, secret_key, token, self._settings.cos_timeout_s), retry=0
                )
                self._clients[cache_key] = client
            return client

    def _config(
        self, region: str, secret_id: str, secret_key: str, token: str | None, timeout: float
    ) -> CosConfig:
        return cos_config(region, secret_id, secret_key, token, endpoint=self._settings.endpoint, timeout=timeout)


def cos_config(
    region: str,
    secret_id: str,
    secret_key: str,
    token: str | None = None,
    *,
    endpoint: Endpoint | None = None,
    timeout: float | None = None,
) -> CosConfig:
    """The SDK configuration, for the cloud or (IP/Port mode) a local endpoint such as the stand-in."""
    options: dict[str, object] = {
        "Region": region,
        "SecretId": secret_id,
        "SecretKey": secret_key,
        "Token": token,
        "Timeout": timeout,
        "Scheme": endpoint.scheme if endpoint else "https",
    }
    if endpoint is not None:
        # IP/Port mode: connect to the local endpoint, still sign and send Host: <bucket>.cos.<region>...
        options.update(IP=endpoint.host, Port=endpoint.port)
    return CosConfig(**options)


def _credentials(environ: Mapping[str, str]) -> tuple[str, str, str | None]:
    secret_id = environ.get("TENCENTCLOUD_SECRETID", "").strip()
    secret_key = environ.get("TENCENTCLOUD_SECRETKEY", "").strip()
    if not secret_id or not secret_key:
        pairs = (("TENCENTCLOUD_SECRETID", secret_id), ("TENCENTCLOUD_SECRETKEY", secret_key))
        missing = [name for name, value in pairs if not value]
        raise CredentialsError(
            f"{' and '.join(missing)} not set: bind an execution role to the function (SCF then provides "
            "temporary keys), or export them when running locally"
        )
    return secret_id, secret_key, environ.get("TENCENTCLOUD_SESSIONTOKEN", "").strip() or None


def _typed(call: Callable[[], T]) -> T:
    """Run an SDK call, turning its exceptions into CosCallError with the COS code and retry decision."""
    try:
        return call()
    except CosServiceError as exc:
        status = exc.get_status_code()
        code = exc.get_error_code()
        raise CosCallError(
            exc.get_error_msg() or f"COS answered HTTP {status}",
            # A HEAD error has no body, so the SDK has no code to give ("Unknown"): name the status instead.
            code=code if code and code != "Unknown" else f"HTTP{status}",
            status=status,
            cos_request_id=exc.get_request_id(),
        ) from None
    except CosClientError as exc:
        # Connection refused/reset, timeouts: no HTTP status, worth retrying.
        raise CosCallError(_client_error_message(exc), code="ClientError") from None


def _client_error_message(exc: CosClientError) -> str:
    text = str(exc.get_message() if hasattr(exc, "get_message") else exc)
    return text[:500] or "the request to COS failed before an answer came back"
