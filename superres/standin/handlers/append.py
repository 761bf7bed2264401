"""APPEND Object (POST /<key>?append&position=N, doc 436/7741): creates an appendable object at position 0 and
extends it at its current length; `x-cos-next-append-position` says where the next append goes.

- A missing object takes only position 0; an appendable one only its length (409 PositionNotEqualToLength
  otherwise, with the length in x-cos-next-append-position); a normal object is 409 ObjectNotAppendable.
- Appendable objects say so (`x-cos-object-type: appendable` on HEAD/GET); each append fires
  `cos:ObjectCreated:Append`. Appends to one object are serialised here; the body's Content-MD5 covers the body.
"""

from __future__ import annotations

import threading

from starlette.responses import Response

from superres.standin.errors import CosError, invalid_argument, no_such_key
from superres.standin.events import EVENT_APPEND
from superres.standin.handlers.common import Services, attributes, copy_stream, receive
from superres.standin.request import CosRequest
from superres.standin.routing import route
from superres.standin.store import ObjectInfo, StagedFile
from superres.standin.threads import in_thread

OBJECT_TYPE = "x-cos-object-type"
APPENDABLE = "appendable"


class Append:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._lock = threading.Lock()

    @route("POST", "object", sub=("append",), options=("position",), action="cos:AppendObject")
    async def append_object(self, req: CosRequest) -> Response:
        raw = req.params.get("position", "")
        if not raw.isdigit() or len(raw) > 13:
            raise invalid_argument(f"position must be a whole number of bytes, got {raw[:20]!r}")
        body = await receive(req, await in_thread(self._s.store.stage, req.bucket))
        try:
            info = await in_thread(self._append, req, int(raw), body)
        finally:
            body.discard()
        await self._s.notify(req, req.bucket, info, EVENT_APPEND)
        return Response(status_code=200, headers={"ETag": info.etag, "x-cos-next-append-position": str(info.size)})

    def _append(self, req: CosRequest, position: int, body: StagedFile) -> ObjectInfo:
        store = self._s.store
        with self._lock:
            try:
                current: ObjectInfo | None = store.head(req.bucket, req.key)
            except CosError as err:
                if err.code != "NoSuchKey":
                    raise
                current = None
            if current is not None and current.headers.get(OBJECT_TYPE) != APPENDABLE:
                raise CosError(409, "ObjectNotAppendable", "This object can not be appended.")
            length = current.size if current is not None else 0
            if position != length:
                raise CosError(409, "PositionNotEqualToLength", f"position {position} is not the object's length "
                               f"{length}", headers={"x-cos-next-append-position": str(length)})
            if current is None:
                stored = attributes(req.headers, req.key)
                stored["headers"] = {**stored["headers"], OBJECT_TYPE: APPENDABLE}
                stored.pop("forbid_overwrite")
                combined = store.stage(req.bucket)
            else:
                stored = {"content_type": current.content_type, "meta": current.meta, "headers": current.headers,
                          "storage_class": current.storage_class, "acl": current.acl, "tags": current.tags}
                try:
                    _, combined = store.stage_copy(req.bucket, req.key, req.bucket)
                except CosError as err:
                    raise no_such_key(req.resource) if err.code == "NoSuchKey" else err from None
            try:
                with body.reader() as part:
                    copy_stream(part, combined)
                return store.put_staged(req.bucket, req.key, combined, **stored)
            finally:
                combined.discard()
