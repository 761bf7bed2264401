"""The COS/CI calls the function makes, through cos-python-sdk-v5, with every SDK failure made typed."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple, Protocol, TypeVar

import requests
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from .config import Endpoint, Settings
from .errors import CosCallError, CredentialsError, SuperresError

T = TypeVar("T")

# SCF's Python bootstrap sets the root logger to DEBUG with a handler on stdout. Left alone, every request would
# print urllib3's "Starting new HTTP connection" and request lines, charset detection lines and the SDK's own
# records (at DEBUG its request headers, x-cos-security-token included) next to our one JSON line per record,
# which already carries the COS code, message and request id. Their records stop here: no propagation, and a
# NullHandler so that Python's last-resort handler does not print their warnings to stderr either.
for _name in ("qcloud_cos", "urllib3", "requests", "charset_normalizer", "chardet"):
    _quiet = logging.getLogger(_name)
    _quiet.propagate = False
    _quiet.addHandler(logging.NullHandler())


# Clients kept per gateway: one per region and request timeout in use (the timeout shrinks near the invocation's end).
_MAX_CLIENTS = 8


class ObjectState(NamedTuple):
    """What a HEAD tells about an object. Times are COS's own clock in Unix seconds (whole seconds): the object's
    Last-Modified and `date`, the answer's Date header, so that an age is measured on one clock."""

    last_modified: int | None
    size: int | None
    etag: str | None
    meta: Mapping[str, str] = {}  # x-cos-meta-* without the prefix, names lower-cased
    date: int | None = None

    @property
    def age_s(self) -> int | None:
        """Seconds since the object was written, by COS's clock alone (None when COS did not say)."""
        if self.date is None or self.last_modified is None:
            return None
        return self.date - self.last_modified


class Listed:
    """A listing of keys under a prefix, and COS's Date when it answered (Unix seconds)."""

    __slots__ = ("date", "keys")

    def __init__(self, keys: dict[str, int | None], date: int | None) -> None:
        self.keys = keys  # key -> Last-Modified (Unix seconds)
        self.date = date


class Gateway(Protocol):
    """`timeout` (seconds) bounds one request; the pipeline passes what is left of the invocation."""

    def head(self, bucket: str, key: str, region: str, timeout: float | None = None) -> ObjectState | None: ...

    def list_prefix(self, bucket: str, prefix: str, region: str, timeout: float | None = None) -> Listed: ...

    def image_process(
        self, bucket: str, key: str, region: str, pic_operations: str, timeout: float | None = None
    ) -> object: ...

    def create_if_absent(
        self, bucket: str, key: str, region: str, body: bytes, meta: Mapping[str, str], timeout: float | None = None
    ) -> bool: ...

    def publish(
        self, bucket: str, source_key: str, key: str, region: str, meta: Mapping[str, str], content_type: str,
        timeout: float | None = None,
    ) -> str | None: ...

    def delete(self, bucket: str, key: str, region: str, timeout: float | None = None) -> None: ...


class _LastResponse(threading.local):
    """The status and headers of the last HTTP answer on this thread (a `requests` response hook fills it), so an
    SDK failure that hides them (an error body the SDK cannot parse, a HEAD error) can still be typed by status
    and carry x-cos-request-id."""

    status: int | None = None
    headers: Mapping[str, str] | None = None


class CosGateway:
    """Builds one SDK client per (region, credentials) and reuses it while the container lives.

    SCF hands each invocation the execution role's temporary keys in the environment; when they
    rotate, the cache key changes and a fresh client is built.
    """

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._environ = os.environ if environ is None else environ
        self._clients: dict[tuple[str, str, str, str | None, float], CosS3Client] = {}
        self._lock = threading.Lock()
        self._last = _LastResponse()
        # Our own session (the SDK otherwise shares a process-wide one), so the hook sees only our requests.
        self._session = requests.Session()
        self._session.hooks["response"].append(self._record_response)

    def head(self, bucket: str, key: str, region: str, timeout: float | None = None) -> ObjectState | None:
        """The object's state, or None when COS answers 404."""
        try:
            headers = self._typed(lambda: self._client(region, timeout).head_object(Bucket=bucket, Key=key))
        except CosCallError as exc:
            if exc.status == 404:
                return None
            raise
        return object_state(headers, self._date())

    def list_prefix(self, bucket: str, prefix: str, region: str, timeout: float | None = None) -> Listed:
        """Up to 1,000 keys under `prefix` (the function lists only its own small folders)."""
        data = self._typed(lambda: self._client(region, timeout).list_objects(Bucket=bucket, Prefix=prefix,
                                                                               MaxKeys=1000))
        contents = data.get("Contents") if isinstance(data, Mapping) else None
        if isinstance(contents, Mapping):
            contents = [contents]
        keys = {item["Key"]: _iso_seconds(item.get("LastModified")) for item in contents or ()
                if isinstance(item, Mapping) and isinstance(item.get("Key"), str)}
        return Listed(keys, self._date())

    def image_process(
        self, bucket: str, key: str, region: str, pic_operations: str, timeout: float | None = None
    ) -> object:
        _headers, data = self._typed(lambda: self._client(region, timeout).ci_image_process(
            Bucket=bucket, Key=key, PicOperations=pic_operations), ci=True)
        if not data:
            # A 2xx whose body the SDK could not read: CI may well have written the result.
            raise CosCallError("CI answered 200 with no readable UploadResult", code="MalformedResponse", status=200,
                               cos_request_id=self._request_id(), retryable=True, ambiguous=True)
        return data

    def create_if_absent(
        self, bucket: str, key: str, region: str, body: bytes, meta: Mapping[str, str], timeout: float | None = None
    ) -> bool:
        """PUT with x-cos-forbid-overwrite: true (one atomic create). False when the key exists (409)."""
        try:
            self._typed(lambda: self._client(region, timeout).put_object(
                Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                Metadata={"x-cos-forbid-overwrite": "true", **meta}))
        except CosCallError as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def publish(
        self, bucket: str, source_key: str, key: str, region: str, meta: Mapping[str, str], content_type: str,
        timeout: float | None = None,
    ) -> str | None:
        """Server-side copy of `source_key` to `key` in one bucket, with `meta` and `content_type` replacing the
        source's: content and provenance land together. The new object's ETag."""
        client = self._client(region, timeout)
        source = {"Bucket": bucket, "Key": source_key, "Region": region}
        data = self._typed(lambda: client.copy_object(Bucket=bucket, Key=key, CopySource=source,
                                                      CopyStatus="Replaced", ContentType=content_type,
                                                      Metadata=dict(meta)))
        etag = data.get("ETag") if isinstance(data, Mapping) else None
        return etag if isinstance(etag, str) else None

    def delete(self, bucket: str, key: str, region: str, timeout: float | None = None) -> None:
        self._typed(lambda: self._client(region, timeout).delete_object(Bucket=bucket, Key=key))

    def _client(self, region: str, timeout: float | None = None) -> CosS3Client:
        """A cached client for the region, the current keys and the request timeout. Near the invocation's end the
        timeout is what is left (whole seconds, rounded down), so that no request outlasts SCF's limit; such clients
        are cached too, a few at a time (building one per request would cost more CPU than the request)."""
        secret_id, secret_key, token = _credentials(self._environ)
        limit = self._settings.cos_timeout_s
        if timeout is not None and timeout < limit:
            limit = float(int(timeout)) if timeout >= 1 else timeout
        cache_key = (region, secret_id, secret_key, token, limit)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                # Credentials changed (or first use): drop clients built with the old keys; keep a few timeouts.
                kept = [(k, v) for k, v in self._clients.items() if k[1:4] == cache_key[1:4]]
                self._clients = dict(kept[-(_MAX_CLIENTS - 1):])
                client = CosS3Client(self._config(region, secret_id, secret_key, token, limit), retry=0,
                                     session=self._session)
                self._clients[cache_key] = client
            return client

    def _record_response(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        self._last.status = response.status_code
        self._last.headers = response.headers

    def _date(self) -> int | None:
        """COS's clock when it answered the last request on this thread (its Date header)."""
        return _unix_seconds(self._header("Date"))

    def _request_id(self) -> str | None:
        headers = self._last.headers
        return headers.get("x-cos-request-id") if headers is not None else None

    def _typed(self, call: Callable[[], T], *, ci: bool = False) -> T:
        """Run an SDK call, turning whatever it raises into CosCallError: COS code, status, request id, and whether
        retrying may help (`retryable`) or the work may have been done all the same (`ambiguous`)."""
        self._last.status = self._last.headers = None
        try:
            return call()
        except SuperresError:
            raise  # CredentialsError from building the client
        except CosServiceError as exc:
            raise self._service_error(exc, ci) from None
        except CosClientError as exc:
            raise _client_error(exc, ci) from None
        except Exception as exc:  # noqa: BLE001 - the SDK's own failures (KeyError, ParseError...) on odd answers
            status = self._last.status
            message = f"the SDK failed on COS's answer ({type(exc).__name__}: {exc})"[:500]
            if status is None:
                # Nothing came back: the SDK refused before sending (a bug or an argument it rejects).
                raise CosCallError(message, code="SdkError", retryable=False) from None
            raise CosCallError(message, code=f"HTTP{status}", status=status, cos_request_id=self._request_id(),
                               ambiguous=ci and (status < 300 or status >= 500)) from None

    def _service_error(self, exc: CosServiceError, ci: bool) -> CosCallError:
        status = exc.get_status_code()
        digest = exc.get_digest_msg()
        info = digest if isinstance(digest, Mapping) else {}
        code = info.get("code") if isinstance(info.get("code"), str) else None
        message = info.get("message") if isinstance(info.get("message"), str) else None
        request_id = info.get("requestid") or info.get("RequestId") or self._request_id()
        if not code or code in ("Unknown", "NoSuchResource"):
            # A HEAD error has no body; COS names the code in x-cos-error-code when it can, else the status says.
            code = self._header("x-cos-error-code") or f"HTTP{status}"
        return CosCallError(
            message or f"COS answered HTTP {status}", code=code, status=status,
            cos_request_id=request_id if isinstance(request_id, str) else None,
            ambiguous=ci and status >= 500 and code != "SlowDown",
        )

    def _header(self, name: str) -> str | None:
        headers = self._last.headers
        return headers.get(name) if headers is not None else None

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


def _client_error(exc: CosClientError, ci: bool) -> CosCallError:
    """The SDK raises CosClientError for two different things: its own refusal of an argument (a bucket or region
    of the wrong form: permanent, nothing was sent) and a transport failure (raised while handling the `requests`
    exception, which is therefore its __context__: transient)."""
    cause = exc.__context__
    text = str(exc.get_message() if hasattr(exc, "get_message") else exc)[:500]
    if not isinstance(cause, requests.RequestException):
        return CosCallError(f"the SDK refused the request: {text}", code="InvalidRequest", retryable=False)
    # Refused or timed out while connecting: the request never left. Anything else may have reached CI.
    unsent = isinstance(cause, requests.ConnectTimeout) or (
        isinstance(cause, requests.ConnectionError) and "NewConnectionError" in repr(cause.args)
    )
    code = "Timeout" if isinstance(cause, requests.Timeout) else "ConnectionError"
    return CosCallError(text or "the request to COS failed before an answer came back", code=code, retryable=True,
                        ambiguous=ci and not unsent)


def object_state(headers: Mapping[str, str], date: int | None = None) -> ObjectState:
    """The ObjectState of a HEAD's answer (cos-python-sdk-v5's dict of its headers)."""
    meta = {name[11:].lower(): value for name, value in headers.items() if name.lower().startswith("x-cos-meta-")}
    return ObjectState(_unix_seconds(headers.get("Last-Modified")), _int(headers.get("Content-Length")),
                       headers.get("ETag"), meta, date)


def _unix_seconds(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _iso_seconds(value: object) -> int | None:
    """A listing's LastModified (ISO 8601, e.g. 2026-12-06T02:25:47.000Z) in Unix seconds."""
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
