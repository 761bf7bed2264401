"""Object sub-resources kept beside the object: ACL and tagging (no event)."""

from __future__ import annotations

from starlette.responses import Response

from superres.standin import acl as acls
from superres.standin.handlers.common import Services, xml, xml_body
from superres.standin.request import CosRequest
from superres.standin.routing import route
from superres.standin.threads import in_thread


class SubResources:
    def __init__(self, services: Services) -> None:
        self._s = services

    @route("GET", "object", sub=("acl",), action="cos:GetObjectACL")
    async def get_acl(self, req: CosRequest) -> Response:
        info = await in_thread(self._s.store.head, req.bucket, req.key)
        return xml(acls.acl_document(info.acl, self._s.settings.appid))

    @route("PUT", "object", sub=("acl",), action="cos:PutObjectACL")
    async def put_acl(self, req: CosRequest) -> Response:
        acl = acls.acl_from_headers(req.headers)
        if acl is None:
            acl = acls.acl_from_xml(await xml_body(req, "AccessControlPolicy"))
        await in_thread(lambda: self._s.store.update(req.bucket, req.key, acl=acl))
        return Response(status_code=200)

    @route("GET", "object", sub=("tagging",), action="cos:GetObjectTagging")
    async def get_tagging(self, req: CosRequest) -> Response:
        info = await in_thread(self._s.store.head, req.bucket, req.key)
        return xml(acls.tagging_document(info.tags))

    @route("PUT", "object", sub=("tagging",), action="cos:PutObjectTagging")
    async def put_tagging(self, req: CosRequest) -> Response:
        tags = acls.tags_from_xml(await xml_body(req, "Tagging"))
        await in_thread(lambda: self._s.store.update(req.bucket, req.key, tags=tags))
        return Response(status_code=200)

    @route("DELETE", "object", sub=("tagging",), action="cos:DeleteObjectTagging")
    async def delete_tagging(self, req: CosRequest) -> Response:
        await in_thread(lambda: self._s.store.update(req.bucket, req.key, tags={}))
        return Response(status_code=204)
