"""Bucket CORS: PUT/GET/DELETE /?cors, the unsigned OPTIONS preflight, and the headers on every other answer."""

from __future__ import annotations

import threading

from starlette.responses import Response

from superres.standin import cors
from superres.standin.errors import CosError
from superres.standin.handlers.common import Services, xml, xml_body
from superres.standin.request import CosRequest
from superres.standin.routing import route
from superres.standin.threads import in_thread

_CONFIG = "cors"


class Cors:
    def __init__(self, services: Services) -> None:
        self._s = services
        self._lock = threading.Lock()
        self._cache: dict[str, cors.CorsConfig | None] = {}

    def config(self, bucket: str) -> cors.CorsConfig | None:
        """The bucket's CORS configuration (cached; this app is its only writer)."""
        with self._lock:
            if bucket in self._cache:
                return self._cache[bucket]
        doc = self._s.store.bucket_config(bucket, _CONFIG) if self._s.store.bucket_exists(bucket) else None
        config = cors.CorsConfig.from_json(doc) if doc else None
        with self._lock:
            self._cache[bucket] = config
        return config

    def _replace(self, bucket: str, config: cors.CorsConfig | None) -> None:
        with self._lock:
            self._s.store.set_bucket_config(bucket, _CONFIG, config.to_json() if config else None)
            self._cache[bucket] = config

    def decorate(self, req: CosRequest, response: Response) -> None:
        """Access-Control-* on an actual (non-preflight) answer when a rule matches its Origin and method."""
        if req.method == "OPTIONS" or not req.bucket:
            return
        origin = req.headers.get("origin", "")
        for name, value in cors.actual_headers(self.config(req.bucket), origin, req.method).items():
            response.headers[name] = value

    @route("PUT", "bucket", sub=("cors",), action="cos:PutBucketCORS")
    async def put_bucket_cors(self, req: CosRequest) -> Response:
        body = await xml_body(req, "CORSConfiguration")
        config = cors.parse_config(body)
        await in_thread(self._replace, req.bucket, config)
        return Response(status_code=200)

    @route("GET", "bucket", sub=("cors",), action="cos:GetBucketCORS")
    async def get_bucket_cors(self, req: CosRequest) -> Response:
        config = await in_thread(self.config, req.bucket)
        if config is None:
            raise CosError(404, "NoSuchCORSConfiguration", "The specified CORS configuration is not found")
        return xml(cors.config_document(config))

    @route("DELETE", "bucket", sub=("cors",), action="cos:DeleteBucketCORS")
    async def delete_bucket_cors(self, req: CosRequest) -> Response:
        await in_thread(self._replace, req.bucket, None)
        return Response(status_code=204)

    @route("OPTIONS", "bucket", signed=False, any_params=True)
    @route("OPTIONS", "object", signed=False, any_params=True)
    async def preflight(self, req: CosRequest) -> Response:
        headers = cors.preflight_headers(
            await in_thread(self.config, req.bucket),
            req.headers.get("origin", ""),
            req.headers.get("access-control-request-method", ""),
            req.headers.get("access-control-request-headers", ""),
        )
        return Response(status_code=200, headers=headers)
