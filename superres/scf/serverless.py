"""Read serverless.yml (components format) the way the deploy does, resolving ${env:NAME} from .env files."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dotenv import dotenv_values

# Names the dotenv file read instead of `<project>/.env` ("" reads none): the test suite sets it so the user's
# own .env (their bucket and region) never changes what the tests see.
ENV_FILE_VAR = "SUPERRES_ENV_FILE"

_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_OUTPUT_RE = re.compile(r"\$\{output:(?:[^{}]|\$\{[^{}]*\})*\}")
# A region ("ap-guangzhou", "na-siliconvalley", "ap-shanghai-fsi") and a bucket ("photos-1250000000").
REGION_RE = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]*-\d+$")
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


def read_env_files(root: Path, environ: Mapping[str, str] | None = None, *,
                   env_file: Path | str | None = None) -> dict[str, str]:
    """.env.example, then .env (or `env_file`, else the file $SUPERRES_ENV_FILE names), then the process
    environment: later ones win. The files are parsed by python-dotenv (quotes, `export`, inline comments)."""
    values: dict[str, str] = {}
    for path in (root / ".env.example", dotenv_path(root, env_file)):
        if path is not None and path.is_file():
            parsed = dotenv_values(path, encoding="utf-8", interpolate=False)
            values.update({k: v for k, v in parsed.items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return values


def dotenv_path(root: Path, env_file: Path | str | None = None) -> Path | None:
    """The user's dotenv file: `env_file`, else $SUPERRES_ENV_FILE ("" for none), else `root/.env`."""
    if env_file is None:
        env_file = os.environ.get(ENV_FILE_VAR)
    if env_file is None:
        return root / ".env"
    return Path(env_file) if str(env_file) else None


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
    _check_regions(document, inputs, path)
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


def _check_regions(document: object, inputs: Mapping[str, object], path: Path) -> None:
    """A region that cannot be one (REGION=nowhere) is named here, with the variable it came from, rather than
    as a failed DNS lookup or a stand-in that refuses to start."""
    region = str(inputs.get("region") or "")
    if not region or REGION_RE.match(region):
        return
    raw = ((document.get("inputs") or {}).get("region") if isinstance(document, Mapping) else None) or ""
    names = _ENV_RE.findall(str(raw))
    origin = f" ({', '.join(names)} in .env or the environment)" if names else ""
    raise ServerlessConfigError(f"{path}: region {region!r}{origin} is not a Tencent Cloud region: it looks like "
                                "ap-guangzhou")


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
                example = path.parent / ".env.example"
                if not example.is_file():
                    raise ServerlessConfigError(f"{path}: ${{env:{name}}} is not set and {example} is missing; "
                                                f"restore it (git checkout .env.example) or set {name} in .env")
                raise ServerlessConfigError(f"{path}: ${{env:{name}}} is not set (add it to .env, see .env.example)")
            return env[name]

        # ${output:...} names another deployed instance (the layer); it has no local meaning.
        return _OUTPUT_RE.sub("", _ENV_RE.sub(env_value, value))
    if isinstance(value, Mapping):
        return {k: _resolve(v, env, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, env, path) for v in value]
    return value
