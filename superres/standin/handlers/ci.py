"""Cloud Infinite requests routed on COS hosts: processing during download and processing a stored object."""

from __future__ import annotations

from starlette.responses import Response

from superres.standin.handlers.common import Services
from superres.standin.request import CosRequest
from superres.standin.routing import route


class CloudInfiniteRoutes:
    def __init__(self, services: Services) -> None:
        self._ci = services.ci

    @route("GET", "bucket", sub=("ci-process",), options=("detect-url", "magnify"), action="cos:GetObject")
    @route("GET", "object", sub=("ci-process",), options=("magnify",), action="cos:GetObject")
    async def ci_download(self, req: CosRequest) -> Response:
        return await self._ci.download(req)

    @route("POST", "object", sub=("image_process",), action="cos:GetObject")
    async def ci_process_stored(self, req: CosRequest) -> Response:
        return await self._ci.process_stored(req)
