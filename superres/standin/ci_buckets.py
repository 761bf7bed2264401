"""CI's bucket-service read `GET /ai_bucket` (doc 460/79594): which buckets are bound to Cloud Infinite with AI
processing on. cos-python-sdk-v5's `ci_get_ai_bucket` reads it from `ci.<region>.myqcloud.com`; locally it is
served on the local cloud API's port (superres.scf.api), signed and verified as COS signs (q-sign-algorithm)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

import xmltodict
from starlette.requests import Request
from starlette.responses import Response

from .auth import SignatureVerifier, SignedRequest
from .errors import CosError
from .settings import Credential


def ai_bucket_route(verifier_credentials: Iterable[Credential], region: str,
                    bound: Callable[[], Iterable[str]]) -> Callable[[Request], Response]:
    """A Starlette endpoint listing the buckets `bound()` names (those in `region`, filtered as the API filters)."""
    verifier = SignatureVerifier(list(verifier_credentials))

    async def endpoint(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        params = dict(request.query_params)
        try:
            verifier.verify(request.headers.get("authorization"),
                            SignedRequest(request.method, request.url.path, params, dict(request.headers)))
        except CosError as exc:
            body = xmltodict.unparse({"Error": {"Code": exc.code, "Message": exc.message, "RequestId": request_id}})
            return Response(body, status_code=exc.status, media_type="application/xml")
        names = [n for n in (params.get("bucketNames") or "").split(",") if n]
        prefix = params.get("bucketName") or ""
        regions = [r for r in (params.get("regions") or "").split(",") if r]
        buckets = [b for b in sorted(bound()) if (not names or b in names) and b.startswith(prefix)
                   and (not regions or region in regions)]
        listing = [{"BucketId": b, "Name": b, "Region": region, "CreateTime": "2026-01-01T00:00:00+08:00"}
                   for b in buckets]
        body = xmltodict.unparse({"Response": {"RequestId": request_id, "TotalCount": len(buckets), "PageNumber": 1,
                                               "PageSize": max(len(buckets), 10), "AiBucketList": listing}})
        return Response(body, media_type="application/xml", headers={"x-ci-request-id": request_id})

    return endpoint
