"""One parsed COS request: bucket and key from Host and raw path, decoded parameters, lowercased headers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from superres.standin.events import EVENT_PUT, ObjectCreated

if TYPE_CHECKING:
    from starlette.requests import Request

    from superres.standin.store import ObjectInfo


@dataclass(frozen=True)
class CosRequest:
    method: str
    bucket: str  # BucketName-APPID
    key: str  # raw object key, percent-decoded once; "" for bucket-level requests
    params: dict[str, str]
    headers: dict[str, str]  # lowercased names
    request_id: str
    source_ip: str
    http: Request
    # Refuses (403 AccessDenied) what the signer's policy does not allow: (CAM action, bucket, key). Set once the
    # request is authenticated; a permanent key, or an unsigned request, is not limited by a policy.
    authorize: Callable[[str, str, str], None] = field(default=lambda action, bucket, key: None)

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")

    @property
    def resource(self) -> str:
        return f"{self.bucket}/{self.key}"

    async def body(self) -> bytes:
        return await self.http.body()

    def object_created(self, bucket: str, info: ObjectInfo, event_name: str = EVENT_PUT) -> ObjectCreated:
        """The event for an object this request stored (in `bucket`, which CI rules may choose)."""
        return ObjectCreated(
            bucket=bucket,
            key=info.key,
            size=info.size,
            etag=info.etag,
            content_type=info.content_type,
            meta=dict(info.meta),
            event_name=event_name,
            request_id=self.request_id,
            source_ip=self.source_ip,
            authorization=self.authorization,
        )
