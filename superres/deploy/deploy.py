"""`superres deploy` and `superres remove`: serverless.yml and layers/serverless.yml deployed with the SCF API
(tencentcloud-sdk-python), without the Serverless platform.

The steps, each only when something differs from what the account holds (a second run changes nothing):
1. the layer: PublishLayerVersion when the bound version's CodeSha256 or runtimes differ (GetLayerVersion);
2. the function: CreateFunction, or UpdateFunctionCode (GetFunctionAddress's CodeSha256 differs) and
   UpdateFunctionConfiguration (GetFunction's settings differ), waiting on GetFunction's Status after each;
3. the async retry policy: UpdateFunctionEventInvokeConfig (GetFunctionEventInvokeConfig differs);
4. the COS triggers: an identical one is kept, a changed one deleted and created again (COS triggers cannot be
   updated), one serverless.yml no longer names is deleted (ListTriggers, DeleteTrigger, CreateTrigger).
The API facts are in shared/spec/web-upload-and-deploy-api.md section 4; docs/deploy.md explains the choices.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from .calls import Call, comparable, delete_trigger_body, progress, trigger_key
from .deploy_config import AsyncPolicy
from .errors import describe_api_error
from .package import Package, zip_files
from .project import Project, bound_layers

# Tencent's deployer polls every 500 ms, up to 600 times (tencent-component-toolkit scf/config.js).
POLL_S = 0.5
MAX_POLLS = 600
_BUSY = ("Creating", "Updating", "Publishing", "Deleting")
_NOT_FOUND = ("ResourceNotFound.FunctionName", "ResourceNotFound.Function")
# Where code too large for Code.ZipFile is uploaded: the trigger's bucket, outside both prefixes.
CODE_PREFIX = ".superres-deploy/"


class DeployError(RuntimeError):
    """One line: what failed, the API's code, and what to do."""


@dataclass
class Outcome:
    calls: list[Call] = field(default_factory=list)  # the changes, made or (dry run) planned
    layer_version: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.calls)


class Deployer:
    """Runs the steps against an ScfClient; `upload_code(key, data)` puts oversized code in COS."""

    def __init__(self, project: Project, client: object | None, *, policy: AsyncPolicy, dry_run: bool = False,
                 say: Callable[[str], None] = print, upload_code: Callable[[str, bytes], None] | None = None,
                 poll_s: float = POLL_S) -> None:
        self.project, self.client, self.policy = project, client, policy
        self.dry_run, self.say, self.upload_code, self.poll_s = dry_run, say, upload_code, poll_s
        self.outcome = Outcome()
        self.name, self.namespace = project.spec.name, project.namespace

    # ---- deploy ----------------------------------------------------------------------------------------------
    def deploy(self) -> Outcome:
        bound_layers(self.project)
        layer, code = zip_files(self.project.layer_files()), zip_files(self.project.code_files())
        function = self._get_function()
        if function is not None and function.get("Status") == "CreateFailed":
            self.say(f"{self.name}: CreateFailed earlier; deleting it to create it again")
            self._change("DeleteFunction", {"FunctionName": self.name, "Namespace": self.namespace})
            self._wait_gone()
            function = None
        if function is not None and function.get("Runtime") != self.project.spec.runtime:
            raise DeployError(runtime_mismatch(self.name, str(function.get("Runtime")), self.project.spec.runtime))
        version = self._layer(layer, function)
        desired = self.function_body(version)
        if function is None:
            self._change("CreateFunction", {**desired, "Code": self._code(code, inline_key="ZipFile")})
            self._wait_active()
        else:
            self._update(function, desired, code)
        self._async_policy(created=function is None)
        self._triggers(existing=function is not None)
        if not self.outcome.changed:
            self.say(f"{self.name}: nothing to change (layer version {version}, code {code.sha256[:12]}, "
                     f"{len(self.project.spec.triggers)} COS trigger(s) as in serverless.yml)")
        return self.outcome

    def function_body(self, layer_version: int | None) -> dict[str, object]:
        """CreateFunction's body, less Code: what serverless.yml's inputs say."""
        spec, inputs = self.project.spec, self.project.inputs
        body: dict[str, object] = {
            "FunctionName": spec.name, "Namespace": self.namespace, "Runtime": spec.runtime, "Handler": spec.handler,
            "Type": "Event", "MemorySize": spec.memory_mb, "Timeout": spec.timeout_s,
            "Description": str(inputs.get("description") or ""), "Role": str(inputs.get("role") or ""),
            "Environment": {"Variables": [{"Key": k, "Value": v} for k, v in spec.environment.items()]},
        }
        if inputs.get("initTimeout"):
            body["InitTimeout"] = spec.init_timeout_s
        if layer_version is not None:
            body["Layers"] = [{"LayerName": self.project.layer.name, "LayerVersion": layer_version}]
        dead = inputs.get("deadLetter")
        if isinstance(dead, dict):
            body["DeadLetterConfig"] = {k: v for k, v in (("Type", dead.get("type")), ("Name", dead.get("name")),
                                                          ("FilterType", dead.get("filterType"))) if v}
        return body

    def layer_body(self, layer: Package) -> dict[str, object]:
        return {"LayerName": self.project.layer.name, "CompatibleRuntimes": list(self.project.layer.runtimes),
                "Description": self.project.layer.description, "LicenseInfo": self.project.layer.license_info,
                "Content": self._code(layer, inline_key="ZipFile")}

    def trigger_bodies(self) -> list[dict[str, object]]:
        return [{"FunctionName": self.name, "Namespace": self.namespace, "Type": "cos",
                 "TriggerName": f"{t.bucket}.cos.{t.region}.myqcloud.com",
                 "TriggerDesc": json.dumps({"event": t.events[0], "filter": {"Prefix": t.prefix, "Suffix": t.suffix}},
                                           separators=(",", ":")),
                 "Enable": "OPEN" if t.enable else "CLOSE", "Qualifier": "$DEFAULT"}
                for t in self.project.spec.triggers]

    # ---- remove ----------------------------------------------------------------------------------------------
    def remove(self) -> Outcome:
        function = self._get_function()
        if function is None:
            self.say(f"{self.name}: not deployed; nothing to remove")
            return self.outcome
        for trigger in self._list_triggers():
            self._change("DeleteTrigger", delete_trigger_body(self.name, self.namespace, trigger))
        self._change("DeleteFunction", {"FunctionName": self.name, "Namespace": self.namespace})
        self._wait_gone()
        self.say(f"{self.name}: removed (its layer versions stay; SCF keeps them for other functions)")
        return self.outcome

    # ---- steps -----------------------------------------------------------------------------------------------
    def _layer(self, layer: Package, function: dict | None) -> int | None:
        bound = [entry for entry in (function or {}).get("Layers") or []
                 if entry.get("LayerName") == self.project.layer.name]
        if bound:
            current = self._read("GetLayerVersion", {"LayerName": self.project.layer.name,
                                                     "LayerVersion": bound[-1]["LayerVersion"]})
            if (current.get("CodeSha256") == layer.sha256
                    and list(current.get("CompatibleRuntimes") or []) == list(self.project.layer.runtimes)):
                return int(bound[-1]["LayerVersion"])
        response = self._change("PublishLayerVersion", self.layer_body(layer))
        version = int(response.get("LayerVersion") or 1)
        if not self.dry_run:
            self._poll(lambda: self._read("GetLayerVersion", {"LayerName": self.project.layer.name,
                                                              "LayerVersion": version}).get("Status"),
                       f"layer {self.project.layer.name} version {version}")
        self.outcome.layer_version = version
        return version

    def _update(self, function: dict, desired: dict[str, object], code: Package) -> None:
        address = self._read("GetFunctionAddress", {"FunctionName": self.name, "Namespace": self.namespace})
        if address.get("CodeSha256") != code.sha256 or function.get("Handler") != desired["Handler"]:
            body = {"FunctionName": self.name, "Namespace": self.namespace, "Handler": desired["Handler"],
                    **self._code(code, inline_key="ZipFile")}
            self._change("UpdateFunctionCode", body)
            self._wait_active()
        changed = {k: v for k, v in desired.items()
                   if k not in ("FunctionName", "Namespace", "Runtime", "Type", "Handler")
                   and comparable(k, function.get(k)) != comparable(k, v)}
        if changed:
            self._change("UpdateFunctionConfiguration", {"FunctionName": self.name, "Namespace": self.namespace,
                                                         **changed})
            self._wait_active()

    def _async_policy(self, *, created: bool) -> None:
        wanted = self.policy.request_config()
        if not created:
            current = self._read("GetFunctionEventInvokeConfig", {"FunctionName": self.name,
                                                                  "Namespace": self.namespace})
            if current.get("AsyncTriggerConfig") == wanted:
                return
        self._change("UpdateFunctionEventInvokeConfig", {"FunctionName": self.name, "Namespace": self.namespace,
                                                         "AsyncTriggerConfig": wanted})

    def _triggers(self, *, existing: bool) -> None:
        current = self._list_triggers() if existing else []
        wanted = self.trigger_bodies()
        keep = {trigger_key(t) for t in current} & {trigger_key(t) for t in wanted}
        for trigger in current:
            if trigger_key(trigger) not in keep:
                self._change("DeleteTrigger", delete_trigger_body(self.name, self.namespace, trigger))
        for body in wanted:
            if trigger_key(body) not in keep:
                self._change("CreateTrigger", body)

    def _list_triggers(self) -> list[dict]:
        if self.client is None:
            return []
        response = self._read("ListTriggers", {"FunctionName": self.name, "Namespace": self.namespace, "Limit": 100})
        return [t for t in response.get("Triggers") or [] if t.get("Type") == "cos"]

    def _code(self, package: Package, *, inline_key: str) -> dict[str, object]:
        if package.fits_zip_file:
            return {inline_key: package.base64}
        trigger = self.project.spec.triggers[0]
        key = f"{CODE_PREFIX}{self.name}-{package.sha256[:16]}.zip"
        if not self.dry_run:
            if self.upload_code is None:
                raise DeployError(f"the code is {len(package.data)} bytes, over Code.ZipFile's limit, and no COS "
                                  "client is configured to upload it")
            self.say(f"uploading {len(package.data)} bytes of code to cos://{trigger.bucket}/{key}")
            self.upload_code(key, package.data)
        return {"CosBucketName": trigger.bucket.rsplit("-", 1)[0], "CosObjectName": "/" + key,
                "CosBucketRegion": trigger.region}

    # ---- the API -----------------------------------------------------------------------------------------------
    def _get_function(self) -> dict | None:
        if self.client is None:
            return None
        try:
            return self._call("GetFunction", {"FunctionName": self.name, "Namespace": self.namespace})
        except TencentCloudSDKException as exc:
            if exc.get_code() in _NOT_FOUND:
                return None
            raise DeployError(describe_api_error(exc, "GetFunction")) from None

    def _read(self, action: str, body: dict) -> dict:
        if self.client is None:
            return {}
        try:
            return self._call(action, body)
        except TencentCloudSDKException as exc:
            raise DeployError(describe_api_error(exc, action)) from None

    def _change(self, action: str, body: dict) -> dict:
        call = Call(action, body)
        self.outcome.calls.append(call)
        if self.dry_run:
            self.say(f"would call {call.line()}")
            return {"LayerVersion": 1} if action == "PublishLayerVersion" else {}
        self.say(progress(action, body))
        try:
            return self._call(action, body)
        except TencentCloudSDKException as exc:
            raise DeployError(describe_api_error(exc, action)) from None

    def _call(self, action: str, body: dict) -> dict:
        response = self.client.call_json(action, body)  # type: ignore[union-attr]
        return response.get("Response", response)

    def _wait_active(self) -> None:
        if self.dry_run:
            return
        status = self._poll(lambda: (self._get_function() or {}).get("Status"), f"function {self.name}")
        if status != "Active":
            reasons = "; ".join(str(r.get("ErrorMessage")) for r in (self._get_function() or {}).get(
                "StatusReasons") or [])
            raise DeployError(f"function {self.name} is {status}{': ' + reasons if reasons else ''}; "
                              "fix the cause and deploy again (a CreateFailed function is recreated)")

    def _wait_gone(self) -> None:
        if not self.dry_run:
            self._poll(lambda: (self._get_function() or {}).get("Status", "Deleted"), f"function {self.name}")

    def _poll(self, status: Callable[[], object], what: str) -> object:
        for _ in range(MAX_POLLS):
            current = status()
            if current not in _BUSY:
                return current
            time.sleep(self.poll_s)
        raise DeployError(f"{what} still busy after {MAX_POLLS * self.poll_s:.0f} s; run `superres deploy` again")


def runtime_mismatch(name: str, deployed: str, wanted: str) -> str:
    return (f"function {name} runs {deployed}, RUNTIME is {wanted}: SCF cannot change a runtime after creation; "
            f"set RUNTIME={deployed} in .env (and `make layer`), or `superres remove` and deploy again")
