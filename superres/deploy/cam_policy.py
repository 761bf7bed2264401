"""The execution role's least-privilege CAM policy (`superres cam-policy`, cam-policy.json)."""

from __future__ import annotations

from superres_fn.plan import CLAIMS_FOLDER, STAGING_FOLDER

from .deployment import Deployment

# The CI permission for persistent processing (POST /<key>?image_process with AISuperResolution): the 2025 API
# page (cloud.tencent.com/document/api/460/83793) names ci:CreateSuperResolutionJob, the 2024 COS mirror
# (436/83800) ci:CreateAISuperResolutionJob. A policy may name an action CAM does not (yet) know, so granting
# both keeps the role working whichever name CAM checks, and widens nothing: both cover the same operation.
CI_ACTIONS = ("ci:CreateSuperResolutionJob", "ci:CreateAISuperResolutionJob")


def cam_policy(deployment: Deployment) -> dict[str, object]:
    """The execution role's policy: CI reads the upload and writes the result, the function HEADs the result.

    - cos:GetObject on the trigger prefix: CI fetches the source on the role's behalf (doc 1045/73041 lists
      cos:GetObject + cos:PutObject for in-cloud processing). The function itself never HEADs or GETs it.
    - cos:HeadObject + cos:PutObject on DEST_PREFIX: the function HEADs the result to skip finished work
      (SKIP_EXISTING); CI writes the result there.
    - the CI super-resolution action, on the bucket in the resource form CAM documents for CI
      (`qcs::ci:<region>:uid/<appid>:bucket/<bucket>/*`, doc 460/41741); both action names, see CI_ACTIONS.
    - cos:DeleteObject on DEST_PREFIX.claims/ only (CLAIM_WORK, the default): the function releases its claim on a
      record's work there (the claim's PUT and HEAD are covered by the statement above).
    - cos:GetObject + cos:DeleteObject on DEST_PREFIX.staging/ only, when an output of OUTPUTS has a format: CI
      reads the staged PNG to convert it, the function deletes it afterwards.
    """
    statements: list[dict[str, object]] = []
    for trigger in deployment.spec.triggers:
        appid = trigger.bucket.rsplit("-", 1)[1]
        source = f"{trigger.bucket}/{trigger.prefix}*"
        prefix = deployment.settings.dest_prefix

        def cos(bucket: str, path: str, region: str = trigger.region) -> str:
            return f"qcs::cos:{region}:uid/{bucket.rsplit('-', 1)[1]}:{bucket}/{path}*"

        statements += [
            {"effect": "allow", "action": ["cos:GetObject"],
             "resource": [f"qcs::cos:{trigger.region}:uid/{appid}:{source}"]},
            {"effect": "allow", "action": ["cos:HeadObject", "cos:PutObject"],
             "resource": [cos(bucket, prefix) for bucket in deployment.output_buckets(trigger)]},
            {"effect": "allow", "action": list(CI_ACTIONS),
             "resource": [f"qcs::ci:{trigger.region}:uid/{appid}:bucket/{trigger.bucket}/*"]},
        ]
        if deployment.settings.claim_work:
            statements.append({"effect": "allow", "action": ["cos:DeleteObject"],
                               "resource": [cos(deployment.dest_bucket(trigger), prefix + CLAIMS_FOLDER)]})
        formatted = deployment.output_buckets(trigger, formatted=True)
        staging = [cos(bucket, prefix + STAGING_FOLDER) for bucket in formatted]
        if staging:
            # CI reads the staged PNG to convert it; the function deletes it afterwards.
            statements.append({"effect": "allow", "action": ["cos:GetObject", "cos:DeleteObject"],
                               "resource": staging})
    return {"version": "2.0", "statement": _merge_duplicates(statements)}


def _merge_duplicates(statements: list[dict[str, object]]) -> list[dict[str, object]]:
    unique: list[dict[str, object]] = []
    for statement in statements:
        if statement not in unique:
            unique.append(statement)
    return unique


