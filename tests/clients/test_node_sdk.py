"""cos-nodejs-sdk-v5 (npm, pinned in tests/clients/node/package.json), unmodified, driven through node: uploadFile
and sliceUploadFile (multipart above the SDK's 1 MB default), putObject, getObject, putObjectCopy,
deleteMultipleObject and a presigned getObjectUrl fetched with plain HTTP. The SDK addresses
<bucket>.cos.<region>.myqcloud.com and reaches the stand-in through its own `Proxy` option."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

from .conftest import BUCKET, Stack, image_size, large_photo_png, photo_png, result_of

NODE_DIR = Path(__file__).parent / "node"
REGION = "ap-guangzhou"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_DIR / "node_modules" / "cos-nodejs-sdk-v5").is_dir(),
    reason="node or tests/clients/node/node_modules missing: run `make test` (it runs npm ci there)",
)


def run_node(stack: Stack, method: str, **params: object) -> dict:
    """One SDK call; its JSON answer: {"data": ...} or {"error": ...}."""
    env = {**os.environ, "COS_PROXY": stack.endpoint, "COS_SECRET_ID": DEMO_SECRET_ID,
           "COS_SECRET_KEY": DEMO_SECRET_KEY}
    params = {"Bucket": BUCKET, "Region": REGION, **params}
    done = subprocess.run(["node", str(NODE_DIR / "client.js"), method, json.dumps(params)], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"{method}: node printed no JSON: {done.stdout[-500:]} {done.stderr[-2000:]}") from None


def node(stack: Stack, method: str, **params: object) -> dict:
    result = run_node(stack, method, **params)
    assert "data" in result, f"{method} failed: {result}"
    return result["data"]


def node_error(stack: Stack, method: str, **params: object) -> dict:
    result = run_node(stack, method, **params)
    assert "error" in result, f"{method} should have failed: {result}"
    return result["error"]


@pytest.mark.parametrize(("size_name", "method"), [("1.2mb", "uploadFile"), ("1.2mb", "sliceUploadFile")])
def test_node_multipart_upload_of_a_photo_is_super_resolved(stack: Stack, tmp_path: Path, size_name: str,
                                                            method: str) -> None:
    local = photo_png(tmp_path / "coffee.png", 1280, 853, name="coffee")
    assert 1.2e6 < local.stat().st_size < 5 * 1024 * 1024
    key = f"uploads/node-{method}-{size_name}.png"
    node(stack, method, Key=key, FilePath=str(local))
    line = stack.function_line(key)
    assert (line["event_name"], line["outcome"]) == ("cos:ObjectCreated:CompleteMultipartUpload", "processed")
    client = stack.client()
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].get_raw_stream().read() == local.read_bytes()
    result = client.get_object(Bucket=BUCKET, Key=result_of(key))["Body"].get_raw_stream().read()
    assert image_size(result) == (2560, 1706)


def test_node_upload_file_of_25_mb_lands_and_is_skipped_as_too_large(stack: Stack, tmp_path: Path) -> None:
    local = large_photo_png(tmp_path / "big.png", 25 * 1024 * 1024)
    node(stack, "uploadFile", Key="uploads/node-25mb.png", FilePath=str(local))
    line = stack.function_line("uploads/node-25mb.png")
    assert line["event_name"] == "cos:ObjectCreated:CompleteMultipartUpload"
    assert (line["outcome"], line["reason"]) == ("skipped", "too_large")
    head = node(stack, "headObject", Key="uploads/node-25mb.png")
    assert int(head["headers"]["content-length"]) == local.stat().st_size


def test_node_put_get_copy_and_delete_multiple(stack: Stack, tmp_path: Path) -> None:
    body = photo_png(tmp_path / "n.png", 90, 60).read_bytes()
    put = node(stack, "putObject", Key="staging/node.png", BodyBase64=base64.b64encode(body).decode())
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = node(stack, "getObject", Key="staging/node.png")
    assert base64.b64decode(got["Body"]["base64"]) == body
    source = f"{BUCKET}.cos.{REGION}.myqcloud.com/staging/node.png"
    node(stack, "putObjectCopy", Key="uploads/node-copy.png", CopySource=source)
    line = stack.function_line("uploads/node-copy.png")
    assert (line["event_name"], line["outcome"]) == ("cos:ObjectCreated:Copy", "processed")
    copied = node(stack, "getObject", Key="uploads/node-copy.png")
    assert base64.b64decode(copied["Body"]["base64"]) == body
    deleted = node(stack, "deleteMultipleObject", Objects=[{"Key": "staging/node.png"}, {"Key": "staging/none"}])
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["staging/node.png", "staging/none"]
    assert node_error(stack, "getObject", Key="staging/node.png")["statusCode"] == 404


def test_node_presigned_url_is_fetched_with_plain_http(stack: Stack) -> None:
    stack.client().put_object(Bucket=BUCKET, Key="staging/signed.txt", Body=b"signed body")
    url = node(stack, "getObjectUrl", Key="staging/signed.txt", Sign=True)["Url"]
    # the URL names the bucket's domain; reach it through the stand-in as an HTTP proxy, as the SDK does
    proxies = {"http": stack.endpoint}
    got = requests.get(url, proxies=proxies, timeout=30)
    assert (got.status_code, got.content) == (200, b"signed body")
    assert requests.get(url.replace("signed.txt", "other.txt"), proxies=proxies, timeout=30).status_code == 403
