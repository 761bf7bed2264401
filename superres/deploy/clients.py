"""The SDK clients deploy, remove and check --cloud use: tencentcloud-sdk-python for SCF and CAM, and
cos-python-sdk-v5 for COS and CI, all with TENCENTCLOUD_SECRETID/SECRETKEY[/SESSIONTOKEN]. `endpoint` (HOST:PORT)
points SCF, CAM and CI's bucket-service reads at the local cloud API (`superres local --scf-api-port`), and
`cos_endpoint` (http://HOST:PORT) COS at the stand-in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from qcloud_cos import CosConfig, CosS3Client
from tencentcloud.cam.v20190116 import cam_client
from tencentcloud.scf.v20180416 import scf_client

from ..scf.client import ENDPOINT_ENV, _host_port, client_profile, credential_from_env

# What the deploying key must be allowed (said when keys are missing; docs/deploy.md lists them).
DEPLOY_ACTIONS = "scf:* on the function and its layer, cam:PassRole on SCF_ROLE (or QcloudSCFFullAccess)"
CHECK_ACTIONS = ("scf:GetFunction, cam:GetRole, cam:ListAttachedRolePolicies, cam:GetPolicy, cos:HeadBucket and "
                 "ci:DescribeAiProcessBucket (read-only)")


@dataclass(frozen=True)
class Clients:
    scf: scf_client.ScfClient
    cam: cam_client.CamClient
    cos: CosS3Client  # COS (HeadBucket, oversized code)
    ci: CosS3Client  # CI's bucket-service host (GET /ai_bucket)


def make_clients(region: str, *, endpoint: str | None = None, cos_endpoint: str | None = None,
                 environ: Mapping[str, str] | None = None, needs: str = DEPLOY_ACTIONS) -> Clients:
    env = os.environ if environ is None else environ
    cred = credential_from_env(env, needs)
    endpoint = endpoint or env.get(ENDPOINT_ENV, "").strip() or None
    profile = client_profile(endpoint)
    base = {"Region": region, "SecretId": cred.secret_id, "SecretKey": cred.secret_key, "Token": cred.token}
    cos = CosS3Client(CosConfig(**base, **_ip_port(cos_endpoint)), retry=1)
    # Locally, CI's host is the local API's port; Domain keeps the real Host (ci.<region>.myqcloud.com) signed.
    ci_local = {**_ip_port(f"http://{_host_port(endpoint)[0]}"), "Domain": f"ci.{region}.myqcloud.com"} \
        if endpoint else {}
    ci = CosS3Client(CosConfig(**base, **ci_local), retry=1)
    return Clients(scf=scf_client.ScfClient(cred, region, profile), cam=cam_client.CamClient(cred, "", profile),
                   cos=cos, ci=ci)


def _ip_port(url: str | None) -> dict[str, object]:
    """IP/Port mode: connect to a local endpoint, still sign and send the real Host."""
    if not url:
        return {"Scheme": "https"}
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return {"IP": parts.hostname, "Port": parts.port, "Scheme": parts.scheme or "http"}
