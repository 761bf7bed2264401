"""The execution role's least-privilege CAM policy (`superres cam-policy`, cam-policy.json)."""

from __future__ import annotations

from superres_fn.targets import CLAIMS_FOLDER, STAGING_FOLDER

from .deployment import Deployment

# The CI permission for persistent processing (POST /<key>?image_process with AISuperResolution): the 2025 API
# page (cloud.tencent.com/document/api/460/83793) names ci:CreateSuperResolutionJob, the 2024 COS mirror
# (436/83800) ci:CreateAISuperResolutionJob. A policy may name an action CAM does not (yet) know, so granting
# both keeps the role working whichever name CAM checks, and widens nothing: both cover the same operation.
CI_ACTIONS = ("ci:CreateSuperResolutionJob", "ci:CreateAISuperResolutionJob")


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


def _merge_duplicates(statements: list[dict[str, object]]) -> list[dict[str, object]]:
    unique: list[dict[str, object]] = []
    for statement in statements:
        if statement not in unique:
            unique.append(statement)
    return unique


