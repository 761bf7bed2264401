"""Functions the local SCF API knows, and the actions that create, change, read and delete them
(CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration, GetFunction, GetFunctionAddress,
DeleteFunction), with SCF's parameter rules and error codes (shared/spec/web-upload-and-deploy-api.md 4.1, 4.2).

A deployed function runs from its own unpacked zip and layers under DATA/scf/, never from the checkout: code and
configuration changes take effect on the next invocation. Creating and updating are asynchronous, as on SCF:
the call answers at once with Status Creating/Updating and GetFunction reports Active once the code is unpacked.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import re
import shutil
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .api import SCF, ApiError, action
from .cam import CamState
from .container import ContainerOptions, FunctionContainer, InvokeResult
from .layers import LayerRegistry
from .serverless import FunctionSpec
from .trigger import TriggerDispatcher, invocation_lines, write_function_log

# SCF's defaults for async invocations: 2 retries after an execution error, events kept 6 hours (doc 583/41138).
DEFAULT_RETRY_NUM = 2
DEFAULT_MSG_TTL_S = 21600
# Code.ZipFile: CreateFunction's docstring says 50 MB, UpdateFunctionCode's 20 MB (base64 of the zip).
CREATE_ZIP_MAX_BYTES = 50 * 1024 * 1024
UPDATE_ZIP_MAX_BYTES = 20 * 1024 * 1024
# The Python runtimes this stand-in accepts: tencentcloud-sdk-python-scf's CreateFunction list and the runtimes
# of Tencent's own templates (Python3.11-3.13); anything else is InvalidParameterValue.Runtime, as SCF answers.
RUNTIMES = ("Python2.7", "Python3.6", "Python3.7", "Python3.9", "Python3.10", "Python3.11", "Python3.12",
            "Python3.13")
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]")
_HANDLER_RE = re.compile(r"[A-Za-z][\w-]{0,58}[A-Za-z0-9]\.[A-Za-z][\w-]{0,58}[A-Za-z0-9]")
_RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
_ENVIRONMENT_MAX_BYTES = 4096
# How long a Creating/Updating function stays so before it is Active (the unpacking itself takes longer or not).
_SETTLE_S = 0.2


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
        if self._async is not None:
            self._async.close()
        for container in self._pool:
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
    calls: list = field(default_factory=list)  # superres.scf.invoke_api.ReceivedCall
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


class FunctionsApi:
    """CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration, GetFunction, GetFunctionAddress,
    DeleteFunction."""

    def __init__(self, registry: FunctionRegistry) -> None:
        self.registry = registry

    @action(SCF, "CreateFunction")
    def create_function(self, params: dict) -> dict:
        name, namespace = str(params.get("FunctionName") or ""), str(params.get("Namespace") or "default")
        if not _NAME_RE.fullmatch(name):
            raise ApiError("InvalidParameterValue.FunctionName", f"FunctionName {name!r}: 2-60 letters, digits, - and "
                           "_, starting with a letter and ending with a letter or digit")
        with self.registry._lock:
            if (namespace, name) in self.registry.functions:
                raise ApiError("ResourceInUse.Function", f"function {name!r} already exists in {namespace!r}")
            runtime = _runtime(params.get("Runtime") or "Python2.7")
            settings = _configuration(params, self.registry)
            data = self.registry.code_bytes(params.get("Code") or {}, limit=CREATE_ZIP_MAX_BYTES)
            function = ScfFunction(
                spec=FunctionSpec(name=name, handler=settings["handler"], src=Path("."), runtime=runtime,
                                  region=self.registry.region, memory_mb=settings["memory"],
                                  timeout_s=settings["timeout"], environment=settings["environment"], triggers=(),
                                  init_timeout_s=settings["init_timeout"]),
                options=self.registry.container_options(namespace, runtime, settings["layer_dirs"]),
                region=self.registry.region, instances=self.registry.instances, log_path=self.registry.log_path,
                on_log=self.registry.on_log, status="Creating", description=settings["description"],
                role=settings["role"], layers=settings["layers"])
            self.registry.add(function)
        self._settle(function, data, lambda spec: None)
        return {}

    @action(SCF, "UpdateFunctionCode")
    def update_function_code(self, params: dict) -> dict:
        function = self._ready(params, "FailedOperation.UpdateFunctionCode")
        data = self.registry.code_bytes(params, limit=UPDATE_ZIP_MAX_BYTES)
        handler = params.get("Handler") or function.spec.handler
        _check_handler(handler)
        function.status = "Updating"
        self._settle(function, data, lambda spec: dataclasses.replace(spec, handler=handler))
        return {}

    @action(SCF, "UpdateFunctionConfiguration")
    def update_function_configuration(self, params: dict) -> dict:
        function = self._ready(params, "FailedOperation.FunctionStatusError")
        runtime = params.get("Runtime")
        if runtime and runtime != function.spec.runtime:
            raise ApiError("InvalidParameterValue.Runtime", f"Runtime is {function.spec.runtime}; it is set at "
                           "creation and cannot be changed (delete and create the function again)")
        current = {"Handler": function.spec.handler, "Description": function.description,
                   "MemorySize": function.spec.memory_mb, "Timeout": function.spec.timeout_s,
                   "InitTimeout": function.spec.init_timeout_s, "Role": function.role, "Layers": function.layers,
                   "Environment": _environment_view(function.spec.environment)}
        merged = {**current, **{k: v for k, v in params.items() if v is not None and k in current}}
        settings = _configuration(merged, self.registry)
        spec = dataclasses.replace(function.spec, memory_mb=settings["memory"], timeout_s=settings["timeout"],
                                   init_timeout_s=settings["init_timeout"], environment=settings["environment"])
        function.description, function.role, function.layers = settings["description"], settings["role"], \
            settings["layers"]
        function.replace(spec, self.registry.container_options(function.namespace, spec.runtime,
                                                               settings["layer_dirs"]))
        function.mod_time = _now()
        return {}

    @action(SCF, "GetFunction")
    def get_function(self, params: dict) -> dict:
        f = self.registry.get(params)
        return {
            "FunctionName": f.name, "Namespace": f.namespace, "Runtime": f.spec.runtime, "Handler": f.spec.handler,
            "Description": f.description, "MemorySize": f.spec.memory_mb, "Timeout": f.spec.timeout_s,
            "InitTimeout": f.spec.init_timeout_s, "Role": f.role, "Type": "Event", "Qualifier": "$LATEST",
            "Status": f.status, "StatusDesc": "", "StatusReasons": [], "AvailableStatus": "Available",
            "Environment": _environment_view(f.spec.environment), "CodeSize": f.code_size,
            "Layers": [dict(layer, Status="Active") for layer in f.layers], "Triggers": list(f.triggers),
            "AddTime": f.add_time, "ModTime": f.mod_time, "AsyncRunEnable": "FALSE",
        }

    @action(SCF, "GetFunctionAddress")
    def get_function_address(self, params: dict) -> dict:
        function = self.registry.get(params)
        return {"Url": function.spec.src.as_uri() if function.spec.src.is_absolute() else "",
                "CodeSha256": function.code_sha256}

    @action(SCF, "DeleteFunction")
    def delete_function(self, params: dict) -> dict:
        function = self.registry.get(params)
        with self.registry._lock:
            self.registry.functions.pop((function.namespace, function.name), None)
        function.status = "Deleting"
        function.close()
        return {}

    def _ready(self, params: dict, busy_code: str) -> ScfFunction:
        function = self.registry.get(params)
        if function.status != "Active":
            raise ApiError(busy_code, f"function {function.name!r} is {function.status}; try again once it is Active")
        return function

    def _settle(self, function: ScfFunction, data: bytes,
                change: Callable[[FunctionSpec], FunctionSpec | None]) -> None:
        """Unpack in the background, then make the function Active with the new code (SCF's async create/update)."""

        def work() -> None:
            src = self.registry.unpack(data, "functions", function.namespace, function.name)
            time.sleep(_SETTLE_S)
            spec = change(function.spec) or function.spec
            function.code_sha256, function.code_size = hashlib.sha256(data).hexdigest(), len(data)
            function.replace(dataclasses.replace(spec, src=src))
            function.mod_time = _now()
            function.status = "Active"

        threading.Thread(target=work, daemon=True, name=f"scf-deploy-{function.name}").start()


def _runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise ApiError("InvalidParameterValue.Runtime", f"Runtime {runtime!r} is not supported; use one of "
                       f"{', '.join(r for r in RUNTIMES if r.startswith('Python3.1'))}")
    return runtime


def _check_handler(handler: str) -> None:
    if not _HANDLER_RE.fullmatch(handler):
        raise ApiError("InvalidParameterValue.Handler", f"Handler {handler!r} must look like index.main_handler")


def _configuration(params: dict, registry: FunctionRegistry) -> dict:
    handler = str(params.get("Handler") or "index.main_handler")
    _check_handler(handler)
    memory = int(params.get("MemorySize") or 128)
    if not (memory == 64 or (128 <= memory <= 3072 and memory % 128 == 0)):
        raise ApiError("InvalidParameterValue.MemorySize", f"MemorySize {memory}: 64, or 128-3072 in steps of 128")
    timeout = int(params.get("Timeout") or 3)
    if not 1 <= timeout <= 900:
        raise ApiError("InvalidParameterValue.Timeout", f"Timeout {timeout}: 1-900 seconds")
    variables = ((params.get("Environment") or {}).get("Variables")) or []
    environment = {}
    for variable in variables:
        key, value = str(variable.get("Key") or ""), variable.get("Value")
        if not key or value is None or key.startswith(_RESERVED_PREFIXES):
            raise ApiError("InvalidParameterValue.Environment", f"environment variable {key!r}: a key and a value, "
                           f"no prefix {', '.join(_RESERVED_PREFIXES)}")
        environment[key] = str(value)
    if sum(len(k.encode()) + len(v.encode()) for k, v in environment.items()) > _ENVIRONMENT_MAX_BYTES:
        raise ApiError("InvalidParameterValue.EnvironmentExceededLimit", "environment variables exceed 4 KB")
    layers, layer_dirs = [], []
    for layer in params.get("Layers") or []:
        version = registry.layers.get(str(layer.get("LayerName") or ""), int(layer.get("LayerVersion") or 0))
        layers.append({"LayerName": version.name, "LayerVersion": version.version})
        layer_dirs.append(version.path)
    return {"handler": handler, "memory": memory, "timeout": timeout, "environment": environment,
            "init_timeout": int(params.get("InitTimeout") or 65), "description": str(params.get("Description") or ""),
            "role": str(params.get("Role") or ""), "layers": layers, "layer_dirs": list(reversed(layer_dirs))}


def _environment_view(environment: dict[str, str] | object) -> dict[str, object]:
    return {"Variables": [{"Key": k, "Value": v} for k, v in dict(environment).items()]}  # type: ignore[call-overload]


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
