"""Object ACL and tagging: parsed from COS requests, stored beside the object, rendered in COS's XML shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from superres.standin.errors import CosError, invalid_argument
from superres.standin.xmldoc import as_list, text

CANNED = ("default", "private", "public-read")
ALL_USERS = "http://cam.qcloud.com/groups/global/AllUsers"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_GRANT_HEADERS = {
    "x-cos-grant-read": "READ",
    "x-cos-grant-read-acp": "READ_ACP",
    "x-cos-grant-write-acp": "WRITE_ACP",
    "x-cos-grant-full-control": "FULL_CONTROL",
}
_PERMISSIONS = ("READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL")
_GRANTEE = re.compile(r'^\s*(id|uri)="([^"]*)"\s*$')
MAX_TAGS = 10


def owner_id(appid: str) -> str:
    return f"qcs::cam::uin/{appid}:uin/{appid}"


def acl_from_headers(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """x-cos-acl and x-cos-grant-* -> the stored ACL; None when the request names none."""
    canned = headers.get("x-cos-acl")
    grants = []
    for header, permission in _GRANT_HEADERS.items():
        if header in headers:
            for item in headers[header].split(","):
                match = _GRANTEE.match(item)
                if match is None:
                    raise invalid_argument(f"{header} must be id=\"...\" entries separated by commas")
                grants.append({"type": "CanonicalUser" if match[1] == "id" else "Group", "id": match[2],
                               "permission": permission})
    if canned is None and not grants:
        return None
    if canned is not None and canned not in CANNED:
        raise invalid_argument(f"x-cos-acl must be one of {', '.join(CANNED)} for an object, got {canned!r}")
    return {"canned": canned or "default", "grants": grants}


def acl_from_xml(policy: dict[str, Any]) -> dict[str, Any]:
    """An AccessControlPolicy body -> the stored ACL (the owner's implicit FULL_CONTROL is not stored)."""
    acl_list = policy.get("AccessControlList")
    grants = []
    for grant in as_list(acl_list.get("Grant") if isinstance(acl_list, dict) else None):
        if not isinstance(grant, dict) or not isinstance(grant.get("Grantee"), dict):
            raise CosError(400, "MalformedXML", "each Grant needs a Grantee and a Permission")
        grantee, permission = grant["Grantee"], text(grant.get("Permission"))
        if permission not in _PERMISSIONS:
            raise invalid_argument(f"Permission must be one of {', '.join(_PERMISSIONS)}, got {permission!r}")
        kind = grantee.get("@xsi:type") or grantee.get("@type") or ("Group" if "URI" in grantee else "CanonicalUser")
        ident = text(grantee.get("URI")) if kind == "Group" else text(grantee.get("ID"))
        if not ident:
            raise CosError(400, "MalformedXML", "each Grantee needs an ID (CanonicalUser) or a URI (Group)")
        grants.append({"type": kind, "id": ident, "permission": permission})
    return {"canned": "default", "grants": grants}


def acl_document(acl: Mapping[str, Any], appid: str) -> dict[str, Any]:
    owner = {"ID": owner_id(appid), "DisplayName": owner_id(appid)}
    grants: list[dict[str, Any]] = [_grant("CanonicalUser", owner["ID"], "FULL_CONTROL")]
    if acl.get("canned") == "public-read":
        grants.append(_grant("Group", ALL_USERS, "READ"))
    grants += [_grant(g["type"], g["id"], g["permission"]) for g in acl.get("grants", [])]
    return {"AccessControlPolicy": {"Owner": owner, "AccessControlList": {"Grant": grants}}}


def _grant(kind: str, ident: str, permission: str) -> dict[str, Any]:
    grantee: dict[str, Any] = {"@xmlns:xsi": XSI, "@xsi:type": kind}
    if kind == "Group":
        grantee["URI"] = ident
    else:
        grantee.update(ID=ident, DisplayName=ident)
    return {"Grantee": grantee, "Permission": permission}


def tags_from_xml(tagging: dict[str, Any]) -> dict[str, str]:
    tag_set = tagging.get("TagSet")
    pairs = []
    for tag in as_list(tag_set.get("Tag") if isinstance(tag_set, dict) else None):
        if not isinstance(tag, dict) or "Key" not in tag:
            raise CosError(400, "MalformedXML", "each Tag needs a Key and a Value")
        pairs.append((text(tag.get("Key")), text(tag.get("Value"))))
    return _checked_tags(pairs)


def tags_from_header(value: str | None) -> dict[str, str] | None:
    """x-cos-tagging on an upload: `k1=v1&k2=v2`, URL-encoded."""
    if value is None:
        return None
    return _checked_tags(parse_qsl(value, keep_blank_values=True))


def _checked_tags(pairs: list[tuple[str, str]]) -> dict[str, str]:
    if len(pairs) > MAX_TAGS:
        raise CosError(400, "BadRequest", f"an object takes at most {MAX_TAGS} tags, got {len(pairs)}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key or len(key) > 128 or len(value) > 256:
            raise CosError(400, "InvalidTag", "tag keys are 1-128 characters and values at most 256")
        if key in tags:
            raise CosError(400, "InvalidTag", f"tag key {key!r} is given twice")
        tags[key] = value
    return tags


def tagging_document(tags: Mapping[str, str]) -> dict[str, Any]:
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    return {"Tagging": {"TagSet": {"Tag": tag_list} if tag_list else None}}
