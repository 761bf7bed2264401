"""The stand-in's HTTP face: COS object and bucket API plus routing to Cloud Infinite, as one ASGI app.

Requests are addressed like real COS: the bucket comes from the Host header
(`<name>-<appid>.cos.<region>.myqcloud.com`, which cos-python-sdk-v5 sends in IP/Port mode) and the key from the
raw request path, percent-decoded exactly once so keys holding '%', '+', '#' or '?' round-trip.

Routing is one table keyed, as COS routes, on (method, bucket or object, sub-resource parameters, copy header).
A request that matches no row answers 501 NotImplemented and changes nothing: no request can fall through to a
plain object write or delete.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, quote, unquote, unquote_to_bytes

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from superres.standin import acl as acls
from superres.standin import http_rules, post_object, xmldoc
from superres.standin.auth import PRESIGN_PARAMS, SignatureVerifier, SignedRequest, authorization_from_query
from superres.standin.ci import CI_SERVER, CloudInfinite
from superres.standin.errors import CosError, invalid_argument, no_such_bucket, not_implemented
from superres.standin.events import (
    EVENT_COMPLETE_MULTIPART,
    EVENT_COPY,
    EVENT_POST,
    EVENT_PUT,
    EventSink,
    ObjectCreatedCallback,
)
from superres.standin.images import BASIC_LIMITS
from superres.standin.multipart import MAX_PART_NUMBER, MultipartUploads
from superres.standin.request import CosRequest
from superres.standin.store import ObjectInfo, ObjectStore, StagedFile, validate_key

if TYPE_CHECKING:
    from superres.sr import Engine
    from superres.standin.settings import StandinSettings

log = logging.getLogger("superres.standin")

COS_SERVER = "tencent-cos"
_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-(?P<appid>\d+))\.cos\.(?P<region>[a-z0-9-]+)"
    r"\.(?:myqcloud\.com|tencentcos\.cn)$"
)
_READ_CHUNK = 256 * 1024
_WRITE_BATCH = 1024 * 1024
MAX_PUT_BYTES = 5 * 1024**3  # COS: a single PUT or part carries at most 5 GB
MAX_DELETE_KEYS = 1000

# Query parameters that select a sub-resource (or CI): a request carrying one is routed on it, never as a plain
# object request. Anything outside this set and a route's options is unknown and answers 501.
_LISTING = frozenset({"prefix", "delimiter", "marker", "max-keys", "encoding-type"})
_UPLOAD_LISTING = frozenset(
    {"prefix", "delimiter", "key-marker", "upload-id-marker", "max-uploads", "encoding-type"}
)
_SUBRESOURCES = frozenset(
    {"acl", "tagging", "uploads", "uploadId", "partNumber", "delete", "ci-process", "image_process"}
)


@dataclass(frozen=True)
class _Route:
    handler: str  # CosService method name
    options: frozenset[str] = frozenset()  # non-sub-resource parameters this route reads
    signed_form: bool = False  # POST Object: the signature is in the form, not in Authorization


# (method, "bucket" | "object", sub-resource parameter names, x-cos-copy-source present) -> route
ROUTES: dict[tuple[str, str, frozenset[str], bool], _Route] = {
    ("PUT", "bucket", frozenset(), False): _Route("_create_bucket"),
    ("HEAD", "bucket", frozenset(), False): _Route("_head_bucket"),
    ("GET", "bucket", frozenset(), False): _Route("_list_objects", _LISTING),
    ("GET", "bucket", frozenset({"uploads"}), False): _Route("_list_uploads", _UPLOAD_LISTING),
    ("GET", "bucket", frozenset({"ci-process"}), False): _Route("_ci_download", frozenset({"detect-url", "magnify"})),
    ("POST", "bucket", frozenset({"delete"}), False): _Route("_delete_objects"),
    ("POST", "bucket", frozenset(), False): _Route("_post_object", signed_form=True),
    ("GET", "object", frozenset(), False): _Route("_get_object", frozenset(http_rules.RESPONSE_OVERRIDES)),
    ("HEAD", "object", frozenset(), False): _Route("_head_object"),
    ("PUT", "object", frozenset(), False): _Route("_put_object"),
    ("PUT", "object", frozenset(), True): _Route("_copy_object"),
    ("DELETE", "object", frozenset(), False): _Route("_delete_object"),
    ("GET", "object", frozenset({"ci-process"}), False): _Route("_ci_download", frozenset({"magnify"})),
    ("POST", "object", frozenset({"image_process"}), False): _Route("_ci_process_stored"),
    ("POST", "object", frozenset({"uploads"}), False): _Route("_initiate_upload"),
    ("PUT", "object", frozenset({"partNumber", "uploadId"}), False): _Route("_upload_part"),
    ("PUT", "object", frozenset({"partNumber", "uploadId"}), True): _Route("_upload_part_copy"),
    ("POST", "object", frozenset({"uploadId"}), False): _Route("_complete_upload"),
    ("DELETE", "object", frozenset({"uploadId"}), False): _Route("_abort_upload"),
    ("GET", "object", frozenset({"uploadId"}), False): _Route(
        "_list_parts", frozenset({"max-parts", "part-number-marker", "encoding-type"})
    ),
    ("GET", "object", frozenset({"acl"}), False): _Route("_get_acl"),
    ("PUT", "object", frozenset({"acl"}), False): _Route("_put_acl"),
    ("GET", "object", frozenset({"tagging"}), False): _Route("_get_tagging"),
    ("PUT", "object", frozenset({"tagging"}), False): _Route("_put_tagging"),
    ("DELETE", "object", frozenset({"tagging"}), False): _Route("_delete_tagging"),
}


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
    app = Starlette()
    # Every method and every path (even one holding a line feed) reaches the service, which answers COS XML.
    app.router.default = service
    app.state.store = store
    app.state.service = service
    return app


def _request_id() -> str:
    # Shaped like COS's (base64 text); unique is all that matters.
    return base64.b64encode(f"{int(time.time()):x}_{uuid.uuid4().hex[:20]}".encode()).decode().rstrip("=")


def find_route(method: str, key: str, params: dict[str, str], headers: dict[str, str]) -> _Route:
    """The table row for a request, or 501 NotImplemented naming what is not implemented."""
    scope = "object" if key else "bucket"
    names = set(params) - PRESIGN_PARAMS
    sub = frozenset(names & _SUBRESOURCES)
    copy = "x-cos-copy-source" in headers
    route = ROUTES.get((method, scope, sub, copy))
    what = f"{method} on {'an object' if key else 'a bucket'}"
    if sub:
        what += " with ?" + "&".join(sorted(sub))
    if copy:
        what += " with x-cos-copy-source"
    if route is None:
        raise not_implemented(what)
    unknown = names - sub - route.options
    if unknown:
        raise not_implemented(f"{what} with parameter(s) {', '.join(sorted(unknown))}")
    return route


class CosService:
    """Parses, authenticates, routes and logs every request.

    The trigger callback is called from a worker thread once the object is durable and before the response is
    sent, for each object created: a PUT (`Put`), a copy (`Copy`), a completed multipart upload
    (`CompleteMultipartUpload`), the original of an upload-time PUT with Pic-Operations, and every CI result.
    ACL, tagging, part uploads and failed requests fire nothing. Real COS delivers events asynchronously; a
    callback that does slow work should queue it.
    """

    def __init__(self, settings: StandinSettings, store: ObjectStore, events: EventSink, ci: CloudInfinite) -> None:
        self._settings = settings
        self._store = store
        self._uploads = MultipartUploads(store)
        self._events = events
        self._ci = ci
        self._verifier = SignatureVerifier(settings.credentials)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        response = await self.dispatch(Request(scope, receive))
        await response(scope, receive, send)

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
            route = find_route(req.method, req.key, req.params, req.headers)
            if not route.signed_form:
                self._authenticate(req)
            if req.key:
                validate_key(req.key)
            if route.handler != "_create_bucket":
                self._require_bucket(req.bucket)
            response = await getattr(self, route.handler)(req)
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
        if raw_path.startswith((b"http://", b"https://")):
            # absolute-form request target (a client reaching COS through an HTTP proxy, e.g. cos-nodejs-sdk-v5's
            # `Proxy` option): the target's authority is the host (RFC 9112, 3.2.2) and the rest is the path.
            authority, _, rest = raw_path.split(b"://", 1)[1].partition(b"/")
            headers["host"] = authority.decode("latin-1")
            raw_path = b"/" + rest
        try:
            path = unquote_to_bytes(raw_path.split(b"?", 1)[0]).decode("utf-8")
        except UnicodeDecodeError:
            raise CosError(400, "InvalidURI", "the request path is not valid UTF-8 after percent-decoding") from None
        query = http.scope.get("query_string", b"").decode("latin-1")
        try:
            params = dict(parse_qsl(query, keep_blank_values=True, errors="strict"))
        except (UnicodeDecodeError, ValueError):
            raise CosError(400, "InvalidURI", "the query string is not valid UTF-8 after percent-decoding") from None
        return CosRequest(
            method=http.method,
            bucket=self._bucket_from_host(headers.get("host", "")),
            key=path[1:] if path.startswith("/") else path,
            params=params,
            headers=headers,
            request_id=request_id,
            source_ip=http.client.host if http.client else "",
            http=http,
        )

    def _bucket_from_host(self, host: str) -> str:
        """The bucket a Host names. Any APPID is served (a bucket exists once created); a bucket answers only in
        its own region, as COS does: the one it was created in, or the stand-in's configured region."""
        bucket, region = self._host_parts(host)
        home = self._store.bucket_region(bucket) or self._settings.region
        if self._store.bucket_exists(bucket) and region != home:
            raise no_such_bucket(bucket, f"bucket {bucket} is in region {home}; the Host names {region}")
        return bucket

    def _host_parts(self, host: str) -> tuple[str, str]:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        match = _HOST.match(host.lower())
        if match is None:
            expected = f"<BucketName>-{self._settings.appid}.cos.{self._settings.region}.myqcloud.com"
            raise CosError(400, "InvalidURI", f"Host {host!r} is not a COS bucket host; expected {expected}")
        return match["bucket"], match["region"]

    def _authenticate(self, req: CosRequest) -> None:
        """The Authorization header, or for a presigned URL the same fields in the query string."""
        authorization = req.headers.get("authorization")
        params, headers = req.params, req.headers
        if not authorization:
            authorization = authorization_from_query(req.params)
            if authorization is not None:
                params = {k: v for k, v in req.params.items() if k not in PRESIGN_PARAMS}
                token = req.params.get("x-cos-security-token")
                headers = {**req.headers, **({"x-cos-security-token": token} if token else {})}
        signed = SignedRequest(method=req.method, path="/" + req.key, params=params, headers=headers)
        self._verifier.verify(authorization, signed)

    def _require_bucket(self, bucket: str) -> None:
        if not self._store.bucket_exists(bucket):
            raise no_such_bucket(bucket)

    async def _notify(self, req: CosRequest, bucket: str, info: ObjectInfo, event_name: str) -> None:
        if self._events.wanted:
            await run_in_threadpool(self._events.notify, req.object_created(bucket, info, event_name))

    # ---- bodies ---------------------------------------------------------------------------------
    async def _receive(self, req: CosRequest, staged: StagedFile) -> StagedFile:
        """Stream the request body to `staged` (disk, bounded memory), checking its length and Content-MD5."""
        declared = req.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_PUT_BYTES):
            staged.discard()
            raise CosError(400, "EntityTooLarge", f"a single upload carries at most {MAX_PUT_BYTES} bytes")
        try:
            pending = bytearray()
            async for chunk in req.http.stream():
                pending += chunk
                if staged.size + len(pending) > MAX_PUT_BYTES:
                    raise CosError(400, "EntityTooLarge", f"a single upload carries at most {MAX_PUT_BYTES} bytes")
                if len(pending) >= _WRITE_BATCH:
                    await _stage_bytes(staged, pending)
                    pending = bytearray()
            if pending:
                await _stage_bytes(staged, pending)
            _check_content_md5(req.headers.get("content-md5"), staged.md5_digest)
        except BaseException:
            staged.discard()
            raise
        return staged

    async def _xml_body(self, req: CosRequest, root: str) -> dict[str, Any]:
        chunks, total = [], 0
        async for chunk in req.http.stream():
            total += len(chunk)
            if total > xmldoc.MAX_XML_BODY:
                raise CosError(400, "EntityTooLarge", f"the XML body exceeds {xmldoc.MAX_XML_BODY} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if "content-md5" in req.headers:
            _check_content_md5(req.headers["content-md5"], hashlib.md5(body).digest())
        return xmldoc.parse(body, root)

    def _upload_attributes(self, req: CosRequest) -> dict[str, Any]:
        """What a PUT, POST ?uploads or Replaced copy stores besides the bytes, validated before any byte is read."""
        return _attributes(req.headers, req.key)

    # ---- buckets --------------------------------------------------------------------------------
    async def _create_bucket(self, req: CosRequest) -> Response:
        region = self._host_parts(req.headers.get("host", ""))[1]
        await run_in_threadpool(self._store.create_bucket, req.bucket, region)
        return Response(status_code=200)

    async def _head_bucket(self, req: CosRequest) -> Response:
        region = self._store.bucket_region(req.bucket) or self._settings.region
        return Response(status_code=200, headers={"x-cos-bucket-region": region})

    async def _list_objects(self, req: CosRequest) -> Response:
        params = req.params
        enc = _encoder(params)
        max_keys = _max_keys(params.get("max-keys"))
        prefix, delimiter, marker = params.get("prefix", ""), params.get("delimiter", ""), params.get("marker", "")
        result = await run_in_threadpool(self._store.list, req.bucket, prefix, delimiter, marker, max_keys)
        listing: dict[str, object] = {"Name": req.bucket}
        if params.get("encoding-type"):
            listing["EncodingType"] = "url"
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
                    "Owner": {"ID": self._settings.appid, "DisplayName": self._settings.appid},
                    "StorageClass": info.storage_class,
                }
                for info in result.contents
            ]
        if result.common_prefixes:
            listing["CommonPrefixes"] = [{"Prefix": enc(p)} for p in result.common_prefixes]
        return _xml({"ListBucketResult": listing})

    async def _delete_objects(self, req: CosRequest) -> Response:
        doc = await self._xml_body(req, "Delete")
        quiet = xmldoc.text(doc.get("Quiet")).lower() == "true"
        entries = xmldoc.as_list(doc.get("Object"))
        if not entries or len(entries) > MAX_DELETE_KEYS:
            raise CosError(400, "MalformedXML", f"Delete must name 1 to {MAX_DELETE_KEYS} objects")
        deleted, errors = [], []
        for entry in entries:
            key = xmldoc.text(entry.get("Key")) if isinstance(entry, dict) else ""
            if isinstance(entry, dict) and entry.get("VersionId") not in (None, "null"):
                errors.append({"Key": key, "Code": "NotImplemented", "Message": "versioned delete is not implemented"})
                continue
            try:
                validate_key(key)
                await run_in_threadpool(self._store.delete, req.bucket, key)
            except CosError as err:
                errors.append({"Key": key, "Code": err.code, "Message": err.message})
                continue
            deleted.append({"Key": key})
        result: dict[str, object] = {}
        if deleted and not quiet:
            result["Deleted"] = deleted
        if errors:
            result["Error"] = errors
        return _xml({"DeleteResult": result or None})

    async def _post_object(self, req: CosRequest) -> Response:
        """Browser form upload: the policy and signature ride in the form; the file is spooled to disk."""
        if not req.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise not_implemented("POST on a bucket without a multipart/form-data body")
        try:
            form = await req.http.form(max_files=1, max_fields=200)
        except (MultiPartException, ValueError) as exc:
            raise CosError(400, "MalformedPOSTRequest", f"the form cannot be parsed: {exc}") from None
        try:
            fields = {k.lower(): v for k, v in form.multi_items() if isinstance(v, str)}
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise CosError(400, "MalformedPOSTRequest", "the form needs a file field")
            policy = post_object.verify_form(fields, self._settings.credentials)
            key = fields.get("key", "").replace("${filename}", upload.filename or "")
            validate_key(key)
            attributes = _attributes({**fields, "content-type": fields.get("content-type", "")}, key)
            staged = await run_in_threadpool(self._store.stage, req.bucket)
            try:
                await run_in_threadpool(_copy_stream, upload.file, staged)
                post_object.check_conditions(policy, fields, req.bucket, key, staged.size)
                info = await run_in_threadpool(self._store.put_staged, req.bucket, key, staged, **attributes)
            finally:
                staged.discard()
        finally:
            await form.close()
        await self._notify(req, req.bucket, info, EVENT_POST)
        location = f"http://{self._settings.bucket_host(req.bucket)}/{quote(key)}"
        headers = {"ETag": info.etag, "Location": location}
        redirect = fields.get("success_action_redirect")
        if redirect and redirect.startswith(("http://", "https://")):
            sep = "&" if "?" in redirect else "?"
            target = f"{redirect}{sep}bucket={quote(req.bucket)}&key={quote(key)}&etag={quote(info.etag)}"
            return Response(status_code=303, headers={**headers, "Location": target})
        status = fields.get("success_action_status", "204")
        if status == "201":
            doc = {"PostResponse": {"Location": location, "Bucket": req.bucket, "Key": key, "ETag": info.etag}}
            response = _xml(doc, 201)
            response.headers.update(headers)
            return response
        return Response(status_code=200 if status == "200" else 204, headers=headers)

    # ---- objects --------------------------------------------------------------------------------
    async def _put_object(self, req: CosRequest) -> Response:
        attributes = self._upload_attributes(req)
        if "pic-operations" in req.headers:
            declared = req.headers.get("content-length", "")
            # Refused before a byte of it is read when no rule could take it; CI.upload applies each rule's limit.
            if declared.isdigit() and int(declared) > BASIC_LIMITS.max_bytes:
                raise CosError(400, "ImageTooLarge", f"source is {int(declared) / 1e6:.1f} MB; CI processing "
                               f"accepts at most {BASIC_LIMITS.max_bytes // 2**20} MB")
            staged = await self._receive(req, self._store.stage(req.bucket))
            return await self._ci.upload(req, staged, attributes["content_type"], attributes["meta"])
        staged = await self._receive(req, self._store.stage(req.bucket))
        try:
            info = await run_in_threadpool(self._store.put_staged, req.bucket, req.key, staged, **attributes)
        finally:
            staged.discard()
        await self._notify(req, req.bucket, info, EVENT_PUT)
        return Response(status_code=200, headers={"ETag": info.etag})

    async def _get_object(self, req: CosRequest) -> Response:
        info, handle = await run_in_threadpool(self._store.open, req.bucket, req.key)
        try:
            status = http_rules.check_conditions(req.headers, info)
            if status == 412:
                raise _precondition_failed()
            headers = http_rules.object_headers(info)
            if status == 304:
                handle.close()
                headers.pop("Content-Length")
                return Response(status_code=304, headers=headers)
            if info.storage_class in ("ARCHIVE", "DEEP_ARCHIVE"):
                raise CosError(403, "InvalidObjectState", "The object is archived; restore it before reading.")
            span = http_rules.parse_range(req.headers.get("range"), info.size)
            http_rules.apply_overrides(headers, req.params)
        except CosError:
            handle.close()
            raise
        start, end = span if span is not None else (0, info.size - 1)
        headers["Content-Length"] = str(end - start + 1)
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        return StreamingResponse(_read_span(handle, start, end - start + 1), status_code=status, headers=headers)

    async def _head_object(self, req: CosRequest) -> Response:
        info = await run_in_threadpool(self._store.head, req.bucket, req.key)
        status = http_rules.check_conditions(req.headers, info)
        headers = http_rules.object_headers(info)
        if status == 304:
            headers.pop("Content-Length")
        # A HEAD answer carries no body, so a 412 is the bare status, as COS sends it.
        return Response(b"", status_code=status or 200, headers=headers, media_type=None)

    async def _delete_object(self, req: CosRequest) -> Response:
        await run_in_threadpool(self._store.delete, req.bucket, req.key)
        return Response(status_code=204)

    async def _copy_object(self, req: CosRequest) -> Response:
        src_bucket, src_key = self._copy_source(req)
        directive = req.headers.get("x-cos-metadata-directive", "Copy")
        if directive not in ("Copy", "Replaced"):
            raise invalid_argument(f"x-cos-metadata-directive must be Copy or Replaced, got {directive!r}")
        replaced = self._upload_attributes(req) if directive == "Replaced" else None
        source = await run_in_threadpool(self._store.head, src_bucket, src_key)
        self._check_copy_conditions(req, source)
        new_class = http_rules.storage_class(req.headers)
        if (src_bucket, src_key) == (req.bucket, req.key) and replaced is None and new_class == source.storage_class:
            raise CosError(
                400,
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing "
                "the object's metadata or storage class.",
            )
        source, staged = await run_in_threadpool(self._store.stage_copy, src_bucket, src_key, req.bucket)
        attributes = replaced or {
            "content_type": source.content_type,
            "meta": source.meta,
            "headers": source.headers,
            "storage_class": new_class,
            "tags": source.tags,
            "forbid_overwrite": req.headers.get("x-cos-forbid-overwrite", "").strip().lower() == "true",
        }
        try:
            info = await run_in_threadpool(
                self._store.put_staged, req.bucket, req.key, staged, etag=source.etag, **attributes
            )
        finally:
            staged.discard()
        await self._notify(req, req.bucket, info, EVENT_COPY)
        return _xml({"CopyObjectResult": {"ETag": info.etag, "LastModified": info.last_modified_iso}})

    def _copy_source(self, req: CosRequest) -> tuple[str, str]:
        """`<bucket>-<appid>.cos.<region>.myqcloud.com/<url-encoded key>` -> (bucket, key)."""
        raw = req.headers["x-cos-copy-source"].strip()
        raw = raw.split("://", 1)[1] if "://" in raw else raw
        host, sep, path = raw.partition("/")
        path, _, query = path.partition("?")
        if not sep or not path:
            raise invalid_argument("x-cos-copy-source must be <bucket>.cos.<region>.myqcloud.com/<key>")
        if query:
            version = dict(parse_qsl(query)).get("versionId", "")
            if version not in ("", "null"):
                raise not_implemented("copying a given versionId")
        bucket = self._bucket_from_host(host)
        try:
            key = unquote(path, errors="strict")
        except UnicodeDecodeError:
            raise invalid_argument("x-cos-copy-source names a key that is not UTF-8 after percent-decoding") from None
        validate_key(key)
        self._require_bucket(bucket)
        return bucket, key

    @staticmethod
    def _check_copy_conditions(req: CosRequest, source: ObjectInfo) -> None:
        prefix = "x-cos-copy-source-"
        conditions = {k[len(prefix) :]: v for k, v in req.headers.items() if k.startswith(prefix + "if-")}
        if http_rules.check_conditions(conditions, source) is not None:
            raise _precondition_failed()

    # ---- multipart ------------------------------------------------------------------------------
    async def _initiate_upload(self, req: CosRequest) -> Response:
        attributes = self._upload_attributes(req)
        if attributes.pop("forbid_overwrite"):
            raise CosError(501, "NotImplemented", "x-cos-forbid-overwrite on multipart uploads is not implemented by "
                           "the stand-in.")
        upload = await run_in_threadpool(self._uploads.initiate, req.bucket, req.key, **attributes)
        return _xml(
            {"InitiateMultipartUploadResult": {"Bucket": req.bucket, "Key": req.key, "UploadId": upload.upload_id}}
        )

    def _part_number(self, req: CosRequest) -> int:
        raw = req.params.get("partNumber", "")
        if not raw.isdigit() or len(raw) > 5 or not 1 <= int(raw) <= MAX_PART_NUMBER:
            raise invalid_argument(f"partNumber must be 1..{MAX_PART_NUMBER}, got {raw[:20]!r}")
        return int(raw)

    async def _upload_part(self, req: CosRequest) -> Response:
        number = self._part_number(req)
        upload = await run_in_threadpool(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        staged = await self._receive(req, self._uploads.stage_part(req.bucket, upload))
        part = await run_in_threadpool(self._uploads.commit_part, req.bucket, upload, number, staged)
        return Response(status_code=200, headers={"ETag": part.etag})

    async def _upload_part_copy(self, req: CosRequest) -> Response:
        number = self._part_number(req)
        upload = await run_in_threadpool(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        src_bucket, src_key = self._copy_source(req)
        source, handle = await run_in_threadpool(self._store.open, src_bucket, src_key)
        staged = self._uploads.stage_part(req.bucket, upload)
        try:
            self._check_copy_conditions(req, source)
            span = _copy_range(req.headers.get("x-cos-copy-source-range"), source.size)
            await run_in_threadpool(_copy_span, handle, staged, *span)
        except BaseException:
            handle.close()
            staged.discard()
            raise
        handle.close()
        part = await run_in_threadpool(self._uploads.commit_part, req.bucket, upload, number, staged)
        return _xml({"CopyPartResult": {"ETag": part.etag, "LastModified": _iso(part.last_modified)}})

    async def _complete_upload(self, req: CosRequest) -> Response:
        if "x-cos-forbid-overwrite" in req.headers:
            raise CosError(501, "NotImplemented", "x-cos-forbid-overwrite on Complete Multipart Upload is not "
                           "implemented by the stand-in.")
        upload = await run_in_threadpool(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        doc = await self._xml_body(req, "CompleteMultipartUpload")
        requested = []
        for part in xmldoc.as_list(doc.get("Part")):
            number = xmldoc.text(part.get("PartNumber")) if isinstance(part, dict) else ""
            if not number.isdigit() or len(number) > 5:
                raise CosError(400, "MalformedXML", "each Part needs a PartNumber and an ETag")
            requested.append((int(number), xmldoc.text(part.get("ETag"))))
        info = await run_in_threadpool(self._uploads.complete, req.bucket, upload, requested)
        await self._notify(req, req.bucket, info, EVENT_COMPLETE_MULTIPART)
        return _xml(
            {
                "CompleteMultipartUploadResult": {
                    "Location": f"{self._settings.bucket_host(req.bucket)}/{quote(req.key)}",
                    "Bucket": req.bucket,
                    "Key": req.key,
                    "ETag": info.etag,
                }
            }
        )

    async def _abort_upload(self, req: CosRequest) -> Response:
        upload = await run_in_threadpool(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        await run_in_threadpool(self._uploads.abort, req.bucket, upload)
        return Response(status_code=204)

    async def _list_parts(self, req: CosRequest) -> Response:
        upload = await run_in_threadpool(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        marker = _small_int(req.params.get("part-number-marker"), 0, "part-number-marker")
        max_parts = min(_small_int(req.params.get("max-parts"), 1000, "max-parts"), 1000)
        parts = [p for p in await run_in_threadpool(self._uploads.parts, req.bucket, upload) if p.number > marker]
        page, truncated = parts[:max_parts], len(parts) > max_parts
        enc = _encoder(req.params)
        owner = {"ID": acls.owner_id(self._settings.appid), "DisplayName": acls.owner_id(self._settings.appid)}
        result: dict[str, object] = {"Bucket": req.bucket}
        if req.params.get("encoding-type"):
            result["Encoding-type"] = "url"
        result.update(
            Key=enc(req.key),
            UploadId=upload.upload_id,
            Initiator=owner,
            Owner=owner,
            PartNumberMarker=str(marker),
            Part=[
                {"PartNumber": p.number, "LastModified": _iso(p.last_modified), "ETag": p.etag, "Size": p.size}
                for p in page
            ]
            or None,
            NextPartNumberMarker=str(page[-1].number if page else marker),
            StorageClass=upload.storage_class,
            MaxParts=str(max_parts),
            IsTruncated="true" if truncated else "false",
        )
        if result["Part"] is None:
            del result["Part"]
        return _xml({"ListPartsResult": result})

    async def _list_uploads(self, req: CosRequest) -> Response:
        params = req.params
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        key_marker, id_marker = params.get("key-marker", ""), params.get("upload-id-marker", "")
        max_uploads = min(_small_int(params.get("max-uploads"), 1000, "max-uploads"), 1000)
        uploads = [
            u
            for u in await run_in_threadpool(self._uploads.uploads, req.bucket)
            if u.key.startswith(prefix) and (u.key, u.upload_id) > (key_marker, id_marker)
        ]
        entries, prefixes = [], []
        for upload in uploads:
            cut = upload.key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = upload.key[: cut + len(delimiter)]
                if common not in prefixes:
                    prefixes.append(common)
                continue
            entries.append(upload)
        truncated = len(entries) > max_uploads
        entries = entries[:max_uploads]
        enc = _encoder(params)
        owner = {"ID": acls.owner_id(self._settings.appid), "DisplayName": acls.owner_id(self._settings.appid)}
        result: dict[str, object] = {"Bucket": req.bucket}
        if params.get("encoding-type"):
            result["Encoding-Type"] = "url"
        result.update(KeyMarker=enc(key_marker), UploadIdMarker=id_marker, MaxUploads=str(max_uploads))
        result["IsTruncated"] = "true" if truncated else "false"
        if truncated:
            result.update(NextKeyMarker=enc(entries[-1].key), NextUploadIdMarker=entries[-1].upload_id)
        result["Prefix"] = enc(prefix)
        if delimiter:
            result["Delimiter"] = enc(delimiter)
        if entries:
            result["Upload"] = [
                {
                    "Key": enc(u.key),
                    "UploadId": u.upload_id,
                    "StorageClass": u.storage_class,
                    "Initiator": owner,
                    "Owner": owner,
                    "Initiated": _iso(u.initiated),
                }
                for u in entries
            ]
        if prefixes:
            result["CommonPrefixes"] = [{"Prefix": enc(p)} for p in prefixes]
        return _xml({"ListMultipartUploadsResult": result})

    # ---- ACL and tagging (stored beside the object; no event) -----------------------------------
    async def _get_acl(self, req: CosRequest) -> Response:
        info = await run_in_threadpool(self._store.head, req.bucket, req.key)
        return _xml(acls.acl_document(info.acl, self._settings.appid))

    async def _put_acl(self, req: CosRequest) -> Response:
        acl = acls.acl_from_headers(req.headers)
        if acl is None:
            acl = acls.acl_from_xml(await self._xml_body(req, "AccessControlPolicy"))
        await run_in_threadpool(lambda: self._store.update(req.bucket, req.key, acl=acl))
        return Response(status_code=200)

    async def _get_tagging(self, req: CosRequest) -> Response:
        info = await run_in_threadpool(self._store.head, req.bucket, req.key)
        return _xml(acls.tagging_document(info.tags))

    async def _put_tagging(self, req: CosRequest) -> Response:
        tags = acls.tags_from_xml(await self._xml_body(req, "Tagging"))
        await run_in_threadpool(lambda: self._store.update(req.bucket, req.key, tags=tags))
        return Response(status_code=200)

    async def _delete_tagging(self, req: CosRequest) -> Response:
        await run_in_threadpool(lambda: self._store.update(req.bucket, req.key, tags={}))
        return Response(status_code=204)

    # ---- Cloud Infinite -------------------------------------------------------------------------
    async def _ci_download(self, req: CosRequest) -> Response:
        return await self._ci.download(req)

    async def _ci_process_stored(self, req: CosRequest) -> Response:
        return await self._ci.process_stored(req)


def _attributes(headers: dict[str, str], key: str) -> dict[str, Any]:
    """Stored attributes from request headers (or POST Object form fields, which carry the same names)."""
    return {
        "content_type": headers.get("content-type") or _guess_content_type(key),
        "meta": http_rules.user_metadata(headers),
        "headers": http_rules.stored_headers(headers),
        "storage_class": http_rules.storage_class(headers),
        "acl": acls.acl_from_headers(headers) or {},
        "tags": acls.tags_from_header(headers.get("x-cos-tagging")) or {},
        # x-cos-forbid-overwrite: true -> 409 FileAlreadyExists instead of replacing an existing object (PUT Object
        # doc 436/7749; ignored by COS in a bucket that has ever had versioning, which the stand-in has not).
        "forbid_overwrite": headers.get("x-cos-forbid-overwrite", "").strip().lower() == "true",
    }


def _precondition_failed() -> CosError:
    return CosError(412, "PreconditionFailed", "At least one of the preconditions you specified did not hold.")


def _xml(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(xmldoc.render(doc), status_code=status, media_type="application/xml")


def _encoder(params: dict[str, str]) -> Callable[[str], str]:
    encoding = params.get("encoding-type", "")
    if encoding not in ("", "url"):
        raise invalid_argument(f"encoding-type must be url, got {encoding!r}")
    return (lambda text: quote(text, safe="/")) if encoding else (lambda text: text)


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}Z"


def _small_int(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise invalid_argument(f"{name} must be a whole number, got {raw[:20]!r}")
    return int(raw)


def _copy_range(header: str | None, size: int) -> tuple[int, int]:
    if header is None:
        return 0, size
    match = re.fullmatch(r"bytes=(\d{1,18})-(\d{1,18})", header.strip())
    if match is None or int(match[1]) > int(match[2]) or int(match[2]) >= size:
        raise invalid_argument(f"x-cos-copy-source-range must be bytes=first-last within the source, got {header!r}")
    return int(match[1]), int(match[2]) - int(match[1]) + 1


def _copy_stream(source: BinaryIO, staged: StagedFile) -> None:
    source.seek(0)
    while chunk := source.read(_READ_CHUNK):
        staged.write(chunk)


def _copy_span(handle: BinaryIO, staged: StagedFile, start: int, length: int) -> None:
    for chunk in _read_span(handle, start, length, close=False):
        staged.write(chunk)


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


def _check_content_md5(header: str | None, digest_received: bytes) -> None:
    if header is None:
        return
    try:
        digest = base64.b64decode(header, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise CosError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
    if digest != digest_received:
        raise CosError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")


def _max_keys(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1000
    if not raw.isdigit() or len(raw) > 9:
        raise invalid_argument(f"max-keys must be an integer 0..1000, got {raw[:20]!r}")
    return min(int(raw), 1000)


async def _stage_bytes(staged: StagedFile, data: bytearray) -> None:
    """Hash and keep `data`: on the loop while it stays in memory, else in a worker thread (the disk write and the
    hashing of a big body, both of which release the GIL, then run beside the loop)."""
    if staged.holds(len(data)):
        staged.write(data)
    else:
        await run_in_threadpool(staged.write, data)


def _read_span(handle: BinaryIO, start: int, length: int, *, close: bool = True) -> Iterator[bytes]:
    try:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(_READ_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        if close:
            handle.close()
