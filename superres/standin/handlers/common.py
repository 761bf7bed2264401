"""What every handler group shares: the services it works on, request bodies in, XML out, small parsers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, quote, unquote

from starlette.responses import Response

from superres.standin import acl as acls
from superres.standin import cam, http_rules, xmldoc
from superres.standin.errors import CosError, invalid_argument, no_such_bucket, not_implemented
from superres.standin.store import validate_key
from superres.standin.threads import in_thread

if TYPE_CHECKING:
    from superres.standin.auth import SignatureVerifier
    from superres.standin.ci import CloudInfinite
    from superres.standin.events import EventSink
    from superres.standin.hosts import Hosts
    from superres.standin.multipart import MultipartUploads
    from superres.standin.request import CosRequest
    from superres.standin.settings import Credential, StandinSettings
    from superres.standin.store import ObjectInfo, ObjectStore, StagedFile

READ_CHUNK = 1024 * 1024  # per chunk of a streamed body: each is one hop to a worker thread and through the middlewares
MAX_PUT_BYTES = 5 * 1024**3  # COS: a single PUT or part carries at most 5 GB
_WRITE_BATCH = 1024 * 1024  # body bytes hashed and kept per step


@dataclass(frozen=True)
class Services:
    """The stand-in's state, handed to every handler group."""

    settings: StandinSettings
    store: ObjectStore
    uploads: MultipartUploads
    events: EventSink
    ci: CloudInfinite
    hosts: Hosts
    verifier: SignatureVerifier

    def credential(self, secret_id: str, token: str | None) -> Credential:
        """The key `secret_id` names: a configured one or a temporary key STS issued (its token proves it)."""
        return self.verifier.credential(secret_id, token)

    def authorizer(self, credential: Credential, req: CosRequest) -> Callable[[str, str, str], None]:
        """`authorize(action, bucket, key)` for requests `credential` signed: 403 AccessDenied, with nothing
        changed, for what its policies do not allow."""
        if credential.policies is None:
            return lambda action, bucket, key: None
        region = self.store.bucket_region(req.bucket) or self.settings.region
        context = cam.request_context(req.source_ip, req.headers, req.params)
        policies = credential.policies

        def authorize(action: str, bucket: str, key: str) -> None:
            appid = bucket.rpartition("-")[2]
            make = cam.ci_resource if action.startswith("ci:") else cam.cos_resource
            resource = make(region, appid, bucket, key)
            if not all(policy.allows(action, resource, context) for policy in policies):
                raise CosError(403, "AccessDenied", "Access Denied.")

        return authorize

    def require_bucket(self, bucket: str) -> None:
        if not self.store.bucket_exists(bucket):
            raise no_such_bucket(bucket)

    async def notify(self, req: CosRequest, bucket: str, info: ObjectInfo, event_name: str) -> None:
        if self.events.wanted:  # no hand-off to a worker thread for an event nobody listens to (--no-trigger)
            await in_thread(self.events.notify, req.object_created(bucket, info, event_name))

    def owner(self) -> dict[str, str]:
        return {"ID": acls.owner_id(self.settings.appid), "DisplayName": acls.owner_id(self.settings.appid)}


async def receive(req: CosRequest, staged: StagedFile) -> StagedFile:
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
        check_content_md5(req.headers.get("content-md5"), staged.md5_digest)
    except BaseException:
        staged.discard()
        raise
    return staged


async def _stage_bytes(staged: StagedFile, data: bytearray) -> None:
    """Hash and keep `data`: on the loop while it stays in memory, else in a worker thread (the disk write and the
    hashing of a big body, both of which release the GIL, then run beside the loop)."""
    if staged.holds(len(data)):
        staged.write(data)
    else:
        await in_thread(staged.write, data)


async def xml_body(req: CosRequest, root: str) -> dict[str, Any]:
    """The request body as the XML document `<root>`, within COS's size limit and Content-MD5."""
    chunks, total = [], 0
    async for chunk in req.http.stream():
        total += len(chunk)
        if total > xmldoc.MAX_XML_BODY:
            raise CosError(400, "EntityTooLarge", f"the XML body exceeds {xmldoc.MAX_XML_BODY} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if "content-md5" in req.headers:
        check_content_md5(req.headers["content-md5"], hashlib.md5(body).digest())
    try:
        return xmldoc.parse(body, root)
    except xmldoc.BadXmlBody as exc:
        raise CosError(400, exc.code, str(exc)) from None


def attributes(headers: dict[str, str], key: str) -> dict[str, Any]:
    """Stored attributes from request headers (or POST Object form fields, which carry the same names)."""
    return {
        "content_type": headers.get("content-type") or guess_content_type(key),
        "meta": http_rules.user_metadata(headers),
        "headers": http_rules.stored_headers(headers),
        "storage_class": http_rules.storage_class(headers),
        "acl": acls.acl_from_headers(headers) or {},
        "tags": acls.tags_from_header(headers.get("x-cos-tagging")) or {},
        # x-cos-forbid-overwrite: true -> 409 FileAlreadyExists instead of replacing an existing object (PUT Object
        # doc 436/7749; ignored by COS in a bucket that has ever had versioning, which the stand-in has not).
        "forbid_overwrite": forbid_overwrite(headers),
    }


def forbid_overwrite(headers: dict[str, str]) -> bool:
    return headers.get("x-cos-forbid-overwrite", "").strip().lower() == "true"


def precondition_failed() -> CosError:
    return CosError(412, "PreconditionFailed", "At least one of the preconditions you specified did not hold.")


def xml(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(xmldoc.render(doc), status_code=status, media_type="application/xml")


def encoder(params: dict[str, str]) -> Callable[[str], str]:
    encoding = params.get("encoding-type", "")
    if encoding not in ("", "url"):
        raise invalid_argument(f"encoding-type must be url, got {encoding!r}")
    return (lambda text: quote(text, safe="/")) if encoding else (lambda text: text)


def iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}Z"


def small_int(raw: str | None, default: int, name: str) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise invalid_argument(f"{name} must be a whole number, got {raw[:20]!r}")
    return int(raw)


def copy_range(header: str | None, size: int) -> tuple[int, int]:
    if header is None:
        return 0, size
    match = re.fullmatch(r"bytes=(\d{1,18})-(\d{1,18})", header.strip())
    if match is None or int(match[1]) > int(match[2]) or int(match[2]) >= size:
        raise invalid_argument(f"x-cos-copy-source-range must be bytes=first-last within the source, got {header!r}")
    return int(match[1]), int(match[2]) - int(match[1]) + 1


def copy_stream(source: BinaryIO, staged: StagedFile) -> None:
    source.seek(0)
    while chunk := source.read(READ_CHUNK):
        staged.write(chunk)


def copy_span(handle: BinaryIO, staged: StagedFile, start: int, length: int) -> None:
    for chunk in read_span(handle, start, length, close=False):
        staged.write(chunk)


def read_span(handle: BinaryIO, start: int, length: int, *, close: bool = True) -> Iterator[bytes]:
    try:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(READ_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
    finally:
        if close:
            handle.close()


def guess_content_type(key: str) -> str:
    # COS stores what the client sends; the SDK sends none for bytes bodies, so fall back on the extension.
    return mimetypes.guess_type(key, strict=False)[0] or "application/octet-stream"


def check_content_md5(header: str | None, digest_received: bytes) -> None:
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


def copy_source(services: Services, req: CosRequest) -> tuple[str, str]:
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
    bucket = services.hosts.bucket(host)
    try:
        key = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise invalid_argument("x-cos-copy-source names a key that is not UTF-8 after percent-decoding") from None
    validate_key(key)
    services.require_bucket(bucket)
    return bucket, key


def check_copy_conditions(req: CosRequest, source: ObjectInfo) -> None:
    prefix = "x-cos-copy-source-"
    conditions = {k[len(prefix) :]: v for k, v in req.headers.items() if k.startswith(prefix + "if-")}
    if http_rules.check_conditions(conditions, source) is not None:
        raise precondition_failed()
