"""Multipart upload requests: initiate, upload (or copy) a part, complete, abort, list parts and uploads."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response

from superres.standin import xmldoc
from superres.standin.errors import CosError, invalid_argument
from superres.standin.events import EVENT_COMPLETE_MULTIPART
from superres.standin.handlers.common import (
    Services,
    attributes,
    check_copy_conditions,
    copy_range,
    copy_source,
    copy_span,
    encoder,
    iso,
    receive,
    small_int,
    xml,
    xml_body,
)
from superres.standin.multipart import MAX_PART_NUMBER
from superres.standin.request import CosRequest
from superres.standin.routing import route
from superres.standin.threads import in_thread

_PART = ("partNumber", "uploadId")
_UPLOAD_LISTING = ("prefix", "delimiter", "key-marker", "upload-id-marker", "max-uploads", "encoding-type")


class Multipart:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._uploads = services.uploads

    @route("POST", "object", sub=("uploads",), action="cos:InitiateMultipartUpload")
    async def initiate_upload(self, req: CosRequest) -> Response:
        stored = attributes(req.headers, req.key)
        if stored.pop("forbid_overwrite"):
            raise CosError(501, "NotImplemented", "x-cos-forbid-overwrite on multipart uploads is not implemented by "
                           "the stand-in.")
        upload = await in_thread(self._uploads.initiate, req.bucket, req.key, **stored)
        result = {"Bucket": req.bucket, "Key": req.key, "UploadId": upload.upload_id}
        return xml({"InitiateMultipartUploadResult": result})

    @route("PUT", "object", sub=_PART, action="cos:UploadPart")
    async def upload_part(self, req: CosRequest) -> Response:
        number = _part_number(req)
        upload = await in_thread(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        staged = await receive(req, self._uploads.stage_part(req.bucket, upload))
        part = await in_thread(self._uploads.commit_part, req.bucket, upload, number, staged)
        return Response(status_code=200, headers={"ETag": part.etag})

    @route("PUT", "object", sub=_PART, copy=True, action="cos:UploadPart")
    async def upload_part_copy(self, req: CosRequest) -> Response:
        number = _part_number(req)
        upload = await in_thread(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        src_bucket, src_key = copy_source(self._s, req)
        req.authorize("cos:GetObject", src_bucket, src_key)
        source, handle = await in_thread(self._s.store.open, src_bucket, src_key)
        staged = self._uploads.stage_part(req.bucket, upload)
        try:
            check_copy_conditions(req, source)
            span = copy_range(req.headers.get("x-cos-copy-source-range"), source.size)
            await in_thread(copy_span, handle, staged, *span)
        except BaseException:
            handle.close()
            staged.discard()
            raise
        handle.close()
        part = await in_thread(self._uploads.commit_part, req.bucket, upload, number, staged)
        return xml({"CopyPartResult": {"ETag": part.etag, "LastModified": iso(part.last_modified)}})

    @route("POST", "object", sub=("uploadId",), action="cos:CompleteMultipartUpload")
    async def complete_upload(self, req: CosRequest) -> Response:
        if "x-cos-forbid-overwrite" in req.headers:
            raise CosError(501, "NotImplemented", "x-cos-forbid-overwrite on Complete Multipart Upload is not "
                           "implemented by the stand-in.")
        upload = await in_thread(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        doc = await xml_body(req, "CompleteMultipartUpload")
        requested = []
        for part in xmldoc.as_list(doc.get("Part")):
            number = xmldoc.text(part.get("PartNumber")) if isinstance(part, dict) else ""
            if not number.isdigit() or len(number) > 5:
                raise CosError(400, "MalformedXML", "each Part needs a PartNumber and an ETag")
            requested.append((int(number), xmldoc.text(part.get("ETag"))))
        info = await in_thread(self._uploads.complete, req.bucket, upload, requested)
        await self._s.notify(req, req.bucket, info, EVENT_COMPLETE_MULTIPART)
        return xml(
            {
                "CompleteMultipartUploadResult": {
                    "Location": f"{self._s.settings.bucket_host(req.bucket)}/{quote(req.key)}",
                    "Bucket": req.bucket,
                    "Key": req.key,
                    "ETag": info.etag,
                }
            }
        )

    @route("DELETE", "object", sub=("uploadId",), action="cos:AbortMultipartUpload")
    async def abort_upload(self, req: CosRequest) -> Response:
        upload = await in_thread(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        await in_thread(self._uploads.abort, req.bucket, upload)
        return Response(status_code=204)

    @route("GET", "object", sub=("uploadId",), options=("max-parts", "part-number-marker", "encoding-type"),
           action="cos:ListParts")
    async def list_parts(self, req: CosRequest) -> Response:
        upload = await in_thread(self._uploads.get, req.bucket, req.key, req.params["uploadId"])
        marker = small_int(req.params.get("part-number-marker"), 0, "part-number-marker")
        max_parts = min(small_int(req.params.get("max-parts"), 1000, "max-parts"), 1000)
        parts = [p for p in await in_thread(self._uploads.parts, req.bucket, upload) if p.number > marker]
        page, truncated = parts[:max_parts], len(parts) > max_parts
        enc = encoder(req.params)
        owner = self._s.owner()
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
                {"PartNumber": p.number, "LastModified": iso(p.last_modified), "ETag": p.etag, "Size": p.size}
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
        return xml({"ListPartsResult": result})

    @route("GET", "bucket", sub=("uploads",), options=_UPLOAD_LISTING, action="cos:ListMultipartUploads")
    async def list_uploads(self, req: CosRequest) -> Response:
        params = req.params
        prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
        key_marker, id_marker = params.get("key-marker", ""), params.get("upload-id-marker", "")
        max_uploads = min(small_int(params.get("max-uploads"), 1000, "max-uploads"), 1000)
        uploads = [
            u
            for u in await in_thread(self._uploads.uploads, req.bucket)
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
        enc = encoder(params)
        owner = self._s.owner()
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
                    "Initiated": iso(u.initiated),
                }
                for u in entries
            ]
        if prefixes:
            result["CommonPrefixes"] = [{"Prefix": enc(p)} for p in prefixes]
        return xml({"ListMultipartUploadsResult": result})


def _part_number(req: CosRequest) -> int:
    raw = req.params.get("partNumber", "")
    if not raw.isdigit() or len(raw) > 5 or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise invalid_argument(f"partNumber must be 1..{MAX_PART_NUMBER}, got {raw[:20]!r}")
    return int(raw)
