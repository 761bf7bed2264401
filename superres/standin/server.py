"""Running the stand-in on a local port, in a background thread (tests, the demo, `superres local`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from qcloud_cos import CosConfig, CosS3Client

from superres.serving import BackgroundServer
from superres.standin.app import create_app
from superres.standin.clock import DateHeader, StorageClock
from superres.standin.faults import FaultInjector, FaultPlan, InjectRule
from superres.standin.request_log import RequestLog

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
        *,
        request_log: Path | None = None,
        injections: Sequence[str] = (),
        inject_file: Path | None = None,
        clock_skew_s: float = 0.0,
    ) -> None:
        """`request_log`: also append each request's record to this file (JSON lines); `injections`: inject SPECs
        (faults/rules.py), `inject_file` one per line, re-read when it changes; `clock_skew_s`: the storage clock
        against real time (clock.py). A bad spec or an unreadable inject file raises ValueError or OSError."""
        self._settings = settings
        self._app = create_app(settings, engine=engine, on_object_created=on_object_created)
        self._clock = StorageClock(clock_skew_s)
        self.store.clock = self._clock.now
        self._faults = FaultInjector(self._app, faults)
        self._faults.rules.set_rules(list(injections))
        self._faults.rules.set_file(inject_file)
        # Outermost first: the request log sees every answer, injected ones and their Date included.
        self._log = RequestLog(DateHeader(self._faults, self._clock), request_log)
        self._server = BackgroundServer(self._log, host=host, port=port, name="stand-in", date_header=False)

    @property
    def settings(self) -> StandinSettings:
        return self._settings

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._server.host}:{self.port}"

    @property
    def sts_endpoint(self) -> str:
        """Where STS (GetFederationToken, AssumeRole) is served: this same port, as host:port, the form
        tencentcloud-sdk-python's HttpProfile(protocol="http", endpoint=...) takes."""
        return f"{self._server.host}:{self.port}"

    def start(self) -> StandIn:
        if self._server.running:
            return self
        self._log.open()
        self._faults.closing(False)
        self._server.start()
        log.info("standin: serving %s (data in %s)", self.endpoint_url, self._settings.data_dir)
        return self

    def stop(self) -> None:
        self._faults.closing(True)  # held late CI calls are let go, unprocessed
        self._server.stop()
        self._log.close()

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
        """Change the fault plan while serving (None: no random faults, and no `faults.records`)."""
        self._faults.plan = plan

    # ---- the adversary interface (README, "Scripting the stand-in") -------------------------------
    def requests(self) -> list[dict[str, Any]]:
        """Every request served since start (or `clear_requests()`), oldest first, as request-log dicts (at most
        the last 100,000)."""
        return self._log.requests()

    def clear_requests(self) -> None:
        self._log.clear()

    def count(self, method: str | None = None, ci: bool | None = None, key_prefix: str | None = None,
              status: int | None = None) -> int:
        """How many requests served match every filter given (`method` in any case; `ci` for Cloud Infinite)."""
        return self._log.count(method=method, ci=ci, key_prefix=key_prefix, status=status)

    def set_injections(self, specs: Sequence[str]) -> list[InjectRule]:
        """Replace the inject rules (not those of an inject file). A bad spec raises ValueError, changing nothing;
        `[]` removes them. Counts start afresh."""
        return self._faults.rules.set_rules(list(specs))

    def set_inject_file(self, path: Path | None) -> list[InjectRule]:
        """Follow an inject file (None: stop following); read now, then again whenever it changes."""
        return self._faults.rules.set_file(path)

    def set_clock_skew(self, seconds: float) -> None:
        """Storage clock = real time + `seconds` (Last-Modified, Date), from the next request on."""
        self._clock.skew_s = seconds

    @property
    def clock_skew_s(self) -> float:
        return self._clock.skew_s

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no request is in flight, delayed and late ones included; False if `timeout` passed first."""
        return self._log.wait_idle(timeout)

    @property
    def store(self) -> ObjectStore:
        """The object store behind the server (for inspection in tests; writes should go through the API)."""
        return self._app.state.store
