"""Object requests: PUT (with or without Pic-Operations), GET, HEAD, DELETE, copy, and POST Object forms."""

from __future__ import annotations

from urllib.parse import quote

from starlette.formparsers import MultiPartException
from starlette.responses import Response, StreamingResponse

from superres.standin import http_rules, post_object
from superres.standin.errors import CosError, invalid_argument, not_implemented
from superres.standin.events import EVENT_COPY, EVENT_POST, EVENT_PUT
from superres.standin.handlers.common import (
    Services,
    attributes,
    check_copy_conditions,
    copy_source,
    copy_stream,
    forbid_overwrite,
    precondition_failed,
    read_span,
    receive,
    xml,
)
from superres.standin.images import BASIC_LIMITS
from superres.standin.request import CosRequest
from superres.standin.routing import route
from superres.standin.store import validate_key
from superres.standin.threads import in_thread


class Objects:
    def __init__(self, services: Services) -> None:
        self._s = services

    @route("PUT", "object", action="cos:PutObject")
    async def put_object(self, req: CosRequest) -> Response:
        stored = attributes(req.headers, req.key)
        store = self._s.store
        if "pic-operations" in req.headers:
            declared = req.headers.get("content-length", "")
            # Refused before a byte of it is read when no rule could take it; CI.upload applies each rule's limit.
            if declared.isdigit() and int(declared) > BASIC_LIMITS.max_bytes:
                raise CosError(400, "ImageTooLarge", f"source is {int(declared) / 1e6:.1f} MB; CI processing "
                               f"accepts at most {BASIC_LIMITS.max_bytes // 2**20} MB")
            staged = await receive(req, store.stage(req.bucket))
            return await self._s.ci.upload(req, staged, stored["content_type"], stored["meta"])
        staged = await receive(req, store.stage(req.bucket))
        try:
            info = await in_thread(store.put_staged, req.bucket, req.key, staged, **stored)
        finally:
            staged.discard()
        await self._s.notify(req, req.bucket, info, EVENT_PUT)
        return Response(status_code=200, headers={"ETag": info.etag})

    @route("GET", "object", options=http_rules.RESPONSE_OVERRIDES, action="cos:GetObject")
    async def get_object(self, req: CosRequest) -> Response:
        info, handle = await in_thread(self._s.store.open, req.bucket, req.key)
        try:
            status = http_rules.check_conditions(req.headers, info)
            if status == 412:
                raise precondition_failed()
            headers = http_rules.object_headers(info)
            if status == 304:
                # RFC 9110 15.4.5: a 304 carries the headers a 200 would (Content-Length included) and no body.
                handle.close()
                return Response(b"", status_code=304, headers=headers, media_type=None)
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
        return StreamingResponse(read_span(handle, start, end - start + 1), status_code=status, headers=headers)

    @route("HEAD", "object", action="cos:HeadObject")
    async def head_object(self, req: CosRequest) -> Response:
        info = await in_thread(self._s.store.head, req.bucket, req.key)
        status = http_rules.check_conditions(req.headers, info)
        headers = http_rules.object_headers(info)
        # A HEAD answer carries no body, so a 412 is the bare status, as COS sends it.
        return Response(b"", status_code=status or 200, headers=headers, media_type=None)

    @route("DELETE", "object", action="cos:DeleteObject")
    async def delete_object(self, req: CosRequest) -> Response:
        await in_thread(self._s.store.delete, req.bucket, req.key)
        return Response(status_code=204)

    @route("PUT", "object", copy=True, action="cos:PutObject")
    async def copy_object(self, req: CosRequest) -> Response:
        src_bucket, src_key = copy_source(self._s, req)
        req.authorize("cos:GetObject", src_bucket, src_key)
        directive = req.headers.get("x-cos-metadata-directive", "Copy")
        if directive not in ("Copy", "Replaced"):
            raise invalid_argument(f"x-cos-metadata-directive must be Copy or Replaced, got {directive!r}")
        replaced = attributes(req.headers, req.key) if directive == "Replaced" else None
        store = self._s.store
        source = await in_thread(store.head, src_bucket, src_key)
        check_copy_conditions(req, source)
        new_class = http_rules.storage_class(req.headers)
        if (src_bucket, src_key) == (req.bucket, req.key) and replaced is None and new_class == source.storage_class:
            raise CosError(
                400,
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing "
                "the object's metadata or storage class.",
            )
        source, staged = await in_thread(store.stage_copy, src_bucket, src_key, req.bucket)
        stored = replaced or {
            "content_type": source.content_type,
            "meta": source.meta,
            "headers": source.headers,
            "storage_class": new_class,
            "tags": source.tags,
            "forbid_overwrite": forbid_overwrite(req.headers),
        }
        try:
            info = await in_thread(store.put_staged, req.bucket, req.key, staged, etag=source.etag, **stored)
        finally:
            staged.discard()
        await self._s.notify(req, req.bucket, info, EVENT_COPY)
        return xml({"CopyObjectResult": {"ETag": info.etag, "LastModified": info.last_modified_iso}})

    @route("POST", "bucket", signed=False)
    async def post_object(self, req: CosRequest) -> Response:
        """Browser form upload: the policy and signature ride in the form; the file is spooled to disk."""
        if not req.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise not_implemented("POST on a bucket without a multipart/form-data body")
        try:
            form = await req.http.form(max_files=1, max_fields=200)
        except (MultiPartException, ValueError) as exc:
            raise CosError(400, "MalformedPOSTRequest", f"the form cannot be parsed: {exc}") from None
        store = self._s.store
        try:
            fields = {k.lower(): v for k, v in form.multi_items() if isinstance(v, str)}
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise CosError(400, "MalformedPOSTRequest", "the form needs a file field")
            policy, credential = post_object.verify_form(fields, self._s.credential)
            key = fields.get("key", "").replace("${filename}", upload.filename or "")
            validate_key(key)
            self._s.authorizer(credential, req)("cos:PostObject", req.bucket, key)
            stored = attributes({**fields, "content-type": fields.get("content-type", "")}, key)
            staged = await in_thread(store.stage, req.bucket)
            try:
                await in_thread(copy_stream, upload.file, staged)
                post_object.check_conditions(policy, fields, req.bucket, key, staged.size)
                info = await in_thread(store.put_staged, req.bucket, key, staged, **stored)
            finally:
                staged.discard()
        finally:
            await form.close()
        await self._s.notify(req, req.bucket, info, EVENT_POST)
        location = f"http://{self._s.settings.bucket_host(req.bucket)}/{quote(key)}"
        headers = {"ETag": info.etag, "Location": location}
        redirect = fields.get("success_action_redirect")
        if redirect and redirect.startswith(("http://", "https://")):
            sep = "&" if "?" in redirect else "?"
            target = f"{redirect}{sep}bucket={quote(req.bucket)}&key={quote(key)}&etag={quote(info.etag)}"
            return Response(status_code=303, headers={**headers, "Location": target})
        status = fields.get("success_action_status", "204")
        if status == "201":
            doc = {"PostResponse": {"Location": location, "Bucket": req.bucket, "Key": key, "ETag": info.etag}}
            response = xml(doc, 201)
            response.headers.update(headers)
            return response
        return Response(status_code=200 if status == "200" else 204, headers=headers)
