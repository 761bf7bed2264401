"""The whole local stand-in in one object: COS + CI server, serverless.yml's function and its COS trigger, and
the local SCF account (functions deployed through the SCF API, their layers and triggers, CAM roles)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .scf.cam import CamState
from .scf.container import ContainerOptions, FunctionContainer
from .scf.event_queue import MAX_EVENT_AGE_S, MAX_QUEUED_EVENTS, EventQueue
from .scf.registry import FunctionRegistry, ScfFunction
from .scf.role import role_keys, role_policy
from .scf.serverless import FunctionSpec, load_function_spec
from .scf.trigger import StopSummary, TriggerDispatcher
from .standin.ci_buckets import ai_bucket_route
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
    # False: serverless.yml's function is not running; `superres deploy --endpoint` puts functions in the account.
    function: bool = True
    # CAM roles of the local account (role -> {policy name: document}); None: SCF_ROLE with cam-policy.json.
    cam_roles: dict[str, dict[str, dict]] | None = None
    # Refuse a trigger prefix that overlaps DEST_PREFIX (SelfTriggerError); only tests of the function's own
    # recursion guard turn this off.
    refuse_self_trigger: bool = True
    instances: int = 2
    retry_interval_s: float = 1.0
    max_event_age_s: float = MAX_EVENT_AGE_S  # SCF's Maximum Event Age for queued trigger events
    max_queued_events: int = MAX_QUEUED_EVENTS  # SCF's async queue limit
    function_env: dict[str, str] = field(default_factory=dict)  # overrides of serverless.yml's variables
    on_log: Callable[[str], None] | None = None
    faults: FaultPlan | None = None  # stand-in fault injection (superres.standin.faults); changeable later
    # The adversary interface (README, "Scripting the stand-in"); all changeable later through `stack.standin`.
    request_log: Path | None = None  # also append a JSON line per request served to this file
    injections: tuple[str, ...] = ()  # inject SPECs (superres.standin.faults.rules)
    inject_file: Path | None = None  # one SPEC per line, re-read when it changes
    clock_skew_s: float = 0.0  # storage clock (Last-Modified, Date) minus real time; events keep real time
    # The execution role's policy the function's temporary keys carry (superres.scf.role); None: the one
    # `superres cam-policy` writes for this configuration. role_keys=False hands it the stand-in's first key.
    role_policy: dict | None = None
    role_keys: bool = True


def standin_settings(
    data_dir: Path, *, secret_id: str | None = None, secret_key: str | None = None, engine_name: str = "span"
) -> StandinSettings:
    """Stand-in settings: the given keys, else the documented demo keys (always accepted too)."""
    credentials = [Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)]
    if secret_id and secret_key:
        credentials.insert(0, Credential(secret_id, secret_key))
    return StandinSettings(data_dir=data_dir, credentials=tuple(credentials), engine_name=engine_name)


def configured_location(spec: FunctionSpec) -> tuple[str | None, str | None]:
    """(appid, region) of the configured bucket: the first COS trigger's, else the function's region."""
    if spec.triggers:
        trigger = spec.triggers[0]
        return trigger.bucket.rpartition("-")[2], trigger.region
    return None, spec.region or None


class LocalStack:
    """Start with `with LocalStack(StackOptions(...)) as stack:`; the trigger's bucket is created for you."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.spec: FunctionSpec = load_function_spec(options.serverless)
        # The stand-in serves the account and region of the configured bucket (serverless.yml + .env), so a
        # .env written for the deployment works here unchanged.
        appid, region = configured_location(self.spec)
        base = options.settings or standin_settings(options.data_dir)
        self.settings = dataclasses.replace(base, appid=appid or base.appid, region=region or base.region)
        if self.spec.triggers and self.settings.default_bucket is None:
            self.settings = dataclasses.replace(self.settings, default_bucket=self.spec.triggers[0].bucket)
        self.trigger: TriggerDispatcher | None = None
        self._role_env: dict[str, str] | None = None
        # Buckets bound to Cloud Infinite with AI processing on (GET /ai_bucket); the trigger buckets by default.
        self.ai_buckets: set[str] = {t.bucket for t in self.spec.triggers}
        self._registry: FunctionRegistry | None = None
        self.standin = StandIn(self.settings, engine=options.engine, on_object_created=self._on_object_created,
                               host=options.host, port=options.port, faults=options.faults,
                               request_log=options.request_log, injections=options.injections,
                               inject_file=options.inject_file, clock_skew_s=options.clock_skew_s)

    def start(self) -> LocalStack:
        if self.options.function:
            self.check_function_settings()
        self.options.data_dir.mkdir(parents=True, exist_ok=True)
        # Everything a first request relies on exists before the server answers: its port, the trigger's
        # buckets and the trigger itself (an upload racing start-up must neither 404 nor go unprocessed).
        self.standin.bind()
        for trigger in self.spec.triggers:
            if not self.standin.store.bucket_exists(trigger.bucket):
                self.standin.store.create_bucket(trigger.bucket, trigger.region)
        if self.options.trigger and self.options.function:
            try:
                self.trigger = self._dispatcher()
            except BaseException:
                self.standin.stop()
                raise
        self.standin.start()
        if self.trigger is not None:
            self.trigger.start()  # a previous run's queued events need the stand-in answering
        return self

    def stop(self, *, drain_s: float = 0.0, cancel: threading.Event | None = None) -> StopSummary | None:
        """Stop; with `drain_s`, first keep delivering queued events for up to that long (or until `cancel`).
        What is not delivered stays in DATA/trigger.db for the next start. Returns what the trigger left."""
        summary = None
        if self.trigger is not None:
            drained = drain_s > 0 and self.trigger.drain(drain_s, cancel)
            summary = self.trigger.stop()
            if drained:
                summary = dataclasses.replace(summary, drained=True)
        # Uploads still arriving until the server stops are stored in the queue; it closes after the server.
        self.standin.stop()
        if self.trigger is not None:
            self.trigger.close()
        return summary

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self):  # type: ignore[no-untyped-def]
        """A cos-python-sdk-v5 client pointed at the stand-in with the stand-in's first key."""
        return self.standin.client()

    def function_env(self, *, endpoint: bool = True, role: bool = False) -> dict[str, str]:
        """What the function sees besides serverless.yml: keys and the local endpoint. With `role`, the keys are
        its execution role's temporary keys, as SCF hands them (the trigger and `container()` run it so);
        without, the stand-in's first key (what tooling such as backfill or replay signs with)."""
        if role and self.options.role_keys:
            keys = self._role_keys()
        else:
            cred = self.settings.credentials[0]
            keys = {"TENCENTCLOUD_SECRETID": cred.secret_id, "TENCENTCLOUD_SECRETKEY": cred.secret_key,
                    **({"TENCENTCLOUD_SESSIONTOKEN": cred.token} if cred.token else {})}
        return {**keys, **({"COS_ENDPOINT_URL": self.standin.endpoint_url} if endpoint else {}),
                **self.options.function_env}

    def _role_keys(self) -> dict[str, str]:
        if self._role_env is None:
            policy = self.options.role_policy or role_policy(self.spec, self.options.function_env)
            self._role_env = role_keys(self.settings.data_dir, policy)
        return self._role_env

    def check_function_settings(self) -> None:
        """Load the function's settings as its cold start will (serverless.yml's variables, this stack's
        overrides), so an invalid MAGNIFY or DEST_PREFIX stops start-up instead of failing every upload.
        Raises superres_fn.ConfigError naming the variable and the allowed values, or SelfTriggerError when the
        trigger prefix and DEST_PREFIX overlap (every result would run the function again)."""
        from superres_fn import load_settings

        from .deploy.deployment import refuse_self_trigger

        settings = load_settings({**self.spec.environment, **self.function_env(endpoint=False)})
        if self.options.refuse_self_trigger:
            refuse_self_trigger(self.spec, settings)

    def scf_registry(self) -> FunctionRegistry:
        """The local SCF account: serverless.yml's function (from the checkout) unless the stack started without
        it, and whatever is deployed through the SCF API (from its own zip and layers); each runs with its
        execution role's temporary keys, as on SCF."""
        if self._registry is None:
            registry = FunctionRegistry(
                data_dir=self.options.data_dir, region=self.settings.region, appid=self.settings.appid,
                base_env=self.function_env(role=True), log_path=self.options.data_dir / "function-log.jsonl",
                on_log=self.options.on_log, read_cos_object=lambda bucket, key: self.standin.store.read(bucket, key)[1],
                instances=self.options.instances, cam=self._cam_state())
            if self.options.function:
                # Its COS trigger is the stack's own (durable) dispatcher, so the API's copy has none.
                spec = dataclasses.replace(self.spec, triggers=())
                registry.add(ScfFunction(spec, ContainerOptions(env=self.function_env(role=True),
                                                                appid=self.settings.appid),
                                         region=self.settings.region, instances=self.options.instances,
                                         log_path=registry.log_path, on_log=self.options.on_log))
            self._registry = registry
        return self._registry

    def api_get_routes(self) -> dict[str, object]:
        """What the local cloud API's port serves besides the API 3.0 actions: CI's GET /ai_bucket."""
        return {"/ai_bucket": ai_bucket_route(self.settings.credentials, self.settings.region,
                                              lambda: self.ai_buckets)}

    def _cam_state(self) -> CamState:
        state = CamState()
        roles = self.options.cam_roles
        if roles is None:
            roles = _default_roles(self.options.serverless)
        for role, policies in roles.items():
            state.add_role(role, policies)
        return state

    def container(self, **overrides: object) -> FunctionContainer:
        """A fresh function instance wired to this stand-in (replay uses one)."""
        options = ContainerOptions(env=self.function_env(role=True), appid=self.settings.appid,
                                   **overrides)  # type: ignore[arg-type]
        return FunctionContainer(self.spec, options)

    def _dispatcher(self) -> TriggerDispatcher:
        """The COS trigger on its durable queue, DATA/trigger.db. (The function's COS_ENDPOINT_URL needs the
        port, reserved by bind().)"""
        queue = EventQueue(self.options.data_dir / "trigger.db", max_event_age_s=self.options.max_event_age_s,
                           max_events=self.options.max_queued_events)
        return TriggerDispatcher(
            self.spec, ContainerOptions(env=self.function_env(role=True), appid=self.settings.appid),
            region=self.settings.region, instances=self.options.instances,
            retry_interval_s=self.options.retry_interval_s, queue=queue,
            log_path=self.options.data_dir / "function-log.jsonl", on_log=self.options.on_log, start=False,
        )

    def _on_object_created(self, obj: ObjectCreated) -> None:
        if self.trigger is not None:
            self.trigger(obj)
        if self._registry is not None:
            self._registry.deliver(obj)


def _default_roles(serverless: Path) -> dict[str, dict[str, dict]]:
    """SCF_ROLE with the project's cam-policy.json attached, as docs/deploy.md step 4 creates it."""
    import json

    from .scf.serverless import read_env_files

    role = read_env_files(serverless.parent).get("SCF_ROLE")
    policy_file = serverless.parent / "cam-policy.json"
    if not role:
        return {}
    try:
        policy = json.loads(policy_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {role: {}}
    return {role: {"cos-superres-policy": policy}}
