"""`superres local` as a user runs it: a separate process, an SDK script pointed at it, the trigger firing,
`replay --deployed` through the SCF API it serves with --scf-api-port, and temporary keys from the STS endpoint
its start-up lines print."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import pytest
from PIL import Image
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sts.v20180813 import models, sts_client

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY
from tests.conftest import EVENTS, ROOT

from .sts_keys import upload_policy

BUCKET = "photos-1250000000"


class Local(NamedTuple):
    proc: subprocess.Popen
    port: int
    scf: str  # host:port of the SCF API
    data: Path
    banner: str  # the start-up lines, up to "Ctrl-C to stop."


@pytest.fixture
def local(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "superres", "local", "--port", "0", "--data", str(tmp_path / "data"),
         "--engine", "bicubic", "--scf-api-port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")},
    )
    banner = []
    for line in proc.stdout:  # the banner ends with "Ctrl-C to stop."
        banner.append(line)
        if "Ctrl-C" in line:
            break
    text = "".join(banner)
    port = int(re.search(r"stand-in on http://127\.0\.0\.1:(\d+)", text).group(1))
    scf = re.search(r"SCF API on (127\.0\.0\.1:\d+)", text).group(1)
    yield Local(proc, port, scf, tmp_path / "data", text)
    proc.terminate()
    proc.wait(timeout=30)


def test_sdk_script_upload_runs_the_function_and_stores_the_result(local):
    port, data = local.port, local.data
    client = CosS3Client(CosConfig(Region="ap-guangzhou", SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY,
                                   IP="127.0.0.1", Port=port, Scheme="http"))
    buffer = io.BytesIO()
    Image.new("RGB", (30, 20), "navy").save(buffer, format="JPEG")
    client.put_object(Bucket=BUCKET, Key="uploads/navy.jpg", Body=buffer.getvalue())
    for _ in range(300):
        if client.object_exists(Bucket=BUCKET, Key="superres/uploads/navy.jpg.png"):
            break
        time.sleep(0.1)
    body = client.get_object(Bucket=BUCKET, Key="superres/uploads/navy.jpg.png")["Body"].get_raw_stream().read()
    assert Image.open(io.BytesIO(body)).size == (60, 40)
    log = data / "function-log.jsonl"
    for _ in range(300):  # CI stores the result before the invocation ends and its log is written
        if log.exists() and '"outcome":"processed"' in log.read_text():
            break
        time.sleep(0.1)
    assert '"outcome":"processed"' in log.read_text()


def test_replay_deployed_through_the_served_scf_api(local):
    scf = local.scf
    env = {**os.environ, "TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEMO_SECRET_KEY}
    proc = subprocess.run(
        [sys.executable, "-m", "superres", "replay", "--deployed", "cos-superres-dev", "--scf-endpoint", scf,
         str(EVENTS / "non_image.json")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "suffix_not_accepted" in proc.stdout
    assert DEMO_SECRET_KEY not in proc.stdout + proc.stderr


def test_the_printed_sts_endpoint_gives_temporary_keys_that_upload_with_cos_python_sdk(local):
    (line,) = [line for line in local.banner.splitlines() if "STS" in line]
    assert "GetFederationToken" in line and "AssumeRole" in line
    profile = re.search(r'HttpProfile\(protocol="(?P<protocol>[a-z]+)", endpoint="(?P<endpoint>[^"]+)"\)', line)
    assert profile is not None, line
    sts = sts_client.StsClient(credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY), "ap-guangzhou",
                               ClientProfile(httpProfile=HttpProfile(**profile.groupdict())))
    request = models.GetFederationTokenRequest()
    request.Name, request.DurationSeconds = "webupload", 1800
    request.Policy = quote(json.dumps(upload_policy(BUCKET, "web/u1/", ["name/cos:PutObject"])))
    keys = sts.GetFederationToken(request).Credentials
    assert keys.TmpSecretId != DEMO_SECRET_ID and keys.Token

    temp = CosS3Client(CosConfig(Region="ap-guangzhou", SecretId=keys.TmpSecretId, SecretKey=keys.TmpSecretKey,
                                 Token=keys.Token, IP="127.0.0.1", Port=local.port, Scheme="http"))
    temp.put_object(Bucket=BUCKET, Key="web/u1/note.txt", Body=b"uploaded with a temporary key")
    with pytest.raises(CosServiceError) as outside:  # the key is the policy's, not the demo key's rights
        temp.put_object(Bucket=BUCKET, Key="web/u2/note.txt", Body=b"elsewhere")
    assert outside.value.get_error_code() == "AccessDenied"
    demo = CosS3Client(CosConfig(Region="ap-guangzhou", SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY,
                                 IP="127.0.0.1", Port=local.port, Scheme="http"))
    stored = demo.get_object(Bucket=BUCKET, Key="web/u1/note.txt")["Body"].get_raw_stream().read()
    assert stored == b"uploaded with a temporary key"
