"""What the stand-in tells its trigger after each object write."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("superres.standin")

EVENT_PUT = "cos:ObjectCreated:Put"
EVENT_POST = "cos:ObjectCreated:Post"
EVENT_COPY = "cos:ObjectCreated:Copy"
EVENT_COMPLETE_MULTIPART = "cos:ObjectCreated:CompleteMultipartUpload"
EVENT_APPEND = "cos:ObjectCreated:Append"


@dataclass(frozen=True)
class ObjectCreated:
    """One stored object, carrying the fields a real COS event record has.

    `bucket` is `name-appid`; `key` is the raw object key (no leading slash, not URL-encoded);
    `authorization` is the uploader's Authorization header, like the real event's requestHeaders.
    """

    bucket: str
    key: str
    size: int
    etag: str
    content_type: str
    meta: dict[str, str]
    event_name: str
    request_id: str
    source_ip: str
    authorization: str


ObjectCreatedCallback = Callable[[ObjectCreated], None]


class EventSink:
    """Delivers ObjectCreated events to the trigger's callback; a failing callback never fails the write."""

    def __init__(self, callback: ObjectCreatedCallback | None) -> None:
        self._callback = callback

    @property
    def wanted(self) -> bool:
        """Whether anyone listens (without a trigger, a write need not hand an event to a worker thread)."""
        return self._callback is not None

    def notify(self, event: ObjectCreated) -> None:
        if self._callback is None:
            return
        try:
            self._callback(event)
        except Exception:
            log.exception(
                "standin: on_object_created failed for %s/%s (request %s); the object is stored",
                event.bucket,
                event.key,
                event.request_id,
            )
