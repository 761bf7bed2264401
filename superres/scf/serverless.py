"""Read serverless.yml (components format) the way the deploy does, resolving ${env:NAME} from .env files."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_OUTPUT_RE = re.compile(r"\$\{output:(?:[^{}]|\$\{[^{}]*\})*\}")
_BUCKET_DOMAIN_RE = re.compile(r"^(?P<bucket>[a-z0-9-]+-\d+)\.cos\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")


class ServerlessConfigError(ValueError):
    """serverless.yml is missing, unreadable, or lacks what the local runner needs."""


@dataclass(frozen=True)
class CosTrigger:
    bucket: str  # "<name>-<appid>"
    region: str
    events: tuple[str, ...]
    prefix: str
    suffix: str
    enable: bool

    def matches(self, bucket: str, event_name: str, key: str) -> bool:
        """Whether COS would fire this trigger for an event on `key` (COS matches wildcards by prefix)."""
        if not self.enable or bucket != self.bucket:
            return False
        if not any(event_name == e or (e.endswith("*") and event_name.startswith(e[:-1])) for e in self.events):
            return False
        return key.startswith(self.prefix) and key.endswith(self.suffix)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    src: Path
    runtime: str
    region: str
    memory_mb: int
    timeout_s: int
    environment: Mapping[str, str]
    triggers: tuple[CosTrigger, ...]
    layers: tuple[Mapping[str, object], ...] = field(default_factory=tuple)
    init_timeout_s: int = 65  # SCF times the cold start (importing the handler) apart from the invocation


def read_env_files(root: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """.env.example, then .env, then the process environment: later ones win."""
    values: dict[str, str] = {}
    for name in (".env.example", ".env"):
        path = root / name
        if path.is_file():
            values.update(_parse_dotenv(path.read_text(encoding="utf-8")))
    values.update(os.environ if environ is None else environ)
    return values


def load_function_spec(path: Path | str = "serverless.yml", environ: Mapping[str, str] | None = None) -> FunctionSpec:
    path = Path(path)
    if not path.is_file():
        raise ServerlessConfigError(f"{path} not found: run from the project root or pass --serverless PATH")
    env = read_env_files(path.parent, environ)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ServerlessConfigError(f"{path} is not valid YAML: {exc}") from exc
    resolved = _resolve(document, env, path)
    if not isinstance(resolved, Mapping) or resolved.get("component") != "scf":
        raise ServerlessConfigError(f"{path}: expected a 'component: scf' document")
    inputs = resolved.get("inputs") or {}
    src = inputs.get("src")
    src_dir = src.get("src") if isinstance(src, Mapping) else src
    variables = ((inputs.get("environment") or {}).get("variables")) or {}
    return FunctionSpec(
        name=str(inputs.get("name") or resolved.get("name")),
        handler=str(inputs.get("handler") or "index.main_handler"),
        src=(path.parent / str(src_dir or "./handler")).resolve(),
        runtime=str(inputs.get("runtime") or ""),
        region=str(inputs.get("region") or ""),
        memory_mb=int(inputs.get("memorySize") or 128),
        timeout_s=int(inputs.get("timeout") or 3),
        init_timeout_s=int(inputs.get("initTimeout") or 65),
        environment={str(k): "" if v is None else str(v) for k, v in variables.items()},
        triggers=tuple(_cos_triggers(inputs.get("events") or [], path)),
        layers=tuple(inputs.get("layers") or ()),
    )


def _cos_triggers(events: list[object], path: Path) -> list[CosTrigger]:
    triggers = []
    for item in events:
        if not isinstance(item, Mapping) or "cos" not in item:
            continue
        params = (item["cos"] or {}).get("parameters") or {}
        match = _BUCKET_DOMAIN_RE.match(str(params.get("bucket", "")))
        if not match:
            raise ServerlessConfigError(
                f"{path}: cos trigger bucket must be '<name>-<appid>.cos.<region>.myqcloud.com'; "
                f"got {params.get('bucket')!r}"
            )
        filters = params.get("filter") or {}
        events_value = params.get("events") or "cos:ObjectCreated:*"
        triggers.append(
            CosTrigger(
                bucket=match.group("bucket"),
                region=match.group("region"),
                events=tuple(events_value if isinstance(events_value, list) else [events_value]),
                prefix=str(filters.get("prefix") or ""),
                suffix=str(filters.get("suffix") or ""),
                enable=bool(params.get("enable", False)),
            )
        )
    return triggers


def _resolve(value: object, env: Mapping[str, str], path: Path) -> object:
    if isinstance(value, str):
        def env_value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ServerlessConfigError(f"{path}: ${{env:{name}}} is not set (add it to .env, see .env.example)")
            return env[name]

        # ${output:...} names another deployed instance (the layer); it has no local meaning.
        return _OUTPUT_RE.sub("", _ENV_RE.sub(env_value, value))
    if isinstance(value, Mapping):
        return {k: _resolve(v, env, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, env, path) for v in value]
    return value


def _parse_dotenv(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = raw.strip().strip("'\"")
    return values
