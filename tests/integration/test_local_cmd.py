"""`superres local` as a user runs it: a separate process, an SDK script pointed at it, the trigger firing,
and `replay --deployed` through the SCF API it serves with --scf-api-port."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from qcloud_cos import CosConfig, CosS3Client

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY
from tests.conftest import EVENTS, ROOT

BUCKET = "photos-1250000000"


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
    yield proc, port, scf, tmp_path / "data"
    proc.terminate()
    proc.wait(timeout=30)


def test_sdk_script_upload_runs_the_function_and_stores_the_result(local):
    proc, port, _, data = local
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
    _, _, scf, _ = local
    env = {**os.environ, "TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEMO_SECRET_KEY}
    proc = subprocess.run(
        [sys.executable, "-m", "superres", "replay", "--deployed", "cos-superres-dev", "--scf-endpoint", scf,
         str(EVENTS / "non_image.json")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "suffix_not_accepted" in proc.stdout
    assert DEMO_SECRET_KEY not in proc.stdout + proc.stderr
