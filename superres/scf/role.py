"""The function's execution role, locally: SCF hands a function its role's temporary keys
(TENCENTCLOUD_SECRETID / SECRETKEY / SESSIONTOKEN); the local runtime does the same, with keys the stand-in's STS
issues under the policy `superres cam-policy` writes for this configuration (cam-policy.json for the shipped one).
So every trigger, replay and backfill run proves the policy suffices, and a call outside it fails as in the cloud."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from superres_fn import load_settings

from ..deploy.cam_policy import cam_policy
from ..deploy.deployment import Deployment
from ..standin.cam import parse_policy
from ..standin.sts import TokenAuthority
from .serverless import FunctionSpec

# Cloud role keys last hours and SCF renews them; a local stack may run for days, so its keys outlive it.
LOCAL_ROLE_KEY_S = 30 * 24 * 3600


def role_policy(spec: FunctionSpec, overrides: Mapping[str, str]) -> dict[str, object]:
    """The policy `superres cam-policy` prints for serverless.yml with these variable overrides."""
    settings = load_settings({**spec.environment, **overrides})
    return cam_policy(Deployment(spec, settings))


def role_keys(standin_data_dir: Path, policy: Mapping[str, object]) -> dict[str, str]:
    """Temporary keys limited to `policy`, sealed by the stand-in's STS (they work against it, and only it)."""
    key = TokenAuthority(standin_data_dir).issue((parse_policy(json.dumps(policy)),), LOCAL_ROLE_KEY_S)
    return {"TENCENTCLOUD_SECRETID": key.secret_id, "TENCENTCLOUD_SECRETKEY": key.secret_key,
            "TENCENTCLOUD_SESSIONTOKEN": key.token}
