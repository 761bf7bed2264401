"""The actions that create, change, read and delete functions (CreateFunction, UpdateFunctionCode,
UpdateFunctionConfiguration, GetFunction, GetFunctionAddress, DeleteFunction), with SCF's parameter rules and
error codes (shared/spec/web-upload-and-deploy-api.md 4.1, 4.2).

A deployed function runs from its own unpacked zip and layers under DATA/scf/, never from the checkout: code and
configuration changes take effect on the next invocation. Creating and updating are asynchronous, as on SCF:
the call answers at once with Status Creating/Updating and GetFunction reports Active once the code is unpacked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .api import SCF, ApiError, action
from .layers import RUNTIMES
from .registry import FunctionRegistry, ScfFunction, _now
from .serverless import FunctionSpec

# Code.ZipFile: CreateFunction's docstring says 50 MB, UpdateFunctionCode's 20 MB (base64 of the zip).
CREATE_ZIP_MAX_BYTES = 50 * 1024 * 1024
UPDATE_ZIP_MAX_BYTES = 20 * 1024 * 1024
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]")
_HANDLER_RE = re.compile(r"[A-Za-z][\w-]{0,58}[A-Za-z0-9]\.[A-Za-z][\w-]{0,58}[A-Za-z0-9]")
_RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
_ENVIRONMENT_MAX_BYTES = 4096
# How long a Creating/Updating function stays so before it is Active (the unpacking itself takes longer or not).
_SETTLE_S = 0.2


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
