"""Running the stand-in on a local port, in a background thread (tests, the demo, `superres local`)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING

from qcloud_cos import CosConfig, CosS3Client

from superres.serving import BackgroundServer
from superres.standin.app import create_app
from superres.standin.faults import FaultInjector, FaultPlan

if TYPE_CHECKING:
    from superres.sr import Engine
    from superres.standin.events import ObjectCreatedCallback
    from superres.standin.settings import StandinSettings
    from superres.standin.store import ObjectStore

log = logging.getLogger("superres.standin")


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
        self._app = create_app(settings, engine=engine, on_object_created=on_object_created)
        self._faults = FaultInjector(self._app, faults)
        self._server = BackgroundServer(self._faults, host=host, port=port, name="stand-in")

    @property
    def settings(self) -> StandinSettings:
        return self._settings

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._server.host}:{self.port}"

    def start(self) -> StandIn:
        if self._server.running:
            return self
        self._server.start()
        log.info("standin: serving %s (data in %s)", self.endpoint_url, self._settings.data_dir)
        return self

    def stop(self) -> None:
        self._server.stop()

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
            IP=self._server.host,
            Port=self.port,
            Scheme="http",
        )
        return CosS3Client(config)

    def bind(self) -> int:
        """Reserve the port (and know `endpoint_url`) before `start()` serves on it."""
        return self._server.bind()

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
