"""What serverless.yml deploys: checked before a deploy (`superres check`), turned into the execution role's
least-privilege CAM policy, and the async failure policy applied after it (`superres deploy-config`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from superres_fn import ConfigError, Settings, load_settings
from superres_fn.targets import CLAIMS_FOLDER, STAGING_FOLDER
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import models as scf_models
from tencentcloud.scf.v20180416 import scf_client

from .scf.serverless import CosTrigger, FunctionSpec, ServerlessConfigError, load_function_spec, read_env_files

# The function's own settings (handler/superres_fn/config.py); anything else in serverless.yml is a typo.
FUNCTION_VARIABLES = frozenset(
    {"DEST_PREFIX", "MAGNIFY", "DEST_BUCKET", "ACCEPTED_SUFFIXES", "MAX_INPUT_BYTES", "SKIP_EXISTING", "CLAIM_WORK",
     "COS_TIMEOUT_S", "OUTPUTS", "CI_LANDING_BOUND_S"}
)
# SCF refuses user variables with these prefixes, and caps all variables together at 4 KB.
RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
MAX_ENVIRONMENT_BYTES = 4096
# The CI permission for persistent processing (POST /<key>?image_process with AISuperResolution): the 2025 API
# page (cloud.tencent.com/document/api/460/83793) names ci:CreateSuperResolutionJob, the 2024 COS mirror
# (436/83800) ci:CreateAISuperResolutionJob. A policy may name an action CAM does not (yet) know, so granting
# both keeps the role working whichever name CAM checks, and widens nothing: both cover the same operation.
CI_ACTIONS = ("ci:CreateSuperResolutionJob", "ci:CreateAISuperResolutionJob")


@dataclass(frozen=True)
class Deployment:
    spec: FunctionSpec
    settings: Settings

    @classmethod
    def from_spec(cls, spec: FunctionSpec) -> Deployment:
        """The function's Settings exactly as SCF would load them from serverless.yml's variables."""
        return cls(spec, load_settings(dict(spec.environment)))

    def dest_bucket(self, trigger: CosTrigger) -> str:
        """The first output's bucket: where the line's dest_key and the claims live."""
        return self.settings.outputs[0].bucket or trigger.bucket

    def output_buckets(self, trigger: CosTrigger, *, formatted: bool = False) -> list[str]:
        """Every bucket an output writes to (only those of outputs with a format, if `formatted`), in order."""
        buckets = [o.bucket or trigger.bucket for o in self.settings.outputs if o.format or not formatted]
        return list(dict.fromkeys(buckets))


def self_trigger_problems(deployment: Deployment) -> list[str]:
    """Ways a result could fire the function again: its trigger's prefix and DEST_PREFIX overlap in one bucket.

    Overlap means one is a prefix of the other: an empty trigger prefix watches the whole bucket, results
    included; a trigger prefix under DEST_PREFIX fires on results; DEST_PREFIX under the trigger prefix writes
    results where the trigger watches.
    """
    dest = deployment.settings.dest_prefix
    problems = []
    for trigger in deployment.spec.triggers:
        if not trigger.enable or deployment.dest_bucket(trigger) != trigger.bucket:
            continue
        if dest.startswith(trigger.prefix) or trigger.prefix.startswith(dest):
            problems.append(
                f"COS trigger on {trigger.bucket} prefix {trigger.prefix!r} overlaps DEST_PREFIX {dest!r}: "
                "every result would trigger the function again (pick disjoint folders, e.g. uploads/ and superres/)"
            )
    return problems


def cam_policy(deployment: Deployment) -> dict[str, object]:
    """The execution role's policy: what the function's record run (handler/superres_fn/record.py) and CI do.

    - cos:GetObject + cos:HeadObject on the trigger prefix: CI fetches the source on the role's behalf (doc
      1045/73041 lists cos:GetObject + cos:PutObject for in-cloud processing); the function HEADs it for its version
      (an event whose version is no longer the source's calls CI neither).
    - cos:HeadObject + cos:PutObject on DEST_PREFIX: the function HEADs results for their provenance and creates
      claims; CI writes staged results; the publishing copy writes the result.
    - the CI super-resolution action, on the bucket in the resource form CAM documents for CI
      (`qcs::ci:<region>:uid/<appid>:bucket/<bucket>/*`, doc 460/41741); both action names, see CI_ACTIONS.
    - cos:GetObject + cos:DeleteObject on DEST_PREFIX.staging/: the publishing copy reads the staged result (as CI
      does to convert a format), the function deletes it afterwards.
    - cos:GetBucket, limited by the `cos:prefix` condition to DEST_PREFIX.staging/: the function lists the upload's
      staging folder to publish what an earlier try left there instead of calling CI again.
    - cos:DeleteObject on DEST_PREFIX.claims/ only (CLAIM_WORK, the default): the function releases its claims.
    """
    statements: list[dict[str, object]] = []
    for trigger in deployment.spec.triggers:
        appid = trigger.bucket.rsplit("-", 1)[1]
        source = f"{trigger.bucket}/{trigger.prefix}*"
        prefix = deployment.settings.dest_prefix
        buckets = deployment.output_buckets(trigger)

        def cos(bucket: str, path: str, region: str = trigger.region) -> str:
            return f"qcs::cos:{region}:uid/{bucket.rsplit('-', 1)[1]}:{bucket}/{path}*"

        statements += [
            {"effect": "allow", "action": ["cos:GetObject", "cos:HeadObject"],
             "resource": [f"qcs::cos:{trigger.region}:uid/{appid}:{source}"]},
            {"effect": "allow", "action": ["cos:HeadObject", "cos:PutObject"],
             "resource": [cos(bucket, prefix) for bucket in buckets]},
            {"effect": "allow", "action": list(CI_ACTIONS),
             "resource": [f"qcs::ci:{trigger.region}:uid/{appid}:bucket/{trigger.bucket}/*"]},
            {"effect": "allow", "action": ["cos:GetObject", "cos:DeleteObject"],
             "resource": [cos(bucket, prefix + STAGING_FOLDER) for bucket in buckets]},
            {"effect": "allow", "action": ["cos:GetBucket"], "resource": [cos(bucket, "") for bucket in buckets],
             "condition": {"string_like": {"cos:prefix": f"{prefix}{STAGING_FOLDER}*"}}},
        ]
        if deployment.settings.claim_work:
            statements.append({"effect": "allow", "action": ["cos:DeleteObject"],
                               "resource": [cos(deployment.dest_bucket(trigger), prefix + CLAIMS_FOLDER)]})
    return {"version": "2.0", "statement": _merge_duplicates(statements)}


def environment_problems(spec: FunctionSpec) -> list[str]:
    """serverless.yml's variables: known to the function, allowed by SCF, and valid for load_settings."""
    problems = []
    for name in spec.environment:
        if name.startswith(RESERVED_PREFIXES):
            problems.append(f"{name}: SCF reserves the prefixes {', '.join(RESERVED_PREFIXES)}")
        elif name not in FUNCTION_VARIABLES:
            problems.append(f"{name}: not a setting of the function ({', '.join(sorted(FUNCTION_VARIABLES))})")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in spec.environment.items())
    if size > MAX_ENVIRONMENT_BYTES:
        problems.append(f"environment variables total {size} bytes; SCF allows {MAX_ENVIRONMENT_BYTES}")
    return problems


def _merge_duplicates(statements: list[dict[str, object]]) -> list[dict[str, object]]:
    unique: list[dict[str, object]] = []
    for statement in statements:
        if statement not in unique:
            unique.append(statement)
    return unique


# ---- async failure handling (UpdateFunctionEventInvokeConfig) ------------------------------------------------

# SCF's own defaults (doc 583/41138): 2 retries after an execution error, events kept up to 6 hours.
DEFAULT_ASYNC_RETRY_NUM = 2
DEFAULT_ASYNC_MSG_TTL_S = 21600


class DeployConfigError(ValueError):
    """A deploy setting in .env is malformed, or the SCF API refused the change."""


@dataclass(frozen=True)
class AsyncPolicy:
    """What SCF does with an async event (every COS event) whose invocation fails."""

    retry_num: int
    msg_ttl_s: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AsyncPolicy:
        return cls(_non_negative_int(env, "ASYNC_RETRY_NUM", DEFAULT_ASYNC_RETRY_NUM),
                   _non_negative_int(env, "ASYNC_MSG_TTL", DEFAULT_ASYNC_MSG_TTL_S))

    def request_config(self) -> dict[str, object]:
        return {"RetryConfig": [{"RetryNum": self.retry_num}], "MsgTTL": self.msg_ttl_s}


def apply_async_policy(client: scf_client.ScfClient, function: str, namespace: str,
                       policy: AsyncPolicy) -> dict[str, object]:
    """UpdateFunctionEventInvokeConfig, then GetFunctionEventInvokeConfig: the configuration SCF now holds."""
    update = scf_models.UpdateFunctionEventInvokeConfigRequest()
    update.from_json_string(json.dumps({"FunctionName": function, "Namespace": namespace,
                                        "AsyncTriggerConfig": policy.request_config()}))
    get = scf_models.GetFunctionEventInvokeConfigRequest()
    get.from_json_string(json.dumps({"FunctionName": function, "Namespace": namespace}))
    try:
        client.UpdateFunctionEventInvokeConfig(update)
        response = client.GetFunctionEventInvokeConfig(get)
    except TencentCloudSDKException as exc:
        raise DeployConfigError(f"{exc.get_code() or 'ClientError'}: {exc.get_message() or exc}") from None
    return json.loads(response.to_json_string())["AsyncTriggerConfig"]


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise DeployConfigError(f"{name} must be a whole number of {'seconds' if 'TTL' in name else 'retries'}, "
                                f"e.g. {default}; got {raw!r}")
    return int(raw)


# ---- preflight: `superres check` ---------------------------------------------------------------------------

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


def preflight_problems(root: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Everything `superres check` verifies before a deploy, one line per problem (empty: ready)."""
    from .layer import LayerBuildError, default_build_dir, default_zip_path, python_version_of

    env = read_env_files(root, environ)
    function_yml, layer_yml = root / "serverless.yml", root / "layers" / "serverless.yml"
    problems: list[str] = []
    documents = {}
    for path in (function_yml, layer_yml):
        try:
            documents[path] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path.relative_to(root)}: cannot be read: {exc}")
    if problems:
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
