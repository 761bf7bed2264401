"""Temporary keys from `superres local`'s STS, asked for the way a web backend asks Tencent Cloud: with
tencentcloud-sdk-python's sts client (TC3-signed), only the endpoint pointed at the stand-in."""

from __future__ import annotations

import json
from urllib.parse import quote

from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sts.v20180813 import models, sts_client

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY


def sts(endpoint: str, secret_id: str = DEMO_SECRET_ID, secret_key: str = DEMO_SECRET_KEY,
        region: str = "ap-guangzhou") -> sts_client.StsClient:
    """`endpoint` is host:port of the stand-in."""
    http = HttpProfile(protocol="http", endpoint=endpoint)
    return sts_client.StsClient(credential.Credential(secret_id, secret_key), region, ClientProfile(httpProfile=http))


def upload_policy(bucket: str, prefix: str, actions: list[str], region: str = "ap-guangzhou") -> dict:
    appid = bucket.rpartition("-")[2]
    return {"version": "2.0", "statement": [{
        "effect": "allow", "action": actions,
        "resource": [f"qcs::cos:{region}:uid/{appid}:{bucket}/{prefix}*"]}]}


def federation_token(endpoint: str, policy: dict, duration_s: int = 1800, **client_args: str) -> dict:
    """GetFederationToken -> {"TmpSecretId", "TmpSecretKey", "Token", "ExpiredTime"}."""
    request = models.GetFederationTokenRequest()
    request.Name = "webupload"
    request.Policy = quote(json.dumps(policy))
    request.DurationSeconds = duration_s
    response = sts(endpoint, **client_args).GetFederationToken(request)
    creds = response.Credentials
    return {"TmpSecretId": creds.TmpSecretId, "TmpSecretKey": creds.TmpSecretKey, "Token": creds.Token,
            "ExpiredTime": response.ExpiredTime}
