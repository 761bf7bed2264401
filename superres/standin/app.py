"""The stand-in's HTTP face: COS object and bucket API plus routing to Cloud Infinite, as one Starlette app.

Requests are addressed like real COS: the bucket comes from the Host header
(`<name>-<appid>.cos.<region>.myqcloud.com`, which cos-python-sdk-v5 sends in IP/Port mode) and the key from the
raw request path, percent-decoded exactly once so keys holding '%', '+', '#' or '?' round-trip.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import mimetypes
import re
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import parse_qsl, quote, unquote_to_bytes

import xmltodict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from superres.standin.auth import SignatureVerifier, SignedRequest
from superres.standin.ci import CI_SERVER, CloudInfinite
from superres.standin.errors import CosError, invalid_argument, no_such_bucket
from superres.standin.events import EventSink, ObjectCreatedCallback
from superres.standin.request import CosRequest
from superres.standin.store import ObjectInfo, ObjectStore, validate_key

if TYPE_CHECKING:
    from superres.sr import Engine
    from superres.standin.settings import StandinSettings

log = logging.getLogger("superres.standin")

COS_SERVER = "tencent-cos"
_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-(?P<appid>\d+))\.cos\.(?P<region>[a-z0-9-]+)"
    r"\.(?:myqcloud\.com|tencentcos\.cn)$"
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_READ_CHUNK = 256 * 1024
_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"]


def create_app(
    settings: StandinSettings,
    *,
    engine: Engine | None = None,
    on_object_created: ObjectCreatedCallback | None = None,
) -> Starlette:
    """The stand-in as an ASGI app. `on_object_created` runs after every stored object (see `CosService`)."""
    store = ObjectStore(settings.data_dir)
    events = EventSink(on_object_created)
    service = CosService(settings, store, events, CloudInfinite(settings, store, events, engine))
    app = Starlette(routes=[Route("/{path:path}", service.dispatch, methods=_METHODS)])
    app.state.store = store
    app.state.service = service
    return app


def _request_id() -> str:
    # Shaped like COS's (base64 text); unique is all that matters.
    return base64.b64encode(f"{int(time.time()):x}_{uuid.uuid4().hex[:20]}".encode()).decode().rstrip("=")


class CosService:
    """Parses, authenticates, routes and logs every request.

    The trigger callback is called from a worker thread once the object is durable and before the response is
    sent, for each object written: a plain PUT, the original of an upload-time PUT with Pic-Operations, and every
    CI result. Real COS delivers events asynchronously; a callback that does slow work should queue it.
    """

    def __init__(self, settings: StandinSettings, store: ObjectStore, events: EventSink, ci: CloudInfinite) -> None:
        self._settings = settings
        self._store = store
        self._events = events
        self._ci = ci
        self._verifier = SignatureVerifier(settings.credentials)

    async def dispatch(self, http: Request) -> Response:
        started = time.perf_counter()
        request_id = _request_id()
        bucket = key = ""
        server = COS_SERVER
        code = ""
        try:
            req = self._parse(http, request_id)
            bucket, key = req.bucket, req.key
            server = CI_SERVER if _is_ci_request(req) else COS_SERVER
            self._authenticate(req)
            response = await self._route(req)
        except CosError as err:
            code = err.code
            err.resource = err.resource or f"{bucket}/{key}"
            response = err.to_response(request_id)
        except Exception:
            log.exception("standin: unhandled error (request %s)", request_id)
            code = "InternalError"
            response = CosError(500, code, "We encountered an internal error. Please try again.").to_response(
                request_id
            )
        response.headers["x-cos-request-id"] = request_id
        if "server" not in response.headers:
            response.headers["Server"] = server
        _restore_header_case(response)
        log.info(
            json.dumps(
                {
                    "method": http.method,
                    "bucket": bucket,
                    "key": key,
                    "status": response.status_code,
                    "code": code,
                    "request_id": request_id,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
                ensure_ascii=False,
            )
        )
        return response

    # ---- parsing and auth -----------------------------------------------------------------------
    def _parse(self, http: Request, request_id: str) -> CosRequest:
        # The SDK sends str header values as UTF-8 bytes and signs quote(utf-8 bytes): decode the same way so
        # x-cos-meta-* or Pic-Operations values with CJK text verify and round-trip (latin-1 if not UTF-8).
        headers = {k.decode("latin-1").lower(): _header_text(v) for k, v in http.scope["headers"]}
        raw_path = http.scope.get("raw_path") or http.scope["path"].encode("utf-8")
        try:
            path = unquote_to_bytes(raw_path.split(b"?", 1)[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise CosError(400, "InvalidURI", "the request path is not valid UTF-8 after percent-decoding") from None
        query = http.scope.get("query_string", b"").decode("latin-1")
        return CosRequest(
            method=http.method,
            bucket=self._bucket_from_host(headers.get("host", "")),
            key=path[1:] if path.startswith("/") else path,
            params=dict(parse_qsl(query, keep_blank_values=True)),
            headers=headers,
            request_id=request_id,
            source_ip=http.client.host if http.client else "",
            http=http,
        )

    def _bucket_from_host(self, host: str) -> str:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        match = _HOST.match(host.lower())
        expected = f"<BucketName>-{self._settings.appid}.cos.{self._settings.region}.myqcloud.com"
        if match is None:
            raise CosError(400, "InvalidURI", f"Host {host!r} is not a COS bucket host; expected {expected}")
        if match["region"] != self._settings.region:
            raise no_such_bucket(
                match["bucket"],
                f"this stand-in serves region {self._settings.region}; the Host names {match['region']}",
            )
        if match["appid"] != self._settings.appid:
            raise no_such_bucket(
                match["bucket"], f"this stand-in serves APPID {self._settings.appid}; the Host names {match['appid']}"
            )
        return match["bucket"]

    def _authenticate(self, req: CosRequest) -> None:
        signed = SignedRequest(method=req.method, path="/" + req.key, params=req.params, headers=req.headers)
        self._verifier.verify(req.headers.get("authorization"), signed)

    # ---- routing --------------------------------------------------------------------------------
    async def _route(self, req: CosRequest) -> Response:
        if not req.key:
            return await self._route_bucket(req)
        self._require_bucket(req.bucket)
        validate_key(req.key)
        method = req.method
        if method == "GET" and "ci-process" in req.params:
            return await self._ci.download(req)
        if method == "GET":
            return await self._get_object(req, with_body=True)
        if method == "HEAD":
            return await self._get_object(req, with_body=False)
        if method == "PUT":
            return await self._put_object(req)
        if method == "DELETE":
            await run_in_threadpool(self._store.delete, req.bucket, req.key)
            return Response(status_code=204)
        if method == "POST" and "image_process" in req.params:
            return await self._ci.process_stored(req)
        raise CosError(405, "MethodNotAllowed", f"{method} is not supported on an object here", req.resource)

    async def _route_bucket(self, req: CosRequest) -> Response:
        if req.method == "PUT":
            await run_in_threadpool(self._store.create_bucket, req.bucket)
            return Response(status_code=200)
        self._require_bucket(req.bucket)
        if req.method == "GET" and "ci-process" in req.params:
            return await self._ci.download(req)
        if req.method == "GET":
            return await self._list_objects(req)
        if req.method == "HEAD":
            return Response(status_code=200, headers={"x-cos-bucket-region": self._settings.region})
        raise CosError(405, "MethodNotAllowed", f"{req.method} is not supported on a bucket here", req.bucket)

    def _require_bucket(self, bucket: str) -> None:
        if not self._store.bucket_exists(bucket):
            raise no_such_bucket(bucket)

    # ---- objects --------------------------------------------------------------------------------
    async def _put_object(self, req: CosRequest) -> Response:
        body = await req.body()
        _check_content_md5(req.headers.get("content-md5"), body)
        content_type = req.headers.get("content-type") or _guess_content_type(req.key)
        meta = {k: v for k, v in req.headers.items() if k.startswith("x-cos-meta-")}
        if "pic-operations" in req.headers:
            return await self._ci.upload(req, body, content_type, meta)
        info = await run_in_threadpool(self._store.put, req.bucket, req.key, body, content_type, meta)
        await run_in_threadpool(self._events.notify, req.object_created(req.bucket, info))
        return Response(status_code=200, headers={"ETag": info.etag})

    async def _get_object(self, req: CosRequest, *, with_body: bool) -> Response:
        info, handle = await run_in_threadpool(self._store.open, req.bucket, req.key)
        try:
            span = _parse_range(req.headers.get("range"), info.size) if with_body else None
        except CosError:
            handle.close()
            raise
        headers = _object_headers(info)
        if not with_body:
            handle.close()
            return Response(b"", headers=headers, media_type=None)
        start, end = span if span is not None else (0, info.size - 1)
        headers["Content-Length"] = str(end - start + 1)
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        return StreamingResponse(_read_span(handle, start, end - start + 1), status_code=status, headers=headers)

    async def _list_objects(self, req: CosRequest) -> Response:
        params = req.params
        encoding = params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise invalid_argument(f"encoding-type must be url, got {encoding!r}")
        max_keys = _max_keys(params.get("max-keys"))
        prefix, delimiter, marker = params.get("prefix", ""), params.get("delimiter", ""), params.get("marker", "")
        result = await run_in_threadpool(self._store.list, req.bucket, prefix, delimiter, marker, max_keys)

        def enc(text: str) -> str:
            return quote(text, safe="/") if encoding else text

        listing: dict[str, object] = {"Name": req.bucket}
        if encoding:
            listing["EncodingType"] = encoding
        listing.update(Prefix=enc(prefix), Marker=enc(marker), MaxKeys=str(max_keys))
        if delimiter:
            listing["Delimiter"] = enc(delimiter)
        listing["IsTruncated"] = "true" if result.is_truncated else "false"
        if result.is_truncated:
            listing["NextMarker"] = enc(result.next_marker)
        if result.contents:
            listing["Contents"] = [
                {
                    "Key": enc(info.key),
                    "LastModified": info.last_modified_iso,
                    "ETag": info.etag,
                    "Size": str(info.size),
                    "StorageClass": "STANDARD",
                }
                for info in result.contents
            ]
        if result.common_prefixes:
            listing["CommonPrefixes"] = [{"Prefix": enc(p)} for p in result.common_prefixes]
        body = xmltodict.unparse({"ListBucketResult": listing}, encoding="utf-8").encode("utf-8")
        return Response(body, media_type="application/xml")


def _restore_header_case(response: Response) -> None:
    """Starlette lowercases header names; COS sends `ETag`, `Content-Length`... and SDK users index the response
    dict by exactly those names (`response['ETag']`), so put the casing back. `x-cos-*` stay lowercase, as COS
    sends them."""

    def cased(name: bytes) -> bytes:
        if name.startswith(b"x-"):
            return name
        if name == b"etag":
            return b"ETag"
        return b"-".join(part.capitalize() for part in name.split(b"-"))

    response.raw_headers = [(cased(name), value) for name, value in response.raw_headers]


def _header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _is_ci_request(req: CosRequest) -> bool:
    return "ci-process" in req.params or "image_process" in req.params or "pic-operations" in req.headers


def _guess_content_type(key: str) -> str:
    # COS stores what the client sends; the SDK sends none for bytes bodies, so fall back on the extension.
    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


def _check_content_md5(header: str | None, body: bytes) -> None:
    if header is None:
        return
    try:
        digest = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise CosError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
    if digest != hashlib.md5(body).digest():
        raise CosError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")


def _max_keys(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1000
    if not raw.isdigit():
        raise invalid_argument(f"max-keys must be an integer 0..1000, got {raw!r}")
    return min(int(raw), 1000)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-`, `bytes=-n` -> inclusive (start, end); None = whole object.

    Malformed or multi-range headers are ignored (whole object), as S3 and COS do; a well-formed range that
    selects nothing is 416.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise _invalid_range(size)
        return max(0, size - suffix), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if end < start:
        return None
    if start >= size:
        raise _invalid_range(size)
    return start, min(end, size - 1)


def _invalid_range(size: int) -> CosError:
    return CosError(
        416,
        "InvalidRange",
        f"The requested range is not satisfiable (object size {size}).",
        headers={"Content-Range": f"bytes */{size}"},
    )


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {
        "Content-Type": info.content_type,
        "Content-Length": str(info.size),
        "ETag": info.etag,
        "Last-Modified": info.last_modified_http,
        "Accept-Ranges": "bytes",
    }
    # Header values go out as bytes: send metadata as the UTF-8 it arrived in (Starlette encodes latin-1).
    headers.update({name: value.encode("utf-8").decode("latin-1") for name, value in info.meta.items()})
    return headers


def _read_span(handle: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    with handle:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(_READ_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
