"""coscmd (PyPI, pinned in pyproject's dev extras), unmodified, as a user runs it: upload (multipart above its
part size), download, copy, delete, signurl. coscmd addresses <bucket>.cos.<region>.myqcloud.com; it reaches the
stand-in through the standard HTTP_PROXY variable (the stand-in accepts proxy-form requests)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

from .conftest import BUCKET, Stack, image_size, large_photo_png, photo_png, result_of

COSCMD = shutil.which("coscmd", path=str(Path(sys.executable).parent)) or shutil.which("coscmd")
pytestmark = pytest.mark.skipif(COSCMD is None, reason="coscmd missing: `make venv` installs the dev extras")


@pytest.fixture
def coscmd(stack: Stack, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "cos.conf"
    config.write_text(
        "[common]\n"
        f"secret_id = {DEMO_SECRET_ID}\nsecret_key = {DEMO_SECRET_KEY}\n"
        f"bucket = {BUCKET}\nregion = ap-guangzhou\n"
        "max_thread = 4\npart_size = 1\nmultiupload_threshold = 20\nschema = http\nanonymous = False\n"
        "retry = 0\ntimeout = 60\n"
    )
    env = {**os.environ, "HTTP_PROXY": stack.endpoint, "http_proxy": stack.endpoint, "NO_PROXY": "", "no_proxy": "",
           "HOME": str(tmp_path)}

    def run(*args: str) -> str:
        done = subprocess.run([str(COSCMD), "-c", str(config), *args], capture_output=True, text=True, env=env,
                              timeout=300, check=False)
        assert done.returncode == 0, f"coscmd {' '.join(args)} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}"
        return done.stdout + done.stderr

    return run


def test_coscmd_upload_of_a_1_2_mb_photo_is_super_resolved(stack: Stack, coscmd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # coscmd uploads in one PUT below its multipart threshold (at least 20 MB, whatever the config says)
    local = photo_png(tmp_path / "chelsea.png", 1600, 1067, name="chelsea")
    assert 1.2e6 < local.stat().st_size < 5 * 1024 * 1024
    coscmd("upload", str(local), "uploads/coscmd.png")
    line = stack.function_line("uploads/coscmd.png")
    assert (line["event_name"], line["outcome"]) == ("cos:ObjectCreated:Put", "processed")
    back = tmp_path / "back.png"
    coscmd("download", "uploads/coscmd.png", str(back))
    assert hashlib.md5(back.read_bytes()).hexdigest() == hashlib.md5(local.read_bytes()).hexdigest()
    result = tmp_path / "result.png"
    coscmd("download", result_of("uploads/coscmd.png"), str(result))
    assert image_size(result.read_bytes()) == (3200, 2134)


def test_coscmd_upload_of_25_mb_is_multipart_and_skipped_as_too_large(stack: Stack, coscmd,  # type: ignore[no-untyped-def]
                                                                      tmp_path: Path) -> None:
    local = large_photo_png(tmp_path / "big.png", 25 * 1024 * 1024)
    coscmd("upload", str(local), "uploads/coscmd-25mb.png")
    line = stack.function_line("uploads/coscmd-25mb.png")
    assert line["event_name"] == "cos:ObjectCreated:CompleteMultipartUpload"
    assert (line["outcome"], line["reason"]) == ("skipped", "too_large")
    head = stack.client().head_object(Bucket=BUCKET, Key="uploads/coscmd-25mb.png")
    assert int(head["Content-Length"]) == local.stat().st_size


def test_coscmd_copy_delete_and_signurl(stack: Stack, coscmd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    local = photo_png(tmp_path / "small.png", 80, 60)
    coscmd("upload", str(local), "staging/coscmd-small.png")
    coscmd("copy", f"{BUCKET}.cos.ap-guangzhou.myqcloud.com/staging/coscmd-small.png", "uploads/coscmd-copy.png")
    line = stack.function_line("uploads/coscmd-copy.png")
    assert (line["event_name"], line["outcome"]) == ("cos:ObjectCreated:Copy", "processed")
    client = stack.client()
    copied = client.get_object(Bucket=BUCKET, Key="uploads/coscmd-copy.png")["Body"].get_raw_stream().read()
    assert copied == local.read_bytes()
    output = coscmd("signurl", "staging/coscmd-small.png", "-t", "300")
    urls = re.findall(r"https?://[^\s'\"]+q-signature=[0-9a-f]+", output)  # coscmd prints it as b'...' on py3
    assert urls, output
    url = urls[0]
    got = requests.get(url, proxies={"http": stack.endpoint}, timeout=30)
    assert (got.status_code, got.content) == (200, local.read_bytes())
    coscmd("delete", "staging/coscmd-small.png", "-f")
    assert not client.object_exists(Bucket=BUCKET, Key="staging/coscmd-small.png")
