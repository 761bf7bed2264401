"""`superres check --cloud`: read-only checks against the account before the first deploy, every problem on one
line, all at once: the credentials work, the bucket exists in REGION, Cloud Infinite is bound to it with AI
processing on, the execution role exists and carries cam-policy.json's statements, an existing function runs
RUNTIME, and the trigger prefix and DEST_PREFIX do not overlap."""

from __future__ import annotations

import json

from qcloud_cos.cos_exception import CosClientError, CosServiceError
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from .cam_policy import cam_policy
from .clients import Clients
from .deploy import runtime_mismatch
from .deployment import Deployment, self_trigger_problems
from .errors import describe_api_error
from .project import Project


def cloud_problems(project: Project, clients: Clients) -> list[str]:
    deployment = Deployment.from_spec(project.spec)
    problems = list(self_trigger_problems(deployment))
    try:
        function = _scf(clients, "GetFunction", {"FunctionName": project.spec.name, "Namespace": project.namespace})
    except TencentCloudSDKException as exc:
        if exc.get_code() not in ("ResourceNotFound.FunctionName", "ResourceNotFound.Function"):
            # Bad keys fail every call the same way: say it once.
            return [*problems, describe_api_error(exc, "GetFunction")]
        function = None
    if function is not None and function.get("Runtime") != project.spec.runtime:
        problems.append(runtime_mismatch(project.spec.name, str(function.get("Runtime")), project.spec.runtime))
    for trigger in project.spec.triggers:
        problems += _bucket_problems(clients, trigger.bucket, trigger.region)
    problems += _role_problems(clients, str(project.inputs.get("role") or ""), cam_policy(deployment))
    return problems


def _bucket_problems(clients: Clients, bucket: str, region: str) -> list[str]:
    try:
        clients.cos.head_bucket(Bucket=bucket)
    except CosServiceError as exc:
        if exc.get_status_code() == 404:
            return [f"bucket {bucket} does not exist in {region}: create it, or set BUCKET and REGION in .env"]
        return [f"HeadBucket {bucket}: {exc.get_error_code()} (HTTP {exc.get_status_code()}): the key may not read "
                f"it; allow cos:HeadBucket, check BUCKET and REGION"]
    except CosClientError as exc:
        return [f"HeadBucket {bucket}: COS could not be reached ({str(exc)[:120]}); check the network"]
    try:
        listing = clients.ci.ci_get_ai_bucket(Regions=region, BucketNames=bucket)
    except (CosServiceError, CosClientError) as exc:
        code = exc.get_error_code() if isinstance(exc, CosServiceError) else "ClientError"
        return [f"Cloud Infinite: the binding of {bucket} cannot be read ({code}); allow ci:DescribeAiProcessBucket"]
    found = listing.get("AiBucketList") or []
    found = found if isinstance(found, list) else [found]
    if not any(entry.get("Name") == bucket for entry in found):
        return [f"Cloud Infinite is not bound to {bucket} with AI processing on: CI console -> Bucket Management -> "
                "Bind Bucket, then turn on AI content recognition (docs/deploy.md, prerequisites)"]
    return []


def _role_problems(clients: Clients, role: str, policy: dict) -> list[str]:
    if not role:
        return ["SCF_ROLE is empty: the function would run without keys (docs/deploy.md, step 4)"]
    try:
        _cam(clients, "GetRole", {"RoleName": role})
        attached = _cam(clients, "ListAttachedRolePolicies", {"RoleName": role, "Page": 1, "Rp": 200})
        documents = [json.loads(str(_cam(clients, "GetPolicy", {"PolicyId": p["PolicyId"]}).get("PolicyDocument")
                                    or "{}")) for p in attached.get("List") or []]
    except TencentCloudSDKException as exc:
        if exc.get_code() in ("InvalidParameter.RoleNotExist", "ResourceNotFound.RoleNotExist"):
            return [f"the execution role {role} (SCF_ROLE) does not exist: create it with cam-policy.json attached "
                    "(docs/deploy.md, step 4)"]
        return [describe_api_error(exc)]
    granted = [s for d in documents for s in d.get("statement") or [] if s.get("effect") == "allow"]
    missing = [s for s in policy["statement"] if not any(_covers(g, s) for g in granted)]
    if missing:
        actions = sorted({a for s in missing for a in s["action"]})
        return [f"the execution role {role} lacks cam-policy.json's grants of {', '.join(actions)}: attach "
                "cam-policy.json to it (docs/deploy.md, step 4)"]
    return []


def _covers(granted: dict, wanted: dict) -> bool:
    def as_list(value: object) -> list[str]:
        return [str(v) for v in value] if isinstance(value, list) else [str(value)]

    actions, resources = as_list(granted.get("action")), as_list(granted.get("resource"))
    return all(a in actions or "*" in actions for a in wanted["action"]) and all(
        r in resources or "*" in resources for r in wanted["resource"])


def _scf(clients: Clients, action: str, body: dict) -> dict:
    return clients.scf.call_json(action, body)["Response"]


def _cam(clients: Clients, action: str, body: dict) -> dict:
    return clients.cam.call_json(action, body)["Response"]
