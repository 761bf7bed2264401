"""What the stand-in's ASGI middleware (request log, fault injection, storage clock) share: the ASGI types, one
description of a request read straight from the scope, and body buffering.

The description is made once per request by the outermost middleware and kept in the scope, so the layers below
agree on what a request is (which bucket, which key, whether it is a Cloud Infinite call).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Scope keys the middleware layers use to talk to each other (ASGI lets a server or middleware add keys).
VIEW = "superres.request"  # the RequestView below
INJECTED = "superres.injected"  # text of the injection rule(s) applied to this request
RAW_SEND = "superres.raw_send"  # the server's own `send` (a reset aborts its transport)
UNSENT = "superres.unsent"  # the http.response.start the app produced but the client never got (a late CI call)

# COS sub-resources (query parameters that name what a request acts on rather than option it). Parameters outside
# this set (prefix, max-keys, magnify, presigned-URL fields) are options and are not listed.
SUBRESOURCES = frozenset({
    "acl", "append", "cors", "ci-process", "delete", "domain", "encryption", "image_process", "intelligenttiering",
    "inventory", "lifecycle", "location", "logging", "notification", "object-lock", "partNumber", "policy",
    "position", "referer", "replication", "restore", "select", "tagging", "uploadId", "uploads", "versionId",
    "versioning", "versions", "website",
})
_BUCKET_HOST = re.compile(r"^([a-z0-9](?:[a-z0-9-]*[a-z0-9])?-\d+)\.cos\.", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as the middleware sees it. `key` is percent-decoded once ("" for a bucket request); `ci` is true
    for any Cloud Infinite call: `?image_process`, `?ci-process`, or a PUT with Pic-Operations."""

    method: str
    bucket: str
    key: str
    path: str  # the raw path as uvicorn decoded it (fault plans draw per path)
    subresources: tuple[str, ...]
    ci: bool

    @property
    def op(self) -> str:
        """The one operation class a request belongs to: "ci" for a CI call, else its method in lower case."""
        return "ci" if self.ci else self.method.lower()


def view_of(scope: Scope) -> RequestView:
    """The scope's RequestView, made on first use and kept in the scope."""
    view = scope.get(VIEW)
    if view is None:
        view = scope[VIEW] = _describe(scope)
    return view  # type: ignore[no-any-return]


def _describe(scope: Scope) -> RequestView:
    headers = {name.lower(): value for name, value in scope.get("headers", ())}
    host = headers.get(b"host", b"").decode("latin-1")
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    if raw_path.startswith((b"http://", b"https://")):  # absolute-form target (a client behind a proxy)
        authority, _, rest = raw_path.split(b"://", 1)[1].partition(b"/")
        host, raw_path = authority.decode("latin-1"), b"/" + rest
    try:
        path = unquote_to_bytes(raw_path.split(b"?", 1)[0]).decode("utf-8")
    except UnicodeDecodeError:
        path = scope["path"]
    match = _BUCKET_HOST.match(host)
    query = scope.get("query_string", b"").decode("latin-1")
    names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    ci = "image_process" in names or "ci-process" in names or b"pic-operations" in headers
    return RequestView(
        method=scope["method"],
        bucket=match[1].lower() if match else "",
        key=path[1:] if path.startswith("/") else path,
        path=scope["path"],
        subresources=tuple(sorted(names & SUBRESOURCES)),
        ci=ci,
    )


async def read_body(receive: Receive) -> list[Message]:
    """Every message of the request body, read now (as a slow server would have it before answering)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives `messages` first, then defers to the original."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
