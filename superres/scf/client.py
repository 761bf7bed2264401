"""Invoking the deployed function through tencentcloud-sdk-python's SCF client (API 2018-04-16 `Invoke`).

Credentials come from TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY [/ TENCENTCLOUD_SESSIONTOKEN]; they are
never printed. `scf_endpoint` ("HOST:PORT", or env SUPERRES_SCF_ENDPOINT) points the SDK at a local SCF API
(superres.scf.api) over plain HTTP instead of scf.tencentcloudapi.com.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models, scf_client

ENDPOINT_ENV = "SUPERRES_SCF_ENDPOINT"
NETWORK_ERROR = "ClientNetworkError"  # the SDK's code for a request that got no answer
ASYNC_EVENT_MAX_BYTES = 128 * 1024
# Invoke's own limit for synchronous calls is 300 s; wait a little longer than that for the answer.
_SYNC_TIMEOUT_S = 310


class CredentialsMissing(RuntimeError):
    """TENCENTCLOUD_SECRETID or TENCENTCLOUD_SECRETKEY is not set."""


class InvokeError(RuntimeError):
    """The SCF API refused the call (its error code and message), or it could not be reached."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message if code == NETWORK_ERROR else f"{code}: {message}")
        self.code, self.message, self.request_id = code, message, request_id


@dataclass(frozen=True)
class Target:
    function: str
    region: str
    namespace: str = "default"
    qualifier: str | None = None  # None: the API's default ($LATEST for Invoke)


@dataclass(frozen=True)
class InvokeOutcome:
    """Invoke's Result, with the API request id."""

    request_id: str
    function_request_id: str
    ret_msg: str
    err_msg: str
    log: str
    duration_ms: float | None
    bill_duration_ms: int | None
    mem_usage_bytes: int | None

    @property
    def failed(self) -> bool:
        return bool(self.err_msg)


def make_client(region: str, *, scf_endpoint: str | None = None, environ: Mapping[str, str] | None = None,
                needs: str = "scf:InvokeFunction") -> scf_client.ScfClient:
    """An SCF client; `needs` names the CAM actions the caller's key must allow (said when keys are missing)."""
    env = os.environ if environ is None else environ
    endpoint = scf_endpoint or env.get(ENDPOINT_ENV, "").strip() or None
    return scf_client.ScfClient(credential_from_env(env, needs), region, client_profile(endpoint))


def credential_from_env(env: Mapping[str, str], needs: str) -> credential.Credential:
    """TENCENTCLOUD_SECRETID/SECRETKEY[/SESSIONTOKEN]; CredentialsMissing names what is missing and `needs`."""
    secret_id = env.get("TENCENTCLOUD_SECRETID", "").strip()
    secret_key = env.get("TENCENTCLOUD_SECRETKEY", "").strip()
    missing = [name for name, value in (("TENCENTCLOUD_SECRETID", secret_id), ("TENCENTCLOUD_SECRETKEY", secret_key))
               if not value]
    if missing:
        raise CredentialsMissing(
            f"{' and '.join(missing)} not set: export the API key of a CAM user allowed {needs} "
            "(and TENCENTCLOUD_SESSIONTOKEN for a temporary key)"
        )
    return credential.Credential(secret_id, secret_key, env.get("TENCENTCLOUD_SESSIONTOKEN", "").strip() or None)


def client_profile(endpoint: str | None) -> ClientProfile:
    """The SDK's profile: the real endpoint, or `endpoint` ("HOST:PORT" = plain HTTP, e.g. the local API)."""
    host, scheme = _host_port(endpoint) if endpoint else (None, "https")
    return ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=host, reqTimeout=_SYNC_TIMEOUT_S))


def invoke(client: scf_client.ScfClient, target: Target, event: object, *, invocation_type: str = "RequestResponse"
           ) -> InvokeOutcome:
    """One Invoke call; `event` becomes ClientContext (at most 128 KB for InvocationType=Event)."""
    request = models.InvokeRequest()
    request.FunctionName = target.function
    request.InvocationType = invocation_type
    request.Namespace = target.namespace
    if target.qualifier:
        request.Qualifier = target.qualifier
    request.ClientContext = encode_event(event)
    if invocation_type == "RequestResponse":
        request.LogType = "Tail"
    try:
        response = client.Invoke(request)
    except TencentCloudSDKException as exc:
        if exc.get_code() == NETWORK_ERROR:
            raise InvokeError(NETWORK_ERROR, unreachable(client, exc)) from None
        raise InvokeError(exc.get_code() or "ClientError", exc.get_message() or str(exc),
                          exc.get_request_id()) from None
    result = response.Result
    return InvokeOutcome(
        request_id=response.RequestId or "",
        function_request_id=result.FunctionRequestId or "",
        ret_msg=result.RetMsg or "",
        err_msg=result.ErrMsg or "",
        log=result.Log or "",
        duration_ms=result.Duration,
        bill_duration_ms=result.BillDuration,
        mem_usage_bytes=result.MemUsage,
    )


def unreachable(client: scf_client.ScfClient, exc: TencentCloudSDKException) -> str:
    """One line for an SCF API request that got no answer: where it went and what to check (not urllib3's text)."""
    http = client.profile.httpProfile
    where = f"{http.scheme}://{client._get_endpoint()}"
    text = (exc.get_message() or "").lower()
    what = ("connection refused" if "refused" in text else "name not found" if "resolution" in text or
            "name or service" in text else "timed out" if "timed out" in text else "no answer")
    return (f"cannot reach the SCF API at {where} ({what}): check --scf-endpoint or ${ENDPOINT_ENV} (a local one is "
            "`superres local --scf-api-port PORT`; unset, the CLI uses scf.tencentcloudapi.com) and the network")


def encode_event(event: object) -> str:
    """The ClientContext string; its UTF-8 length is what SCF's 128 KB (async) / 6 MB (sync) limits measure."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def _host_port(endpoint: str) -> tuple[str, str]:
    """'HOST:PORT' (plain HTTP, a local API) or 'https://HOST[:PORT]' -> (host[:port], scheme)."""
    if "://" not in endpoint:
        return endpoint.strip("/"), "http"
    parts = urlsplit(endpoint)
    return parts.netloc, parts.scheme or "http"
