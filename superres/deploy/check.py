"""`superres check`: everything verifiable offline before a deploy, every problem on its own line, all at once.
(`superres check --cloud` adds the account's side: cloud_check.py.)"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import yaml
from dotenv import dotenv_values
from superres_fn import ConfigError

from ..scf.serverless import ServerlessConfigError, dotenv_path, load_function_spec, read_env_files
from .cam_policy import cam_policy
from .deploy_config import AsyncPolicy, DeployConfigError
from .deployment import Deployment, environment_problems, self_trigger_problems

# Settings that name the user's own account: .env.example's values for them are placeholders, not choices.
ACCOUNT_SETTINGS = ("BUCKET",)
# SCF's Description charset (tencentcloud-sdk-python models.py, CreateFunction.Description): letters, digits,
# spaces, commas, newlines, periods and Chinese characters.
_DESCRIPTION_RE = re.compile(r"[A-Za-z0-9 ,.\n\u4e00-\u9fff]*")
_ENV_REF_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def description_problem(where: str, description: object) -> str | None:
    text = "" if description is None else str(description)
    bad = sorted(set(_DESCRIPTION_RE.sub("", text)))
    if bad:
        return (f"{where} description {text!r} has characters SCF does not allow ({' '.join(bad)}): use letters, "
                "digits, spaces, commas and periods")
    return None


def preflight_problems(root: Path, environ: Mapping[str, str] | None = None, *,
                       env_file: Path | str | None = None) -> list[str]:
    """Everything `superres check` verifies before a deploy, one line per problem (empty: ready)."""
    from .layer import LayerBuildError, default_build_dir, default_zip_path, python_version_of

    env = read_env_files(root, environ, env_file=env_file)
    function_yml, layer_yml = root / "serverless.yml", root / "layers" / "serverless.yml"
    problems: list[str] = placeholder_problems(root, env, env_file)
    documents = {}
    for path in (function_yml, layer_yml):
        try:
            documents[path] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path.relative_to(root)}: cannot be read: {' '.join(str(exc).split())}")
    if len(documents) < 2:
        return problems
    missing = sorted({name for doc in documents.values() for name in _env_refs(doc) if not env.get(name, "").strip()})
    problems += [f"${{env:{name}}} is not set (add it to .env; the CLI would send 'undefined' or nothing)"
                 for name in missing]
    filled = {**env, **{name: "" for name in missing}}
    try:
        spec = load_function_spec(function_yml, environ=filled)
        deployment = Deployment.from_spec(spec)
    except (ServerlessConfigError, ConfigError) as exc:
        return [*problems, str(exc)]
    problems += self_trigger_problems(deployment) + environment_problems(spec)
    if not spec.triggers:
        problems.append("serverless.yml has no COS trigger: uploads would never reach the function")
    problems += [f"COS trigger on {t.bucket} prefix {t.prefix!r} has enable: false; set enable: true"
                 for t in spec.triggers if not t.enable]

    layer_inputs = (documents[layer_yml] or {}).get("inputs") or {}
    layer_runtimes = [_substitute(str(r), filled) for r in layer_inputs.get("runtimes") or []]
    if layer_runtimes != [spec.runtime]:
        problems.append(f"the layer's runtimes {layer_runtimes} are not the function's runtime [{spec.runtime!r}]: "
                        "both should be ${env:RUNTIME}")
    try:
        version = python_version_of(spec.runtime)
    except LayerBuildError as exc:
        problems.append(str(exc))
    else:
        problems += _built_layer_problems(root, layer_inputs, filled, version, default_build_dir(version),
                                          default_zip_path(version))

    function_inputs = (documents[function_yml] or {}).get("inputs") or {}
    for where, description in (("serverless.yml", function_inputs.get("description")),
                               ("layers/serverless.yml", layer_inputs.get("description"))):
        problem = description_problem(where, _substitute(str(description or ""), filled))
        if problem:
            problems.append(problem)
    problems += _cam_policy_problems(root, deployment)
    try:
        AsyncPolicy.from_env(env)
    except DeployConfigError as exc:
        problems.append(str(exc))
    return problems


def placeholder_problems(root: Path, env: Mapping[str, str], env_file: Path | str | None = None) -> list[str]:
    """A deploy needs the user's own .env: without one, or with .env.example's placeholder for a setting that
    names the account (the bucket), the deploy would go to an example bucket."""
    path = dotenv_path(root, env_file)
    trap = root / "layers" / ".env"
    shadow = ["layers/.env exists (a QR-code login inside layers/ writes it): the components CLI run there reads it "
              "instead of ../.env; delete it and deploy from the project root"] if trap.is_file() else []
    if path is None or not path.is_file():
        where = path.name if path is not None else ".env"
        return [*shadow, f"no {where}: run `cp .env.example .env` and set {', '.join(ACCOUNT_SETTINGS)} (and REGION) "
                "for your account; .env.example holds placeholders"]
    example = dotenv_values(root / ".env.example") if (root / ".env.example").is_file() else {}
    return [*shadow, *(f"{name}={env.get(name)} is .env.example's placeholder: set your own in {path.name}"
                       for name in ACCOUNT_SETTINGS if example.get(name) and env.get(name) == example.get(name))]


def _built_layer_problems(root: Path, layer_inputs: Mapping[str, object], env: Mapping[str, str], version: str,
                          build_dir: Path, zip_path: Path) -> list[str]:
    """layers/serverless.yml deploys the folder `make layer` builds for this version, and that build exists."""
    src = _substitute(str(layer_inputs.get("src") or ""), env)
    if Path(src).name != build_dir.name:
        return [f"layers/serverless.yml deploys {src!r}, not the folder `make layer` builds for Python {version} "
                f"(./build/{build_dir.name}): use src: ./build/${{env:RUNTIME}}"]
    deployed_dir = root / "layers" / src
    manifest = root / "layers" / "dist" / zip_path.with_suffix(".json").name
    if not deployed_dir.is_dir() or not manifest.is_file():
        return [f"the layer for Python {version} is not built (no {deployed_dir.relative_to(root)}): run `make layer`"]
    built = json.loads(manifest.read_text(encoding="utf-8")).get("python_version")
    if built != version:
        return [f"the built layer is for Python {built}, the runtime is Python {version}: run `make layer`"]
    return []


def _cam_policy_problems(root: Path, deployment: Deployment) -> list[str]:
    path = root / "cam-policy.json"
    try:
        on_disk = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"cam-policy.json cannot be read ({exc}): run `superres cam-policy > cam-policy.json`"]
    if on_disk != cam_policy(deployment):
        return ["cam-policy.json is not the policy for this serverless.yml and .env: "
                "run `superres cam-policy > cam-policy.json` and update the role's policy"]
    return []


def _env_refs(value: object) -> set[str]:
    if isinstance(value, str):
        return set(_ENV_REF_RE.findall(value))
    if isinstance(value, Mapping):
        return {name for v in value.values() for name in _env_refs(v)}
    if isinstance(value, list):
        return {name for v in value for name in _env_refs(v)}
    return set()


def _substitute(text: str, env: Mapping[str, str]) -> str:
    return _ENV_REF_RE.sub(lambda m: env.get(m.group(1), ""), text)
