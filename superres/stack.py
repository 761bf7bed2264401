"""The whole local stand-in in one object: COS + CI server, serverless.yml's function and its COS trigger."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .scf.container import ContainerOptions, FunctionContainer
from .scf.serverless import FunctionSpec, load_function_spec
from .scf.trigger import TriggerDispatcher
from .standin.events import ObjectCreated
from .standin.faults import FaultPlan
from .standin.server import StandIn
from .standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY, Credential, StandinSettings

log = logging.getLogger("superres.stack")

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class StackOptions:
    data_dir: Path
    serverless: Path = PROJECT_ROOT / "serverless.yml"
    host: str = "127.0.0.1"
    port: int = 0
    settings: StandinSettings | None = None  # default: data_dir, demo keys (or TENCENTCLOUD_* keys)
    engine: object | None = None  # an superres.sr Engine; default: settings.engine_name
    trigger: bool = True
    instances: int = 2
    retry_interval_s: float = 1.0
    function_env: dict[str, str] = field(default_factory=dict)  # overrides of serverless.yml's variables
    on_log: Callable[[str], None] | None = None
    faults: FaultPlan | None = None  # stand-in fault injection (superres.standin.faults); changeable later


def standin_settings(
    data_dir: Path, *, secret_id: str | None = None, secret_key: str | None = None, engine_name: str = "span"
) -> StandinSettings:
    """Stand-in settings: the given keys, else the documented demo keys (always accepted too)."""
    credentials = [Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)]
    if secret_id and secret_key:
        credentials.insert(0, Credential(secret_id, secret_key))
    return StandinSettings(data_dir=data_dir, credentials=tuple(credentials), engine_name=engine_name)


class LocalStack:
    """Start with `with LocalStack(StackOptions(...)) as stack:`; the trigger's bucket is created for you."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.spec: FunctionSpec = load_function_spec(options.serverless)
        self.settings = options.settings or standin_settings(options.data_dir)
        self.trigger: TriggerDispatcher | None = None
        self.standin = StandIn(self.settings, engine=options.engine, on_object_created=self._on_object_created,
                               host=options.host, port=options.port, faults=options.faults)

    def start(self) -> LocalStack:
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        # Everything a first request relies on exists before the server answers: its port, the trigger's
        # buckets and the trigger itself (an upload racing start-up must neither 404 nor go unprocessed).
        self.standin.bind()
        for trigger in self.spec.triggers:
            if not self.standin.bucket_exists(trigger.bucket):
                self.standin.store.create_bucket(trigger.bucket)
        if self.options.trigger:
            # The function's COS_ENDPOINT_URL needs the port, reserved by bind() above.
            self.trigger = TriggerDispatcher(
                self.spec, ContainerOptions(env=self.function_env(), appid=self.settings.appid),
                region=self.settings.region, instances=self.options.instances,
                retry_interval_s=self.options.retry_interval_s,
                log_path=self.options.data_dir / "function-log.jsonl", on_log=self.options.on_log,
            )
        self.standin.start()
        return self

    def stop(self) -> None:
        if self.trigger is not None:
            self.trigger.close()
        self.standin.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self):  # type: ignore[no-untyped-def]
        """A cos-python-sdk-v5 client pointed at the stand-in with the stand-in's first key."""
        return self.standin.client()

    def function_env(self) -> dict[str, str]:
        """What the function sees besides serverless.yml: the role's keys and the local endpoint."""
        cred = self.settings.credentials[0]
        env = {"TENCENTCLOUD_SECRETID": cred.secret_id, "TENCENTCLOUD_SECRETKEY": cred.secret_key,
               "COS_ENDPOINT_URL": self.standin.endpoint_url, **self.options.function_env}
        if cred.token:
            env["TENCENTCLOUD_SESSIONTOKEN"] = cred.token
        return env

    def container(self, **overrides: object) -> FunctionContainer:
        """A fresh function instance wired to this stand-in (replay uses one)."""
        return FunctionContainer(self.spec, ContainerOptions(env=self.function_env(), appid=self.settings.appid,
                                                             **overrides))  # type: ignore[arg-type]

    def _on_object_created(self, obj: ObjectCreated) -> None:
        if self.trigger is not None:
            self.trigger(obj)
