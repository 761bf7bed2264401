"""Real-shaped COS trigger events for objects already stored in a stand-in, for tests that invoke the function
directly (a FunctionContainer) instead of through the trigger."""

from __future__ import annotations

from superres.scf.trigger import build_cos_event
from superres.stack import LocalStack
from superres.standin import ObjectCreated


def cos_event(stack: LocalStack, bucket: str, keys: list[str], *, request_id: str = "test") -> dict:
    """One `cos:ObjectCreated:Put` record per key, with the stored object's size and ETag."""
    records = []
    for key in keys:
        info = stack.standin.store.head(bucket, key)
        obj = ObjectCreated(bucket=bucket, key=key, size=info.size, etag=info.etag, content_type=info.content_type,
                            meta={}, event_name="cos:ObjectCreated:Put", request_id=request_id,
                            source_ip="127.0.0.1", authorization="")
        records.append(build_cos_event(obj, appid=stack.settings.appid, region=stack.settings.region))
    return {"Records": records}
