"""An ASGI app served by uvicorn on a background thread: the stand-in and the local SCF API both run this way."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

_START_TIMEOUT_S = 15.0


class BackgroundServer:
    """Binds first (so port 0 works: the OS picks a free port we can read back at once), then serves."""

    def __init__(self, app: object, *, host: str, port: int, name: str, date_header: bool = True) -> None:
        self._app = app
        self._date_header = date_header  # False: the app sends its own Date
        self._host = host
        self._requested_port = port
        self._name = name
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError(f"the {self._name} is not started")
        return self._sock.getsockname()[1]

    def bind(self) -> int:
        """Reserve the port without serving yet (so what must exist before the first request can use it)."""
        if self._sock is None:
            # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on each accepted connection only when the listening
            # socket says it is TCP. Without it Nagle holds a response's body (written after its headers) until the
            # client's delayed ACK, about 40 ms for every request after the first on a kept-alive connection.
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((self._host, self._requested_port))
            self._sock.listen(128)
            self._sock.set_inheritable(True)
        return self.port

    def start(self) -> None:
        if self._thread is not None:
            return
        self.bind()
        # log_config=None: leave the host program's logging alone; our own request lines have their loggers.
        # proxy_headers=False: no proxy stands in front, so X-Forwarded-For from a client must not change the source
        # IP the stand-in records (and the middleware that would read it costs every request).
        # http="h11", named: uvicorn's "auto" takes httptools wherever it is installed (uvicorn[standard] brings it),
        # and that protocol, though about a fifth cheaper per request (measured), lowercases every response header
        # name, while clients read COS's casing from plain dicts (coscmd's download looks up `Content-Length` in the
        # SDK's head_object answer and fails without it).
        config = uvicorn.Config(self._app, host=self._host, port=self.port, lifespan="off", access_log=False,
                                log_config=None, server_header=False, date_header=self._date_header,
                                proxy_headers=False, http="h11")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"superres-{self._name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"the {self._name} did not start on {self._host}:{self._requested_port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None
