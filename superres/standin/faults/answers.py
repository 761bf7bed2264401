"""How a fault answers: COS error XML without processing the request, or no answer at all (a reset)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import uuid

from superres.standin.asgi import RAW_SEND, Scope, Send
from superres.standin.errors import CosError

MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Please reduce your request rate.",
}


async def error_response(status: int, code: str, resource: str, send: Send, *, why: str = "") -> None:
    """COS error XML, as COS answers it; `why` (the injection rule) is added to messages COS has no text for."""
    request_id = uuid.uuid4().hex
    message = MESSAGES.get(code) or (f"Injected by the stand-in ({why})." if why else code)
    body = CosError(status, code, message, resource).to_xml(request_id)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/xml"), (b"content-length", str(len(body)).encode()),
        (b"x-cos-request-id", request_id.encode()), (b"Server", b"tencent-cos"),
    ]})
    await send({"type": "http.response.body", "body": body})


async def reset(scope: Scope, send: Send) -> None:
    """Drop the connection without an answer. ASGI has no verb for that; uvicorn's `send` is a bound method of the
    request cycle that holds the asyncio transport, so abort it (SO_LINGER 0 turns the close into an RST). Once the
    loop has run connection_lost, uvicorn treats the client as gone and sends nothing more. (Middleware above wraps
    `send`: the server's own is in the scope under RAW_SEND.)

    Elsewhere (another server), fall back to a truncated answer: headers promising a body, then an exception, which
    ASGI servers answer by closing the connection; clients see a broken response, not a status."""
    raw = scope.get(RAW_SEND, send)
    transport = getattr(getattr(raw, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        for _ in range(3):
            await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise ConnectionResetError("fault injection: connection reset")
