"""The stand-in's HTTP face: COS object and bucket API plus routing to Cloud Infinite, as one ASGI app.

Requests are addressed like real COS: the bucket comes from the Host header
(`<name>-<appid>.cos.<region>.myqcloud.com`, which cos-python-sdk-v5 sends in IP/Port mode) and the key from the
raw request path, percent-decoded exactly once so keys holding '%', '+', '#' or '?' round-trip.

This module parses, authenticates, dispatches and logs; the handlers live in `handlers/`, one module per thing
they serve, each registering its own route (`routing.py`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from superres.standin.auth import PRESIGN_PARAMS, SignatureVerifier, SignedRequest, authorization_from_query
from superres.standin.ci import CI_SERVER, CloudInfinite
from superres.standin.errors import CosError
from superres.standin.events import EventSink, ObjectCreatedCallback
from superres.standin.handlers import Cors, Services, handler_groups
from superres.standin.hosts import Hosts
from superres.standin.multipart import MultipartUploads
from superres.standin.request import CosRequest
from superres.standin.routing import Bound, Router
from superres.standin.store import ObjectStore, validate_key
from superres.standin.sts import StsApi, TokenAuthority

if TYPE_CHECKING:
    from superres.sr import Engine
    from superres.standin.settings import Credential, StandinSettings

log = logging.getLogger("superres.standin")

COS_SERVER = "tencent-cos"
# The methods COS serves; any other answers 405 MethodNotAllowed (not 501, which SDKs retry).
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"})


def create_app(
    settings: StandinSettings,
    *,
    engine: Engine | None = None,
    on_object_created: ObjectCreatedCallback | None = None,
) -> Starlette:
    """The stand-in as an ASGI app. `on_object_created` runs after every stored object (see `CosService`)."""
    store = ObjectStore(settings.data_dir)
    events = EventSink(on_object_created)
    hosts = Hosts(settings, store)
    ci = CloudInfinite(settings, store, events, engine)
    tokens = TokenAuthority(settings.data_dir)
    verifier = SignatureVerifier(settings.credentials, temp_keys=tokens)
    services = Services(settings, store, MultipartUploads(store), events, ci, hosts, verifier)
    service = CosService(services, StsApi(settings.credentials, dict(settings.roles), tokens))
    app = Starlette()
    # Every method and every path (even one holding a line feed) reaches the service, which answers COS XML.
    app.router.default = service
    app.state.store = store
    app.state.service = service
    app.state.sts = tokens  # issues temporary keys (the local SCF runtime hands the function its role's)
    return app


def _request_id() -> str:
    # Shaped like COS's (base64 text); unique is all that matters.
    return base64.b64encode(f"{int(time.time()):x}_{uuid.uuid4().hex[:20]}".encode()).decode().rstrip("=")


class CosService:
    """Parses, authenticates, routes and logs every request.

    The trigger callback is called from a worker thread once the object is durable and before the response is
    sent, for each object created: a PUT (`Put`), a copy (`Copy`), a completed multipart upload
    (`CompleteMultipartUpload`), a form upload (`Post`), the original of an upload-time PUT with Pic-Operations,
    and every CI result. ACL, tagging, part uploads and failed requests fire nothing. Real COS delivers events
    asynchronously; a callback that does slow work should queue it.
    """

    def __init__(self, services: Services, sts: StsApi) -> None:
        self._services = services
        self._hosts = services.hosts
        self._verifier = services.verifier
        self._sts = sts
        self._cors = Cors(services)
        self.router = Router(handler_groups(services, self._cors))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if any(name == b"x-tc-action" for name, _ in scope["headers"]):
            await self._sts(scope, receive, send)  # a Tencent Cloud API call (STS) rather than COS
            return
        response = await self.dispatch(Request(scope, receive))
        await response(scope, receive, send)

    async def dispatch(self, http: Request) -> Response:
        started = time.perf_counter()
        request_id = _request_id()
        bucket = key = ""
        server = COS_SERVER
        code = ""
        req: CosRequest | None = None
        try:
            req = self._parse(http, request_id)
            bucket, key = req.bucket, req.key
            server = CI_SERVER if _is_ci_request(req) else COS_SERVER
            if req.method not in _METHODS:
                raise CosError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
            req, bound = self._route_authenticated(req)
            if bound.route.action:
                # A listing is authorised on the prefix it lists (Tencent's STS samples grant
                # ListMultipartUploads on `<bucket>/<prefix>*`; cos-js-sdk-v5 lists its key's uploads to resume).
                target = req.key or (req.params.get("prefix", "") if bound.route.options >= {"prefix"} else "")
                req.authorize(bound.route.action, req.bucket, target)
            if req.key:
                validate_key(req.key)
            if bound.route.needs_bucket:
                self._services.require_bucket(req.bucket)
            response = await bound.handler(req)
        except CosError as err:
            code = err.code
            err.resource = err.resource or f"{bucket}/{key}"
            response = err.to_response(request_id)
        except ClientDisconnect:
            # The client went away mid-body (a killed process, a cut connection): what it sent was discarded with
            # its staging file, nothing is stored, and the access line below says so. Not the stand-in's error.
            code = "IncompleteBody"
            response = CosError(
                400, code, "The connection closed before the request body was complete; nothing was stored."
            ).to_response(request_id)
        except Exception:
            log.exception("standin: unhandled error (request %s)", request_id)
            code = "InternalError"
            response = CosError(500, code, "We encountered an internal error. Please try again.").to_response(
                request_id
            )
        if req is not None:
            self._cors.decorate(req, response)
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
            bucket=self._hosts.bucket(headers.get("host", "")),
            key=path[1:] if path.startswith("/") else path,
            params=params,
            headers=headers,
            request_id=request_id,
            source_ip=http.client.host if http.client else "",
            http=http,
        )

    def _route_authenticated(self, req: CosRequest) -> tuple[CosRequest, Bound]:
        """Authenticate first, as COS does: a signed request is checked before it is routed, so a tampered
        request is refused for its signature whatever it asks for; an unsigned one reaches only unsigned routes
        (the POST Object form, the OPTIONS preflight)."""
        signed = req.method != "OPTIONS" and (
            "authorization" in req.headers or authorization_from_query(req.params) is not None
        )
        if signed:
            credential = self._authenticate(req)
            req = dataclasses.replace(req, authorize=self._services.authorizer(credential, req))
        try:
            bound = self.router.find(req.method, req.key, req.params, req.headers)
        except CosError:
            if not signed:
                self._authenticate(req)  # AccessDenied: nothing unsigned is served here
            raise
        if bound.route.signed and not signed:
            self._authenticate(req)
        return req, bound

    def _authenticate(self, req: CosRequest) -> Credential:
        """The Authorization header, or for a presigned URL the same fields in the query string."""
        authorization = req.headers.get("authorization")
        params, headers = req.params, req.headers
        if not authorization:
            authorization = authorization_from_query(req.params)
            if authorization is not None:
                # the token may itself be signed (q-url-param-list), so it stays among the parameters
                params = {k: v for k, v in req.params.items()
                          if k not in PRESIGN_PARAMS or k == "x-cos-security-token"}
                token = req.params.get("x-cos-security-token")
                headers = {**req.headers, **({"x-cos-security-token": token} if token else {})}
        signed = SignedRequest(method=req.method, path="/" + req.key, params=params, headers=headers)
        try:
            return self._verifier.verify(authorization, signed)
        except CosError as err:
            # IP/Port mode: cos-python-sdk-v5 signs a presigned URL's host without its port.
            bare = self._hosts.address_without_port(headers.get("host", ""))
            if err.code != "SignatureDoesNotMatch" or bare is None:
                raise
            return self._verifier.verify(authorization, dataclasses.replace(signed, headers={**headers, "host": bare}))


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


