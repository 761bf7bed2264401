"""How the stand-in serves connections: every accepted connection has TCP_NODELAY set, so a response's body (written
after its headers) is not held back by Nagle's algorithm until the client's delayed ACK on a kept-alive connection."""

from __future__ import annotations

import http.client
import os
import socket

import psutil

from superres.standin import StandIn


def _server_side_nodelay(client_sock: socket.socket) -> int:
    """TCP_NODELAY of the stand-in's end of `client_sock`'s connection (the server runs in this process)."""
    ours, theirs = client_sock.getsockname(), client_sock.getpeername()
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.fd >= 0 and conn.raddr and tuple(conn.laddr) == theirs and tuple(conn.raddr) == ours:
            with socket.fromfd(conn.fd, socket.AF_INET, socket.SOCK_STREAM) as server_end:  # a dup of the fd
                return server_end.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    raise AssertionError(f"no server-side socket for the connection {ours} -> {theirs} in this process")


def test_second_get_on_a_kept_alive_connection_has_tcp_nodelay_on_the_server_side(  # type: ignore[no-untyped-def]
        standin: StandIn, cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="k.bin", Body=os.urandom(10 * 1024))
    headers = {"Host": standin.settings.bucket_host(bucket)}
    headers["Authorization"] = cos.get_auth(Method="GET", Bucket=bucket, Key="k.bin", Headers=headers)
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=10)
    try:
        bodies = []
        for _ in range(2):
            conn.request("GET", "/k.bin", headers=headers)
            response = conn.getresponse()
            bodies.append((response.status, len(response.read())))
            if len(bodies) == 1:
                first = conn.sock
        assert bodies == [(200, 10 * 1024)] * 2
        assert conn.sock is first, "the second GET must reuse the kept-alive connection"
        assert _server_side_nodelay(conn.sock) != 0
    finally:
        conn.close()
