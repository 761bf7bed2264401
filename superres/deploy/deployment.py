"""What serverless.yml deploys, read once: the function's spec and its Settings, and the rules a deployment
must meet wherever the function would run (SCF, `superres local`, the demo, backfill, replay)."""

from __future__ import annotations

from dataclasses import dataclass

from superres_fn import Settings, load_settings

from ..scf.serverless import CosTrigger, FunctionSpec

# The function's own settings (handler/superres_fn/config.py); anything else in serverless.yml is a typo.
FUNCTION_VARIABLES = frozenset(
    {"DEST_PREFIX", "MAGNIFY", "DEST_BUCKET", "ACCEPTED_SUFFIXES", "MAX_INPUT_BYTES", "SKIP_EXISTING", "CLAIM_WORK",
     "COS_TIMEOUT_S", "OUTPUTS", "CI_LANDING_BOUND_S", "RESULT_NAMES"}
)
# SCF refuses user variables with these prefixes, and caps all variables together at 4 KB.
RESERVED_PREFIXES = ("SCF_", "QCLOUD_", "TENCENTCLOUD_")
MAX_ENVIRONMENT_BYTES = 4096


class SelfTriggerError(ValueError):
    """The trigger prefix and DEST_PREFIX overlap in one bucket: every result would run the function again."""


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
    return [overlap_message(trigger, dest) for trigger in deployment.spec.triggers
            if trigger.enable and deployment.dest_bucket(trigger) == trigger.bucket
            and (dest.startswith(trigger.prefix) or trigger.prefix.startswith(dest))]


def overlap_message(trigger: CosTrigger, dest_prefix: str) -> str:
    """The one message for an overlap, wherever it is refused (check, cam-policy, deploy, local, demo, ...)."""
    return (f"COS trigger on {trigger.bucket} prefix {trigger.prefix!r} overlaps DEST_PREFIX {dest_prefix!r}: "
            "every result would trigger the function again (pick disjoint folders, e.g. uploads/ and superres/)")


def refuse_self_trigger(spec: FunctionSpec, settings: Settings | None = None) -> None:
    """Raise SelfTriggerError (one line per overlapping trigger) before anything runs the function."""
    deployment = Deployment(spec, settings) if settings is not None else Deployment.from_spec(spec)
    problems = self_trigger_problems(deployment)
    if problems:
        raise SelfTriggerError("\n".join(problems))


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
