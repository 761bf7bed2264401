"""CAM policies as the stand-in enforces them on temporary keys (spec: web-upload-and-deploy-api.md, section 3).

Grammar supported (anything else is refused when the policy is handed to STS, never guessed at):
- `{"version": "2.0", "statement": [...]}`; a statement has `effect` (allow | deny), `action`, `resource`
  (a string or a list each) and optionally `condition`.
- Actions: `cos:PutObject`, the `name/cos:PutObject` form, and `*` wildcards anywhere (`cos:*`, `cos:Get*`, `*`);
  matched case-insensitively.
- Resources: `qcs::cos:<region>:uid/<appid>:<bucket>/<key>` (CI: `qcs::ci:<region>:uid/<appid>:bucket/<bucket>/
  <key>`), the older `qcs::cos:<region>:uid/<appid>:prefix//<appid>/<bucket-name>/<key>` form, with `*`
  wildcards (`.../uploads/u1/*`), and `*`. An empty region matches any.
- Conditions: `ip_equal` / `ip_not_equal` on `qcs:ip` (CIDR or address), and `string_equal` /
  `string_not_equal` / `string_like` on `cos:<request header>` (e.g. `cos:content-type`); every operator and key
  must hold.
- A request is allowed when some allow statement matches it and no deny statement does (deny wins).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from superres.standin.errors import CosError

_CONDITIONS = ("ip_equal", "ip_not_equal", "string_equal", "string_not_equal", "string_like")
_OLD_FORM = re.compile(r"^(qcs::cos:[^:]*:uid/\d+:)prefix//(\d+)/([^/]+)/(.*)$")


class PolicyError(ValueError):
    """A policy outside the supported grammar; the message names what and where."""


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (operator, key, values)

    def matches(self, action: str, resource: str, context: Mapping[str, str]) -> bool:
        return (
            any(_glob(pattern, action, fold=True) for pattern in self.actions)
            and any(_resource_match(pattern, resource) for pattern in self.resources)
            and all(_condition_holds(op, key, values, context) for op, key, values in self.conditions)
        )


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    text: str  # the policy as given (tokens carry it)

    def allows(self, action: str, resource: str, context: Mapping[str, str]) -> bool:
        matching = [s for s in self.statements if s.matches(action, resource, context)]
        return bool(matching) and all(s.effect == "allow" for s in matching)


def parse_policy(text: str) -> Policy:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise PolicyError("the policy is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("statement"), list) or not doc["statement"]:
        raise PolicyError('the policy needs a non-empty "statement" list')
    return Policy(tuple(_statement(i, s) for i, s in enumerate(doc["statement"])), text)


def _strings(value: object, where: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyError(f"{where} must be a non-empty string or list of strings")
    return tuple(values)


def _statement(index: int, raw: object) -> Statement:
    where = f"statement[{index}]"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be an object")
    effect = str(raw.get("effect", "")).lower()
    if effect not in ("allow", "deny"):
        raise PolicyError(f'{where}.effect must be "allow" or "deny"')
    if "principal" in raw:
        raise PolicyError(f"{where}: a temporary key's policy takes no principal")
    actions = tuple(a.removeprefix("name/") for a in _strings(raw.get("action"), f"{where}.action"))
    resources = _strings(raw.get("resource"), f"{where}.resource")
    conditions = []
    for op, entries in (raw.get("condition") or {}).items():
        if op not in _CONDITIONS:
            raise PolicyError(f"{where}.condition: operator {op!r} is not supported ({', '.join(_CONDITIONS)})")
        if not isinstance(entries, dict):
            raise PolicyError(f"{where}.condition.{op} must map keys to values")
        for key, values in entries.items():
            if op.startswith("ip_") and key != "qcs:ip":
                raise PolicyError(f"{where}.condition.{op} takes qcs:ip, not {key!r}")
            if op.startswith("string_") and not key.startswith("cos:"):
                raise PolicyError(f"{where}.condition.{op} takes cos:<request header> or cos:prefix, not {key!r}")
            conditions.append((op, key.lower(), _strings(values, f"{where}.condition.{op}.{key}")))
    return Statement(effect, actions, resources, tuple(conditions))


def _glob(pattern: str, value: str, *, fold: bool = False) -> bool:
    if fold:
        pattern, value = pattern.lower(), value.lower()
    if "*" not in pattern:
        return pattern == value
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value, re.DOTALL) is not None


def _resource_match(pattern: str, resource: str) -> bool:
    if pattern == "*":
        return True
    old = _OLD_FORM.match(pattern)
    if old:  # prefix//<appid>/<name>/<key> -> <name>-<appid>/<key>
        pattern = f"{old[1]}{old[3]}-{old[2]}/{old[4]}"
    # an empty region (qcs::cos::uid/...) stands for any region
    parts, target = pattern.split(":", 4), resource.split(":", 4)
    if len(parts) == 5 and len(target) == 5 and parts[3] == "":
        parts[3] = target[3]
        pattern = ":".join(parts)
    return _glob(pattern, resource)


def _condition_holds(op: str, key: str, values: tuple[str, ...], context: Mapping[str, str]) -> bool:
    actual = context.get(key)
    if op.startswith("ip_"):
        try:
            address = ipaddress.ip_address(actual or "")
            inside = any(address in ipaddress.ip_network(v, strict=False) for v in values)
        except ValueError:
            inside = False
        return inside if op == "ip_equal" else not inside
    if op == "string_equal":
        return actual in values
    if op == "string_not_equal":
        return actual not in values
    return actual is not None and any(fnmatch.fnmatchcase(actual, v) for v in values)


def cos_resource(region: str, appid: str, bucket: str, key: str) -> str:
    return f"qcs::cos:{region}:uid/{appid}:{bucket}/{key}"


def ci_resource(region: str, appid: str, bucket: str, key: str) -> str:
    return f"qcs::ci:{region}:uid/{appid}:bucket/{bucket}/{key}"


@dataclass(frozen=True)
class Principal:
    """Who signed a request: a permanent key (no policy: everything) or a temporary key with its policy."""

    secret_id: str
    policy: Policy | None = None
    expires: float | None = None

    def require(self, action: str, resource: str, context: Mapping[str, str]) -> None:
        """403 AccessDenied unless the policy allows `action` (e.g. "cos:PutObject") on `resource`."""
        if self.policy is not None and not self.policy.allows(action, resource, context):
            raise CosError(403, "AccessDenied", f"Access Denied. The temporary key's policy does not allow {action} "
                           f"on {resource}.")


def request_context(source_ip: str, headers: Mapping[str, str], params: Mapping[str, str] | None = None
                    ) -> dict[str, Any]:
    """Condition keys of a request: qcs:ip, cos:<header>, and cos:prefix, the prefix a listing asks for (the key
    COS documents for limiting GET Bucket to a folder)."""
    context: dict[str, Any] = {"qcs:ip": source_ip, **{f"cos:{name}": value for name, value in headers.items()}}
    if params is not None and "prefix" in params:
        context["cos:prefix"] = params["prefix"]
    return context
