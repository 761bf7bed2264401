"""Cloud Infinite AISuperResolution, all three ways of calling it (spec: ai-super-resolution-api.md).

1. GET /<key>?ci-process=AISuperResolution[&magnify=N], or GET /?ci-process=...&detect-url=<url>: image/png body.
2. PUT /<key> with Pic-Operations: store the original, then one result per rule; UploadResult XML.
3. POST /<key>?image_process with Pic-Operations: process the stored object; UploadResult XML.

Methods 2 and 3 take up to five rules per request (pic_operations.py has the doc references), each an
AISuperResolution run or a basic imageMogr2 format/quality conversion; one UploadResult answers for all of them, one
`Object` per rule. Every check (Pic-Operations, destination buckets, image size and resolution, decodability) and
all the work happen before the first write, so a refused or failed request stores nothing.

AISuperResolution results are PNG bytes, whatever the fileid's extension and the source's format:
- the download-time method is documented to answer `Content-Type: image/png` (spec: ai-super-resolution-api.md,
  "Response: 200 OK, Content-Type: image/png");
- a public project calling the real service names the result after the source (".jpg" for a JPEG upload) and
  still calls it the "lossless PNG" product ("转码失败自动降级返回 PNG 原成品", "体积约为无损 PNG 的 1/10~1/20"),
  converting it to WebP/JPEG with a second `image_process` call (imageMogr2/format/<f>/quality/<q>).
No doc says the result follows the fileid's extension, so none is honoured here: a fileid "x.jpg" holds PNG bytes
(and Content-Type image/png), as it would on the real service. Use an imageMogr2/format rule to get JPEG or WebP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from starlette.responses import Response

from superres.standin import xmldoc
from superres.standin.detect_url import SourceFetcher, parse_source_url
from superres.standin.errors import CosError, invalid_argument, no_such_bucket
from superres.standin.images import (
    BASIC_LIMITS,
    LOSSLESS_QUALITY,
    SUPER_RESOLUTION_LIMITS,
    InputLimits,
    SourceImage,
    check_source_size,
    ci_format_name,
    conversion_format,
    encode_image,
    has_quality_setting,
    load_source_image,
    mime_type,
)
from superres.standin.pic_operations import (
    CI_PROCESS,
    Conversion,
    PicOperations,
    parse_magnify,
    parse_pic_operations,
)
from superres.standin.threads import in_thread

if TYPE_CHECKING:
    from PIL import Image

    from superres.sr import Engine
    from superres.standin.events import EventSink
    from superres.standin.request import CosRequest
    from superres.standin.settings import StandinSettings
    from superres.standin.store import ObjectInfo, ObjectStore, StagedFile

log = logging.getLogger("superres.standin")

CI_SERVER = "tencent-ci"
_FETCH_CHUNK = 64 * 1024


@dataclass(frozen=True)
class _Rendered:
    bucket: str
    key: str
    data: bytes
    format: str
    width: int
    height: int
    quality: int  # as ProcessResults reports it


@dataclass(frozen=True)
class _Stored:
    bucket: str
    info: ObjectInfo
    rendered: _Rendered


class CloudInfinite:
    """The CI side of the stand-in; shares the object store and the trigger's event sink with the COS side."""

    def __init__(
        self, settings: StandinSettings, store: ObjectStore, events: EventSink, engine: Engine | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._events = events
        self._engine = engine
        self._engine_lock = threading.Lock()
        self._sr_slots: anyio.Semaphore | None = None
        self._fetcher = SourceFetcher(settings.detect_url_max_bytes, settings.detect_url_timeout_s)

    # ---- method 1: processing during download ---------------------------------------------------
    async def download(self, req: CosRequest) -> Response:
        process = req.params.get("ci-process")
        if process != CI_PROCESS:
            raise invalid_argument(f"unsupported ci-process {process!r}; this stand-in implements {CI_PROCESS}")
        authorize_super_resolution(req)
        magnify = parse_magnify(req.params.get("magnify"))
        detect_url = req.params.get("detect-url")
        if detect_url:
            source_url = parse_source_url(detect_url, self._settings.detect_url_allow_hosts)
            data = await self._fetcher.fetch(source_url)
        elif req.key:
            data = await self._read_source(req, SUPER_RESOLUTION_LIMITS)
        else:
            raise invalid_argument("give an object key or detect-url")
        source = await self._load(data, SUPER_RESOLUTION_LIMITS)
        upscaled = await self._upscale(source.image, magnify)
        png = await in_thread(encode_image, upscaled, "PNG")
        return Response(png, media_type="image/png", headers={"Server": CI_SERVER})

    # ---- method 2: processing upon upload -------------------------------------------------------
    async def upload(self, req: CosRequest, staged: StagedFile, content_type: str, meta: dict[str, str]) -> Response:
        """`staged` holds the received body; it is committed as the original only once every result is ready."""
        try:
            ops = self._parse_operations(req)
            limits = _limits(ops)
            check_source_size(staged.size, limits)
            source = await self._load(await in_thread(staged.read_all), limits)
            rendered = await self._render(req, source, ops)
            original = await in_thread(self._store.put_staged, req.bucket, req.key, staged, content_type, meta)
        finally:
            staged.discard()
        await in_thread(self._events.notify, req.object_created(req.bucket, original))
        stored = await self._store_results(req, rendered)
        return self._upload_result(req, original, source if ops.is_pic_info else None, stored)

    # ---- method 3: cloud data processing --------------------------------------------------------
    async def process_stored(self, req: CosRequest) -> Response:
        ops = self._parse_operations(req)
        limits = _limits(ops)
        original = await in_thread(self._store.head, req.bucket, req.key)
        source = await self._load(await self._read_source(req, limits), limits)
        rendered = await self._render(req, source, ops)
        stored = await self._store_results(req, rendered)
        return self._upload_result(req, original, source if ops.is_pic_info else None, stored)

    # ---- shared steps ---------------------------------------------------------------------------
    def _parse_operations(self, req: CosRequest) -> PicOperations:
        header = req.headers.get("pic-operations")
        if header is None:
            raise CosError(400, "InvalidPicOperations", "the Pic-Operations header is required", req.resource)
        ops = parse_pic_operations(_utf8(header), req.key)
        for rule in ops.rules:
            if rule.bucket is not None and not self._store.bucket_exists(rule.bucket):
                raise no_such_bucket(rule.bucket, f"destination bucket {rule.bucket} does not exist")
        self._authorize(req, ops)
        return ops

    @staticmethod
    def _authorize(req: CosRequest, ops: PicOperations) -> None:
        """A temporary key needs cos:PutObject on every destination and, for a super-resolution rule, the CI
        action on the source; the docs name it ci:CreateAISuperResolutionJob (436/83800) or
        ci:CreateSuperResolutionJob (460/83793), so either one grants it."""
        for rule in ops.rules:
            req.authorize("cos:PutObject", rule.bucket or req.bucket, rule.key)
        if any(rule.magnify is not None for rule in ops.rules):
            authorize_super_resolution(req)

    async def _read_source(self, req: CosRequest, limits: InputLimits) -> bytes:
        """A stored source, refused by its recorded size before any byte is read."""
        info = await in_thread(self._store.head, req.bucket, req.key)
        check_source_size(info.size, limits)
        _, data = await in_thread(self._store.read, req.bucket, req.key)
        check_source_size(len(data), limits)
        return data

    async def _load(self, data: bytes, limits: InputLimits) -> SourceImage:
        return await in_thread(load_source_image, data, limits)

    async def _render(self, req: CosRequest, source: SourceImage, ops: PicOperations) -> list[_Rendered]:
        """Every rule's output bytes, computed before anything is stored. One SR run per distinct magnify."""
        super_resolved: dict[int, tuple[Image.Image, bytes]] = {}
        results: list[_Rendered] = []
        for rule in ops.rules:
            bucket = rule.bucket or req.bucket
            if rule.magnify is not None:
                if rule.magnify not in super_resolved:
                    image = await self._upscale(source.image, rule.magnify)
                    super_resolved[rule.magnify] = image, await in_thread(encode_image, image, "PNG")
                image, data = super_resolved[rule.magnify]
                results.append(_Rendered(bucket, rule.key, data, "PNG", image.width, image.height, LOSSLESS_QUALITY))
            elif rule.conversion is not None:
                results.append(await in_thread(_convert, source, rule.conversion, bucket, rule.key))
        return results

    async def _store_results(self, req: CosRequest, rendered: list[_Rendered]) -> list[_Stored]:
        stored = []
        for item in rendered:
            info = await in_thread(self._store.put, item.bucket, item.key, item.data, mime_type(item.format))
            await in_thread(self._events.notify, req.object_created(item.bucket, info))
            stored.append(_Stored(item.bucket, info, item))
        return stored

    async def _upscale(self, image: Image.Image, scale: int) -> Image.Image:
        async with self._sr_slot():
            try:
                engine = await in_thread(self._engine_instance)
                return await in_thread(engine.upscale, image, scale)
            except CosError:
                raise
            except Exception as exc:
                log.exception("standin: super-resolution failed")
                raise CosError(500, "InternalError", f"super-resolution failed: {exc}") from None

    @asynccontextmanager
    async def _sr_slot(self) -> AsyncIterator[None]:
        # Created on first use so it belongs to the serving event loop. SR is CPU-bound: more parallel jobs
        # than cores only adds memory.
        if self._sr_slots is None:
            self._sr_slots = anyio.Semaphore(self._settings.max_sr_jobs)
        async with self._sr_slots:
            yield

    def _engine_instance(self) -> Engine:
        # Loaded on first use so the object API works even where the SR weights are not installed.
        with self._engine_lock:
            if self._engine is None:
                from superres.sr import load_engine

                self._engine = load_engine(self._settings.engine_name)
                log.info("standin: SR engine %s loaded", self._engine.name)
            return self._engine

    def _upload_result(
        self, req: CosRequest, original: ObjectInfo, source: SourceImage | None, stored: list[_Stored]
    ) -> Response:
        original_info: dict[str, object] = {
            "Key": original.key,
            "Location": self._location(req.bucket, original.key),
            "ETag": original.etag,
        }
        if source is not None:
            original_info["ImageInfo"] = {
                "Format": source.format,
                "Width": source.width,
                "Height": source.height,
                "Quality": source.quality,
                "Ave": source.ave,
                "Orientation": source.orientation,
            }
        objects = [
            {
                "Key": item.info.key,
                "Location": self._location(item.bucket, item.info.key),
                "Format": ci_format_name(item.rendered.format),
                "Width": item.rendered.width,
                "Height": item.rendered.height,
                "Size": item.info.size,
                "Quality": item.rendered.quality,
                "ETag": item.info.etag,
            }
            for item in stored
        ]
        results = {"Object": objects} if objects else None
        doc = {"UploadResult": {"OriginalInfo": original_info, "ProcessResults": results}}
        body = xmldoc.render(doc)
        return Response(body, media_type="application/xml", headers={"Server": CI_SERVER})

    def _location(self, bucket: str, key: str) -> str:
        return f"{self._settings.bucket_host(bucket)}/{key}"


def authorize_super_resolution(req: CosRequest) -> None:
    try:
        req.authorize("ci:CreateAISuperResolutionJob", req.bucket, req.key)
    except CosError:
        req.authorize("ci:CreateSuperResolutionJob", req.bucket, req.key)


def _limits(ops: PicOperations) -> InputLimits:
    """A request with any AISuperResolution rule needs a source AISuperResolution accepts; else basic limits."""
    return SUPER_RESOLUTION_LIMITS if ops.has_super_resolution else BASIC_LIMITS


def _convert(source: SourceImage, conversion: Conversion, bucket: str, key: str) -> _Rendered:
    """A basic imageMogr2 format/quality rule applied to the source, size unchanged."""
    fmt = conversion_format(source, conversion.format)
    if has_quality_setting(fmt):
        quality = conversion.effective_quality(source.quality)
        data = encode_image(source.image, fmt, quality)
    else:
        quality = LOSSLESS_QUALITY
        data = encode_image(source.image, fmt)
    return _Rendered(bucket, key, data, fmt, source.image.width, source.image.height, quality)


def _utf8(header: str) -> str:
    """Headers arrive latin-1 decoded; a client that sent raw UTF-8 JSON (curl, not the SDK) gets it back."""
    try:
        return header.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return header
