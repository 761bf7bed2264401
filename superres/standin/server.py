"""Running the stand-in: in a background thread for tests and the demo (`StandIn`), or in the foreground for the
CLI (`run_forever`)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

import requests
import uvicorn
from qcloud_cos import CosConfig, CosS3Client

from superres.standin.app import create_app
from superres.standin.faults import FaultInjector, FaultPlan

if TYPE_CHECKING:
    from superres.sr import Engine
    from superres.standin.events import ObjectCreatedCallback
    from superres.standin.settings import StandinSettings
    from superres.standin.store import ObjectStore

log = logging.getLogger("superres.standin")

_START_TIMEOUT_S = 15.0


def _bind(host: str, port: int) -> socket.socket:
    # Binding here (not in uvicorn) makes port 0 work: the OS picks a free port and we can read it back at once.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: object, host: str, port: int) -> uvicorn.Config:
    # log_config=None: leave the host program's logging alone; our own request lines go to "superres.standin".
    return uvicorn.Config(
        app, host=host, port=port, lifespan="off", access_log=False, log_config=None, server_header=False
    )


class StandIn:
    """The COS + CI stand-in on a local port, served by uvicorn in a background thread.

    with StandIn(settings, on_object_created=trigger) as standin:
        client = standin.client()
        standin.create_bucket("photos")
        client.put_object(Bucket=f"photos-{settings.appid}", Key="a.jpg", Body=b"...")
    """

    def __init__(
        self,
        settings: StandinSettings,
        engine: Engine | None = None,
        on_object_created: ObjectCreatedCallback | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
    ) -> None:
        self._settings = settings
        self._host = host
        self._requested_port = port
        self._app = create_app(settings, engine=engine, on_object_created=on_object_created)
        self._faults = FaultInjector(self._app, faults)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def settings(self) -> StandinSettings:
        return self._settings

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the stand-in is not started")
        return self._sock.getsockname()[1]

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> StandIn:
        if self._thread is not None:
            return self
        self._sock = _bind(self._host, self._requested_port)
        self._server = uvicorn.Server(_uvicorn_config(self._faults, self._host, self.port))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="superres-standin", daemon=True
        )
        self._thread.start()
        self._wait_until_answering()
        log.info("standin: serving %s (data in %s)", self.endpoint_url, self._settings.data_dir)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def client(
        self, secret_id: str | None = None, secret_key: str | None = None, token: str | None = None
    ) -> CosS3Client:
        """A CosS3Client configured as a user would, pointed at this stand-in; defaults to the first credential."""
        default = self._settings.credentials[0]
        if secret_id is None:
            secret_id, secret_key, token = default.secret_id, secret_key or default.secret_key, token or default.token
        config = CosConfig(
            Region=self._settings.region,
            SecretId=secret_id,
            SecretKey=secret_key,
            Token=token,
            IP=self._host,
            Port=self.port,
            Scheme="http",
        )
        return CosS3Client(config)

    def create_bucket(self, name: str) -> str:
        """Create `name` (or `name-appid`) through the COS API; returns `name-appid`."""
        bucket = self._settings.bucket_full_name(name)
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def bucket_exists(self, name: str) -> bool:
        """Whether `name` (or `name-appid`) exists; read from the store, so it works before `start()` too."""
        return self.store.bucket_exists(self._settings.bucket_full_name(name))

    @property
    def faults(self) -> FaultInjector:
        """The fault-injection middleware: its plan, and the log of requests it saw while a plan was set."""
        return self._faults

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Change the fault plan while serving (None: no faults and no request log)."""
        self._faults.plan = plan

    @property
    def store(self) -> ObjectStore:
        """The object store behind the server (for inspection in tests; writes should go through the API)."""
        return self._app.state.store

    def _wait_until_answering(self) -> None:
        # Any HTTP answer (even 400 for the bare Host) proves the server loop is up.
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self._thread is not None and not self._thread.is_alive():
                raise RuntimeError("the stand-in server thread exited during startup")
            try:
                requests.get(self.endpoint_url + "/", timeout=1)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the stand-in did not answer on {self.endpoint_url}") from None
                time.sleep(0.02)


def run_forever(
    settings: StandinSettings,
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    engine: Engine | None = None,
    on_object_created: ObjectCreatedCallback | None = None,
    faults: FaultPlan | None = None,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C); for `superres local --port PORT --data DIR`."""
    app = create_app(settings, engine=engine, on_object_created=on_object_created)
    uvicorn.Server(_uvicorn_config(FaultInjector(app, faults), host, port)).run()
