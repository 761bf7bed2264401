"""The API calls `superres deploy` makes: one change as shown by --dry-run, progress lines, and how the account's
view (GetFunction, ListTriggers) compares with the request's."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    action: str
    body: dict[str, object]

    def line(self) -> str:
        shown = {k: (f"<{len(v)} bytes of base64>" if k == "ZipFile" else v) for k, v in self.body.items()}
        for key in ("Code", "Content"):
            if isinstance(shown.get(key), dict) and "ZipFile" in shown[key]:  # type: ignore[operator]
                inner = dict(shown[key])  # type: ignore[arg-type]
                inner["ZipFile"] = f"<{len(inner['ZipFile'])} bytes of base64>"
                shown[key] = inner
        return f"{self.action} {json.dumps(shown, ensure_ascii=False, separators=(',', ':'))}"


def trigger_key(trigger: dict) -> tuple[str, str, str, str]:
    """COS triggers compare as tencent-component-toolkit compares them: bucket, event and filter, enable,
    qualifier (TriggerDesc parsed, so spacing does not matter)."""
    desc = json.loads(str(trigger.get("TriggerDesc") or "{}"))
    filters = desc.get("filter") or {}
    enable = trigger.get("Enable")
    return (str(trigger.get("TriggerName")),
            json.dumps([desc.get("event"), filters.get("Prefix") or "", filters.get("Suffix") or ""]),
            "OPEN" if enable in (1, "1", "OPEN", True) else "CLOSE", str(trigger.get("Qualifier") or "$DEFAULT"))


def delete_trigger_body(name: str, namespace: str, trigger: dict) -> dict[str, object]:
    event = json.loads(str(trigger.get("TriggerDesc") or "{}")).get("event")
    return {"FunctionName": name, "Namespace": namespace, "Type": "cos", "TriggerName": trigger.get("TriggerName"),
            "TriggerDesc": json.dumps({"event": event}, separators=(",", ":")),
            "Qualifier": trigger.get("Qualifier") or "$DEFAULT"}


def comparable(key: str, value: object) -> object:
    """GetFunction's view and the request's, made comparable."""
    if key == "Layers":
        return [(entry.get("LayerName"), int(entry.get("LayerVersion") or 0)) for entry in value or []]  # type: ignore[union-attr]
    if key == "Environment":
        return sorted((v.get("Key"), v.get("Value")) for v in ((value or {}).get("Variables") or []))  # type: ignore[union-attr]
    if key == "DeadLetterConfig":
        return {k: v for k, v in (value or {}).items() if v} or None  # type: ignore[union-attr]
    return value if value not in (None, "") else ""


def progress(action: str, body: dict) -> str:
    what = {"PublishLayerVersion": f"publishing layer {body.get('LayerName')}",
            "CreateFunction": f"creating function {body.get('FunctionName')} ({body.get('Runtime')})",
            "UpdateFunctionCode": f"updating the code of {body.get('FunctionName')}",
            "UpdateFunctionConfiguration": f"updating the configuration of {body.get('FunctionName')}: "
                                           f"{', '.join(k for k in body if k not in ('FunctionName', 'Namespace'))}",
            "UpdateFunctionEventInvokeConfig": f"setting async retries/retention of {body.get('FunctionName')}",
            "CreateTrigger": f"creating COS trigger {body.get('TriggerName')} {body.get('TriggerDesc')}",
            "DeleteTrigger": f"deleting COS trigger {body.get('TriggerName')} {body.get('TriggerDesc')}",
            "DeleteFunction": f"deleting function {body.get('FunctionName')}"}
    return what.get(action, action)
