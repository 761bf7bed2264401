"""A client that dies mid-upload: it declares a body, sends part of it and closes the connection. Servers must take
that quietly (nothing stored, nothing changed, no traceback): the trigger's workers are killed this way by a second
Ctrl-C, and a deploy tool or a browser can be."""

from __future__ import annotations

import logging
import socket
import time

import pytest


def send_cut_off(port: int, request_line: str, headers: dict[str, str], *, sent: int = 70000,
                 declared: int = 1_000_000) -> None:
    """`request_line` with `headers` and a Content-Length of `declared`, then `sent` bytes of it, then close."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"{request_line}\r\n{head}Content-Length: {declared}\r\n\r\n".encode() + b"x" * sent)


def errors_logged(caplog: pytest.LogCaptureFixture, wait_s: float = 2.0) -> list[str]:
    """ERROR records (a server's "Exception in ASGI application" or our "unhandled error") seen within `wait_s`."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
        if errors:
            return errors
        time.sleep(0.05)
    return []
