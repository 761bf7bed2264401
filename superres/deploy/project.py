"""serverless.yml and layers/serverless.yml read the way the components CLI reads them (`${env:}` from .env.example,
.env and the environment), into what `superres deploy` sends: the function's and the layer's inputs, the COS
triggers, and which layer the function binds (`${output:${stage}:${app}:<layer instance>.name/.version}`)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..scf.serverless import FunctionSpec, ServerlessConfigError, load_function_spec, read_env_files

_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_OUTPUT_RE = re.compile(r"^\$\{output:\$\{stage\}:\$\{app\}:(?P<instance>[^.}]+)\.(?P<key>name|version)\}$")


@dataclass(frozen=True)
class LayerInputs:
    instance: str  # the component instance name (`name:`), what ${output:...} refers to
    name: str
    region: str
    src: Path
    runtimes: tuple[str, ...]
    description: str
    license_info: str = ""


@dataclass(frozen=True)
class Project:
    root: Path
    env: Mapping[str, str]
    spec: FunctionSpec
    inputs: Mapping[str, object]  # serverless.yml's resolved inputs (description, role, namespace, deadLetter...)
    layer: LayerInputs
    excludes: tuple[str, ...]

    @property
    def namespace(self) -> str:
        return str(self.inputs.get("namespace") or "default")

    def code_files(self) -> list[tuple[Path, str]]:
        """(file, name in the zip) for serverless.yml's src minus its excludes, sorted: what the CLI uploads."""
        return _files(self.spec.src, self.excludes)

    def layer_files(self) -> list[tuple[Path, str]]:
        return _files(self.layer.src, ())


def load_project(root: Path, environ: Mapping[str, str] | None = None, *, env_file: Path | str | None = None
                 ) -> Project:
    env = read_env_files(root, environ, env_file=env_file)
    function_yml, layer_yml = root / "serverless.yml", root / "layers" / "serverless.yml"
    spec = load_function_spec(function_yml, environ=env)
    raw = _read(function_yml)
    inputs = _substitute(raw.get("inputs") or {}, env)
    layer_raw = _read(layer_yml)
    layer_inputs = _substitute(layer_raw.get("inputs") or {}, env)
    layer = LayerInputs(
        instance=str(layer_raw.get("name") or ""), name=str(layer_inputs.get("name") or layer_raw.get("name") or ""),
        region=str(layer_inputs.get("region") or spec.region),
        src=(layer_yml.parent / str(layer_inputs.get("src") or "")).resolve(),
        runtimes=tuple(str(r) for r in layer_inputs.get("runtimes") or ()),
        description=str(layer_inputs.get("description") or ""),
        license_info=str(layer_inputs.get("licenseInfo") or ""))
    src = raw.get("inputs", {}).get("src")
    excludes = tuple(str(e) for e in (src.get("exclude") or ())) if isinstance(src, Mapping) else ()
    return Project(root=root, env=env, spec=spec, inputs=inputs, layer=layer, excludes=excludes)


def bound_layers(project: Project) -> list[str]:
    """The layer instances serverless.yml binds through ${output:...}: each must be layers/serverless.yml's."""
    raw = _read(project.root / "serverless.yml").get("inputs", {}).get("layers") or []
    instances = []
    for entry in raw:
        for key in ("name", "version"):
            match = _OUTPUT_RE.match(str((entry or {}).get(key, "")))
            if match is None:
                raise ServerlessConfigError(f"serverless.yml layers: {key} {entry.get(key)!r} is not "
                                            "${output:${stage}:${app}:<layer instance>." + key + "}")
            instances.append(match["instance"])
    unknown = sorted({i for i in instances if i != project.layer.instance})
    if unknown:
        raise ServerlessConfigError(f"serverless.yml binds the layer of instance {', '.join(unknown)}, but "
                                    f"layers/serverless.yml deploys instance {project.layer.instance!r}")
    return sorted(set(instances))


def _read(path: Path) -> dict:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ServerlessConfigError(f"{path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ServerlessConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(document, dict):
        raise ServerlessConfigError(f"{path}: expected a components document (app, stage, component, inputs)")
    return document


def _substitute(value: object, env: Mapping[str, str]) -> object:
    if isinstance(value, str):
        return _ENV_RE.sub(lambda m: env.get(m.group(1), ""), value)
    if isinstance(value, Mapping):
        return {k: _substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env) for v in value]
    return value


def _files(src: Path, excludes: tuple[str, ...]) -> list[tuple[Path, str]]:
    if not src.is_dir():
        raise ServerlessConfigError(f"{src} is not a folder: build it first (`make layer` for the layer)")
    files = []
    for path in sorted(src.rglob("*")):
        name = path.relative_to(src).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(name, _glob(e)) for e in excludes):
            files.append((path, name))
    return files


def _glob(pattern: str) -> str:
    """The CLI's globby-style `**/x/**` as an fnmatch pattern (fnmatch's * already crosses '/')."""
    pattern = pattern.removeprefix("./")
    return pattern.replace("**/", "*").replace("/**", "/*")
