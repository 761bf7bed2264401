"""Bucket requests: create, HEAD, list objects, batch delete."""

from __future__ import annotations

from starlette.responses import Response

from superres.standin import xmldoc
from superres.standin.errors import CosError, invalid_argument
from superres.standin.handlers.common import Services, encoder, xml, xml_body
from superres.standin.request import CosRequest
from superres.standin.routing import route
from superres.standin.store import validate_key
from superres.standin.threads import in_thread

MAX_DELETE_KEYS = 1000
_LISTING = ("prefix", "delimiter", "marker", "max-keys", "encoding-type")


class Buckets:
    def __init__(self, services: Services) -> None:
        self._s = services

    @route("PUT", "bucket", needs_bucket=False, action="cos:PutBucket")
    async def create_bucket(self, req: CosRequest) -> Response:
        region = self._s.hosts.parts(req.headers.get("host", ""))[1]
        await in_thread(self._s.store.create_bucket, req.bucket, region)
        return Response(status_code=200)

    @route("HEAD", "bucket", action="cos:HeadBucket")
    async def head_bucket(self, req: CosRequest) -> Response:
        region = self._s.store.bucket_region(req.bucket) or self._s.settings.region
        return Response(status_code=200, headers={"x-cos-bucket-region": region})

    @route("GET", "bucket", options=_LISTING, action="cos:GetBucket")
    async def list_objects(self, req: CosRequest) -> Response:
        params = req.params
        enc = encoder(params)
        max_keys = _max_keys(params.get("max-keys"))
        prefix, delimiter, marker = params.get("prefix", ""), params.get("delimiter", ""), params.get("marker", "")
        result = await in_thread(self._s.store.list, req.bucket, prefix, delimiter, marker, max_keys)
        appid = self._s.settings.appid
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
                    "Owner": {"ID": appid, "DisplayName": appid},
                    "StorageClass": info.storage_class,
                }
                for info in result.contents
            ]
        if result.common_prefixes:
            listing["CommonPrefixes"] = [{"Prefix": enc(p)} for p in result.common_prefixes]
        return xml({"ListBucketResult": listing})

    @route("POST", "bucket", sub=("delete",), action="cos:DeleteMultipleObjects")
    async def delete_objects(self, req: CosRequest) -> Response:
        doc = await xml_body(req, "Delete")
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
                await in_thread(self._s.store.delete, req.bucket, key)
            except CosError as err:
                errors.append({"Key": key, "Code": err.code, "Message": err.message})
                continue
            deleted.append({"Key": key})
        result: dict[str, object] = {}
        if deleted and not quiet:
            result["Deleted"] = deleted
        if errors:
            result["Error"] = errors
        return xml({"DeleteResult": result or None})


def _max_keys(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1000
    if not raw.isdigit() or len(raw) > 9:
        raise invalid_argument(f"max-keys must be an integer 0..1000, got {raw[:20]!r}")
    return min(int(raw), 1000)
