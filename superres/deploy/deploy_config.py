"""The async failure policy (UpdateFunctionEventInvokeConfig): what SCF does with a COS event whose invocation
keeps failing. `superres deploy` applies it with the function; `superres deploy-config` applies it alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import models as scf_models
from tencentcloud.scf.v20180416 import scf_client

from .errors import describe_api_error

# The CAM actions `superres deploy-config` needs (named in its missing-keys message).
DEPLOY_CONFIG_ACTIONS = ("scf:UpdateFunctionEventInvokeConfig", "scf:GetFunctionEventInvokeConfig")


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
        raise DeployConfigError(describe_api_error(exc)) from None
    return json.loads(response.to_json_string())["AsyncTriggerConfig"]


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise DeployConfigError(f"{name} must be a whole number of {'seconds' if 'TTL' in name else 'retries'}, "
                                f"e.g. {default}; got {raw!r}")
    return int(raw)


