"""COS triggers of deployed functions: CreateTrigger, ListTriggers, DeleteTrigger (web-upload-and-deploy-api.md
4.4). A trigger is the bucket's XML-API domain as TriggerName and `{"event":..,"filter":{"Prefix","Suffix"}}` as
TriggerDesc; an enabled one makes every matching upload to the stand-in an async invocation of its function."""

from __future__ import annotations

import dataclasses
import json
import re
import time

from .api import SCF, ApiError, action
from .registry import FunctionRegistry, ScfFunction
from .serverless import CosTrigger

_BUCKET_DOMAIN_RE = re.compile(r"(?P<bucket>[a-z0-9-]+-\d+)\.cos\.(?P<region>[a-z0-9-]+)\.myqcloud\.com")


class TriggersApi:
    def __init__(self, registry: FunctionRegistry) -> None:
        self.registry = registry

    @action(SCF, "CreateTrigger")
    def create_trigger(self, params: dict) -> dict:
        function = self.registry.get(params)
        if function.status != "Active":
            raise ApiError("FailedOperation.CreateTrigger", f"function {function.name!r} is {function.status}")
        if params.get("Type") != "cos":
            raise ApiError("InvalidParameterValue.Type",
                           f"trigger Type {params.get('Type')!r}: only cos is served here")
        name = str(params.get("TriggerName") or "")
        trigger = _cos_trigger(name, params.get("TriggerDesc"), params.get("Enable") or "OPEN")
        if trigger.region != self.registry.region:
            raise ApiError("InvalidParameterValue.TriggerName",
                           f"bucket region {trigger.region} is not the function's region {self.registry.region}")
        qualifier = str(params.get("Qualifier") or "$LATEST")
        for other in list(self.registry.functions.values()):
            for info in other.triggers:
                existing = _cos_trigger(str(info["TriggerName"]), info["TriggerDesc"], "OPEN")
                if other is function and info["TriggerName"] == name and info["Qualifier"] == qualifier:
                    raise ApiError("ResourceInUse.Trigger", f"trigger {name!r} already exists on {function.name!r}")
                if existing.bucket == trigger.bucket and _overlap(existing, trigger):
                    raise ApiError("ResourceInUse.Cos", f"bucket {trigger.bucket}: event and prefix already bound to "
                                   f"function {other.name!r}")
        now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        info = {"Type": "cos", "TriggerName": name, "TriggerDesc": str(params["TriggerDesc"]),
                "Enable": 1 if trigger.enable else 0, "Qualifier": qualifier, "AvailableStatus": "Available",
                "BindStatus": "on", "CustomArgument": "", "ResourceId": "", "TriggerAttribute": "",
                "Description": str(params.get("Description") or ""), "AddTime": now, "ModTime": now}
        function.triggers.append(info)
        _refresh(function)
        return {"TriggerInfo": info}

    @action(SCF, "ListTriggers")
    def list_triggers(self, params: dict) -> dict:
        function = self.registry.get(params)
        offset, limit = int(params.get("Offset") or 0), int(params.get("Limit") or 20)
        return {"Triggers": function.triggers[offset:offset + limit], "TotalCount": len(function.triggers)}

    @action(SCF, "DeleteTrigger")
    def delete_trigger(self, params: dict) -> dict:
        function = self.registry.get(params)
        name, qualifier = str(params.get("TriggerName") or ""), str(params.get("Qualifier") or "$LATEST")
        if params.get("Type") == "cos" and not params.get("TriggerDesc"):
            raise ApiError("MissingParameter.TriggerDesc", "TriggerDesc is required to delete a cos trigger")
        kept = [t for t in function.triggers if not (t["TriggerName"] == name and t["Qualifier"] == qualifier
                                                     and t["Type"] == params.get("Type"))]
        if len(kept) == len(function.triggers):
            raise ApiError("ResourceNotFound.Trigger", f"trigger {name!r} ({qualifier}) not found on {function.name!r}")
        function.triggers[:] = kept
        _refresh(function)
        return {}


def _cos_trigger(name: str, desc: object, enable: object) -> CosTrigger:
    match = _BUCKET_DOMAIN_RE.fullmatch(name)
    if not match:
        raise ApiError("InvalidParameterValue.TriggerName",
                       f"TriggerName {name!r} must be the bucket's domain <name>-<appid>.cos.<region>.myqcloud.com")
    try:
        parsed = json.loads(str(desc))
        event, filters = parsed["event"], parsed.get("filter") or {}
        prefix, suffix = str(filters.get("Prefix") or ""), str(filters.get("Suffix") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ApiError("InvalidParameterValue.TriggerDesc", 'TriggerDesc must be JSON like '
                       '{"event":"cos:ObjectCreated:*","filter":{"Prefix":"","Suffix":""}}') from None
    if " " in str(desc):
        raise ApiError("InvalidParameterValue.TriggerDesc", "TriggerDesc must be contiguous, without spaces")
    if suffix and not suffix.startswith("."):
        raise ApiError("InvalidParameterValue.TriggerDesc", f"filter Suffix {suffix!r} must begin with '.'")
    if enable not in ("OPEN", "CLOSE"):
        raise ApiError("InvalidParameterValue.Enable", f"Enable must be OPEN or CLOSE; got {enable!r}")
    return CosTrigger(bucket=match["bucket"], region=match["region"], events=(str(event),), prefix=prefix,
                      suffix=suffix, enable=enable == "OPEN")


def _overlap(a: CosTrigger, b: CosTrigger) -> bool:
    def covers(x: str, y: str) -> bool:
        return x == y or (x.endswith("*") and y.startswith(x[:-1]))

    events = any(covers(x, y) or covers(y, x) for x in a.events for y in b.events)
    return events and (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix))


def _refresh(function: ScfFunction) -> None:
    triggers = tuple(_cos_trigger(str(t["TriggerName"]), t["TriggerDesc"], "OPEN" if t["Enable"] else "CLOSE")
                     for t in function.triggers)
    function.replace(dataclasses.replace(function.spec, triggers=triggers))
