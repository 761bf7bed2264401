"""What serverless.yml deploys, checked and turned into the execution role's least-privilege CAM policy."""

from __future__ import annotations

from dataclasses import dataclass

from superres_fn import Settings, load_settings

from .scf.serverless import CosTrigger, FunctionSpec

# The function's own settings (handler/superres_fn/config.py); anything else in serverless.yml is a typo.
FUNCTION_VARIABLES = frozenset(
    {"DEST_PREFIX", "MAGNIFY", "DEST_BUCKET", "ACCEPTED_SUFFIXES", "MAX_INPUT_BYTES", "SKIP_EXISTING", "COS_TIMEOUT_S"}
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
        return self.settings.dest_bucket or trigger.bucket


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
    """The execution role's policy: CI reads the upload and writes the result, the function HEADs the result.

    - cos:GetObject on the trigger prefix: CI fetches the source on the role's behalf (doc 1045/73041 lists
      cos:GetObject + cos:PutObject for in-cloud processing). The function itself never HEADs or GETs it.
    - cos:HeadObject + cos:PutObject on DEST_PREFIX: the function HEADs the result to skip finished work
      (SKIP_EXISTING); CI writes the result there.
    - the CI super-resolution action, on the bucket in the resource form CAM documents for CI
      (`qcs::ci:<region>:uid/<appid>:bucket/<bucket>/*`, doc 460/41741); both action names, see CI_ACTIONS.
    """
    statements: list[dict[str, object]] = []
    for trigger in deployment.spec.triggers:
        appid = trigger.bucket.rsplit("-", 1)[1]
        source = f"{trigger.bucket}/{trigger.prefix}*"
        dest = f"{deployment.dest_bucket(trigger)}/{deployment.settings.dest_prefix}*"
        statements += [
            {"effect": "allow", "action": ["cos:GetObject"],
             "resource": [f"qcs::cos:{trigger.region}:uid/{appid}:{source}"]},
            {"effect": "allow", "action": ["cos:HeadObject", "cos:PutObject"],
             "resource": [f"qcs::cos:{trigger.region}:uid/{appid}:{dest}"]},
            {"effect": "allow", "action": list(CI_ACTIONS),
             "resource": [f"qcs::ci:{trigger.region}:uid/{appid}:bucket/{trigger.bucket}/*"]},
        ]
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
