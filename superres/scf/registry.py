"""The local SCF account: its functions (each with warm instances and an async queue), its layers and CAM
roles, and how deployed code reaches the stand-in. The API actions that change them live in functions.py,
invoke_api.py, triggers_api.py, layers.py and cam.py."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import shutil
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .api import ApiError
from .cam import CamState
from .container import ContainerOptions, FunctionContainer, InvokeResult
from .layers import LayerRegistry
from .serverless import FunctionSpec
from .trigger import TriggerDispatcher, invocation_lines, write_function_log

# SCF's defaults for async invocations: 2 retries after an execution error, events kept 6 hours (doc 583/41138).
DEFAULT_RETRY_NUM = 2
DEFAULT_MSG_TTL_S = 21600


@dataclass
class ScfFunction:
    """One function, with its warm instances (sync) and its async queue (Event)."""

    spec: FunctionSpec
    options: ContainerOptions
    region: str
    instances: int = 2
    retry_num: int = DEFAULT_RETRY_NUM
    msg_ttl_s: int = DEFAULT_MSG_TTL_S
    log_path: Path | None = None
    on_log: Callable[[str], None] | None = None
    status: str = "Active"
    code_sha256: str = ""
    code_size: int = 0
    description: str = ""
    role: str = ""
    layers: list[dict[str, object]] = field(default_factory=list)
    triggers: list[dict[str, object]] = field(default_factory=list)
    add_time: str = field(default_factory=lambda: _now())
    mod_time: str = field(default_factory=lambda: _now())
    _pool: list[FunctionContainer] = field(default_factory=list, repr=False)
    _idle: list[FunctionContainer] = field(default_factory=list, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _async: TriggerDispatcher | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.options.namespace

    def invoke_sync(self, event: object) -> InvokeResult:
        container = self._checkout()
        try:
            result = container.invoke(event)
            write_function_log(invocation_lines(result, 0), self.log_path, self.on_log)
            return result
        finally:
            with self._cond:
                self._idle.append(container)
                self._cond.notify()

    def invoke_async(self, event: dict) -> str:
        return self._dispatcher().submit(event)

    def deliver(self, obj: object) -> None:
        """A COS upload: invoked asynchronously if one of this function's enabled COS triggers matches."""
        if any(t.matches(obj.bucket, obj.event_name, obj.key) for t in self.spec.triggers):  # type: ignore[attr-defined]
            self._dispatcher()(obj)  # type: ignore[arg-type]

    def configure_async(self, *, retry_num: int | None, msg_ttl_s: int | None) -> None:
        with self._cond:
            if retry_num is not None:
                self.retry_num = retry_num
                if self._async is not None:
                    self._async.retries = retry_num
            if msg_ttl_s is not None:
                self.msg_ttl_s = msg_ttl_s

    def async_trigger_config(self) -> dict[str, object]:
        return {"RetryConfig": [{"RetryNum": self.retry_num}], "MsgTTL": self.msg_ttl_s}

    def replace(self, spec: FunctionSpec, options: ContainerOptions | None = None) -> None:
        """New code or configuration: the warm instances end (after their invocations) and the next invocation
        starts cold from the new spec. A change of triggers alone keeps them."""
        with self._cond:
            old_pool, old_async = self._pool, self._async
            code_changed = (spec.src, spec.handler, spec.environment, spec.memory_mb, spec.timeout_s) != (
                self.spec.src, self.spec.handler, self.spec.environment, self.spec.memory_mb, self.spec.timeout_s)
            self.spec = spec
            if options is not None and options != self.options:
                self.options, code_changed = options, True
            if not code_changed:
                if old_async is not None:
                    old_async.spec = spec
                return
            self._pool, self._idle, self._async = [], [], None
        if old_async is not None:
            old_async.wait_idle(300)
            old_async.close()
        for container in old_pool:
            container.close()

    @property
    def async_results(self) -> list[InvokeResult]:
        return [d.result for d in self._async.deliveries] if self._async else []

    def wait_idle(self, timeout: float = 300.0) -> bool:
        return self._async.wait_idle(timeout) if self._async else True

    def close(self) -> None:
        """End the instances and the async queue; the next invocation starts them again (a stack's functions
        outlive one served API)."""
        with self._cond:
            old_async, old_pool = self._async, self._pool
            self._async, self._pool, self._idle = None, [], []
        if old_async is not None:
            old_async.close()
        for container in old_pool:
            container.close()

    def _dispatcher(self) -> TriggerDispatcher:
        with self._cond:
            if self._async is None:
                # SCF's async path: a queue, warm instances, retries after an execution error.
                self._async = TriggerDispatcher(self.spec, self.options, region=self.region,
                                                instances=self.instances, retries=self.retry_num,
                                                log_path=self.log_path, on_log=self.on_log)
            return self._async

    def _checkout(self) -> FunctionContainer:
        with self._cond:
            while not self._idle:
                if len(self._pool) < self.instances:
                    container = FunctionContainer(self.spec, self.options)
                    self._pool.append(container)
                    return container
                self._cond.wait()
            return self._idle.pop()


@dataclass
class FunctionRegistry:
    """The local account's SCF state: functions by (namespace, name), the layers, the CAM roles check reads, and
    what deployed functions need to run against the stand-in (their env, appid, log)."""

    data_dir: Path
    region: str
    appid: str
    base_env: dict[str, str] = field(default_factory=dict)  # role keys, COS_ENDPOINT_URL
    log_path: Path | None = None
    on_log: Callable[[str], None] | None = None
    read_cos_object: Callable[[str, str], bytes] | None = None  # (bucket-appid, key) -> bytes, for Code via COS
    instances: int = 2
    layers: LayerRegistry = field(init=False)
    cam: CamState = field(default_factory=CamState)
    functions: dict[tuple[str, str], ScfFunction] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.layers = LayerRegistry(self.data_dir / "scf" / "layers")

    def add(self, function: ScfFunction) -> ScfFunction:
        self.functions[(function.namespace, function.name)] = function
        return function

    def get(self, params: dict) -> ScfFunction:
        name = params.get("FunctionName") or ""
        namespace = params.get("Namespace") or "default"
        function = self.functions.get((namespace, name))
        if function is None:
            raise ApiError("ResourceNotFound.FunctionName", f"function {name!r} not found in namespace {namespace!r}")
        return function

    def deliver(self, obj: object) -> None:
        """A COS upload reaches every deployed function whose COS trigger matches it."""
        for function in list(self.functions.values()):
            if function.status == "Active":
                function.deliver(obj)

    def wait_idle(self, timeout: float = 300.0) -> bool:
        deadline = time.monotonic() + timeout
        return all(f.wait_idle(max(0.0, deadline - time.monotonic())) for f in list(self.functions.values()))

    def close(self) -> None:
        for function in list(self.functions.values()):
            function.close()

    def code_bytes(self, params: dict, *, limit: int) -> bytes:
        """The zip from ZipFile (base64) or from COS (CosBucketName without the appid, CosObjectName from '/')."""
        code = params.get("Code") if isinstance(params.get("Code"), dict) else params
        zip_b64 = code.get("ZipFile")
        if zip_b64:
            try:
                data = base64.b64decode(zip_b64, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError("InvalidParameterValue.ZipFileBase64BinasciiError",
                               "ZipFile is not valid base64") from None
            if len(zip_b64) > limit:
                raise ApiError("InvalidParameter.RequestTooLarge",
                               f"ZipFile is {len(zip_b64)} bytes of base64; at most {limit}: upload through COS")
        elif code.get("CosBucketName") and code.get("CosObjectName"):
            bucket, key = f"{code['CosBucketName']}-{self.appid}", str(code["CosObjectName"])
            if not key.startswith("/"):
                raise ApiError("InvalidParameterValue.CosObjectName", "CosObjectName must start with '/'")
            try:
                data = self.read_cos_object(bucket, key[1:]) if self.read_cos_object else b""
            except (KeyError, FileNotFoundError, LookupError):
                raise ApiError("ResourceNotFound.CosObject", f"cos://{bucket}{key} not found") from None
        else:
            raise ApiError("InvalidParameterValue.Code", "Code needs ZipFile, or CosBucketName and CosObjectName")
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise ApiError("InvalidParameterValue.ZipFile", "the code is not a standard zip file; zip it again")
        return data

    def unpack(self, data: bytes, *parts: str) -> Path:
        """Unpack a zip under DATA/scf/<parts>/<sha256 prefix>/ (kept: an identical zip is unpacked once)."""
        target = self.data_dir.joinpath("scf", *parts, hashlib.sha256(data).hexdigest()[:16])
        if not target.is_dir():
            staging = target.with_name(target.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(staging)
            staging.rename(target)
        return target

    def container_options(self, namespace: str, runtime: str, layer_dirs: list[Path]) -> ContainerOptions:
        """The function runs isolated (only its code and layers importable) when its runtime is this interpreter's
        Python, as SCF runs it; otherwise with this interpreter's packages too (a layer for another Python cannot
        load here)."""
        isolated = runtime == f"Python{sys.version_info.major}.{sys.version_info.minor}"
        return ContainerOptions(env=dict(self.base_env), appid=self.appid, namespace=namespace,
                                layer_dirs=tuple(layer_dirs), isolated=isolated)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
