"""COS trigger events: the envelope, and one typed record per entry of `Records`.

The real event (see shared/spec/tencent-platform-facts.md section 1) names the object as
`cosObject.key = "/<appid>/<bucket-name>/<key>"` with the key raw UTF-8, and `cosObject.url` percent-encoded.
We strip the prefix, and when the url is present we use it to check the key, decoding it exactly once.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from .errors import EventError

_URL_HOST_RE = re.compile(r"^(?P<bucket>[a-z0-9-]+-\d+)\.cos\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")


class CosRecord(NamedTuple):
    """One uploaded (or removed) object, as the function sees it."""

    event_name: str
    event_time: datetime
    bucket: str  # "<name>-<appid>", the form every COS API takes
    bucket_name: str
    appid: str
    region: str
    key: str  # decoded object key, no leading "/"
    raw_key: str  # cosObject.key exactly as it came in the event
    size: int
    etag: str | None
    url: str | None
    version_id: str | None
    warning: str | None = None  # something odd about the record that did not stop it (logged with its line)

    @property
    def is_object_created(self) -> bool:
        return self.event_name.startswith("cos:ObjectCreated:")

    @property
    def identity(self) -> tuple[str, str, str | None, int]:
        """What makes two records the same upload (duplicate deliveries share it)."""
        return (self.bucket, self.key, self.etag, self.size)


class RecordSlot(NamedTuple):
    """The outcome of parsing one entry of Records: a record, or the error that entry raised."""

    index: int
    record: CosRecord | None
    error: EventError | None
    hint_key: str | None = None  # best-effort key for logging an unparseable record


def iter_records(event: object, *, default_region: str | None = None) -> Iterator[RecordSlot]:
    """Yield one slot per entry of `Records`; raise EventError if the event is not a COS event at all."""
    records = _records(event)
    for index, raw in enumerate(records):
        try:
            yield RecordSlot(index, parse_record(raw, default_region=default_region), None)
        except EventError as exc:
            yield RecordSlot(index, None, EventError(f"Records[{index}]: {exc.message}", field=exc.field),
                             hint_key=_hint_key(raw))


def _records(event: object) -> list[object]:
    if not isinstance(event, Mapping):
        raise EventError(f"the event must be a JSON object with 'Records'; got {type(event).__name__}",
                         field="Records")
    if "Records" not in event:
        raise EventError("the event has no 'Records': this function is meant for COS triggers", field="Records")
    records = event["Records"]
    if not isinstance(records, list):
        raise EventError(f"'Records' must be a list; got {type(records).__name__}", field="Records")
    if not records:
        raise EventError("'Records' is empty: nothing to process", field="Records")
    return records


def parse_record(raw: object, *, default_region: str | None = None) -> CosRecord:
    """Turn one entry of Records into a CosRecord, or raise EventError naming the bad field."""
    record = _mapping(raw, "Records[]")
    cos = _mapping(record.get("cos"), "cos")
    event = _mapping(record.get("event"), "event")
    cos_bucket = _mapping(cos.get("cosBucket"), "cos.cosBucket")
    cos_object = _mapping(cos.get("cosObject"), "cos.cosObject")

    appid = _text(cos_bucket.get("appid"), "cos.cosBucket.appid", allow_int=True)
    name = _text(cos_bucket.get("name"), "cos.cosBucket.name")
    raw_key = _text(cos_object.get("key"), "cos.cosObject.key")
    url = _url(cos_object.get("url"))
    meta = cos_object.get("meta")
    meta = meta if isinstance(meta, Mapping) else {}

    key, warning = _object_key(raw_key, appid, name, url)
    return CosRecord(
        event_name=_text(event.get("eventName"), "event.eventName"),
        event_time=_event_time(event.get("eventTime")),
        bucket=f"{name}-{appid}",
        bucket_name=name,
        appid=appid,
        region=_region(cos_bucket, url, default_region),
        key=key,
        raw_key=raw_key,
        size=_size(cos_object.get("size")),
        etag=_meta_value(meta, "ETag"),
        url=url,
        version_id=_optional_text(cos_object.get("vid"), "cos.cosObject.vid") or None,
        warning=warning,
    )


def _object_key(raw_key: str, appid: str, name: str, url: str | None) -> tuple[str, str | None]:
    prefix = f"/{appid}/{name}/"
    if raw_key.startswith(prefix):
        key = raw_key[len(prefix):]
    elif raw_key.startswith(f"{appid}/{name}/"):
        key = raw_key[len(prefix) - 1:]
    else:
        raise EventError(f"cos.cosObject.key {raw_key[:200]!r} does not start with {prefix!r}",
                         field="cos.cosObject.key")
    if not key:
        raise EventError("cos.cosObject.key names the bucket itself, not an object", field="cos.cosObject.key")
    url_key = _key_from_url(url)
    if url_key is None or url_key == key:
        return key, None
    # Real events carry the raw key; should a key ever arrive percent-encoded, the url settles it.
    if unquote(key) == url_key:
        return url_key, None
    # The key is what COS documents as the object's name; a url that disagrees (encoded differently, say) does not
    # make the upload less real. Use the key, and say so in the log line.
    return key, (f"cos.cosObject.url (decoded: {url_key[:200]!r}) names another key than cos.cosObject.key; "
                 "used the key")


def _url(value: object) -> str | None:
    url = _optional_text(value, "cos.cosObject.url")
    if url is not None:
        try:
            urlsplit(url)
        except ValueError as exc:  # e.g. "http://[abc/": an unbalanced IPv6 bracket
            raise EventError(f"cos.cosObject.url is not a URL: {exc}", field="cos.cosObject.url") from None
    return url


def _key_from_url(url: str | None) -> str | None:
    if not url:
        return None
    path = urlsplit(url).path
    return unquote(path[1:]) if path.startswith("/") and len(path) > 1 else None


def _region(cos_bucket: Mapping[str, object], url: str | None, default_region: str | None) -> str:
    for field in ("cosRegion", "s3Region"):
        value = cos_bucket.get(field)
        if isinstance(value, str) and value.strip() and _is_utf8(value):
            return value.strip()
    if default_region:
        return default_region
    if url:
        match = _URL_HOST_RE.match(urlsplit(url).hostname or "")
        if match:
            return match.group("region")
    raise EventError(
        "no region: cos.cosBucket has no cosRegion/s3Region, TENCENTCLOUD_REGION is unset "
        "and cos.cosObject.url is not '<bucket>.cos.<region>.myqcloud.com'",
        field="cos.cosBucket.cosRegion",
    )


def _event_time(value: object) -> datetime:
    if isinstance(value, bool):
        pass
    elif isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            pass
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        seconds = _whole_number(text)
        if seconds is not None:
            return _event_time(seconds)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise EventError(
        f"event.eventTime must be Unix seconds or an ISO-8601 string; got {_show(value)}", field="event.eventTime"
    )


def _size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    number = _whole_number(value.strip()) if isinstance(value, str) else None
    if number is not None:
        return number
    raise EventError(f"cos.cosObject.size must be a whole number of bytes; got {_show(value)}",
                     field="cos.cosObject.size")


def _whole_number(text: str) -> int | None:
    """ASCII digits only: str.isdigit() also accepts '²', which int() refuses; the length cap keeps int() clear of
    its 4300-digit limit (no size or Unix time needs more than 20 digits)."""
    if text.isascii() and text.isdigit() and len(text) <= 20:
        return int(text)
    return None


def _is_utf8(text: str) -> bool:
    """False for strings holding lone surrogates ("\\ud800" in the JSON): no COS key or name can, and they
    cannot be encoded for a request or a log line."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 3, 80, 80, 4, 4


def _show(value: object) -> str:
    """A short repr for error messages; reprlib stops at a depth, where repr() of a value nested thousands deep
    would raise RecursionError."""
    return _REPR.repr(value)


def _mapping(value: object, field: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        what = "missing" if value is None else f"a {type(value).__name__}, not an object"
        raise EventError(f"{field} is {what}", field=field)
    return value


def _text(value: object, field: str, *, allow_int: bool = False) -> str:
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        what = "missing" if value is None else f"{_show(value)}"
        raise EventError(f"{field} must be a non-empty string; got {what}", field=field)
    if any(ch in value for ch in "\x00\r\n"):
        raise EventError(f"{field} contains NUL or line-break characters", field=field)
    if not _is_utf8(value):
        raise EventError(f"{field} is not valid Unicode (lone surrogate)", field=field)
    return value


def _optional_text(value: object, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EventError(f"{field} must be a string; got {_show(value)}", field=field)
    if not _is_utf8(value):
        raise EventError(f"{field} is not valid Unicode (lone surrogate)", field=field)
    return value


def _meta_value(meta: Mapping[object, object], name: str) -> str | None:
    for key, value in meta.items():
        if isinstance(key, str) and key.lower() == name.lower() and isinstance(value, str):
            return value
    return None


def _hint_key(raw: object) -> str | None:
    """The key of a record we could not parse, if one can be read, so its log line can be found."""
    try:
        key = raw["cos"]["cosObject"]["key"]  # type: ignore[index]
    except (KeyError, TypeError, IndexError):
        return None
    if not isinstance(key, str):
        return None
    return key[:1024].encode("utf-8", "backslashreplace").decode("utf-8")
