"""`superres deploy` end to end: real tencentcloud-sdk-python over HTTP to `superres local --no-function`.

The stand-in starts with no function. `superres deploy --endpoint` publishes the layer, creates the function and
its COS trigger there; an upload is then processed by the deployed zip and layer (the handler's marker says which
code ran and where cos-python-sdk-v5 was imported from); a changed handler deployed again runs on the next
upload; a third deploy has nothing to change; `superres remove` takes it down and uploads stay unprocessed.
The function's runtime is this interpreter's (RUNTIME=Python3.11 in the copy's .env), so it runs isolated: only
its code and its layer are importable, as on SCF.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from superres.deploy.layer import build_layer
from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY
from tests.deploy.project_copy import project_copy
from tests.integration.local_process import BUCKET, cos_client, free_port, png, superres_local

RUNTIME = f"Python{sys.version_info.major}.{sys.version_info.minor}"
MARKER = '''
import json as _json
import os as _os

import qcloud_cos as _cos

_deployed_main_handler = main_handler


def main_handler(event, context):
    print(_json.dumps({{"deploy_marker": "{version}", "code": _os.path.abspath(__file__),
                        "cos_sdk": _os.path.abspath(_cos.__file__)}}), flush=True)
    return _deployed_main_handler(event, context)
'''


@pytest.fixture(scope="module")
def layer_dir() -> Path:
    return build_layer(python_version=RUNTIME.removeprefix("Python"), log=lambda line: None).build_dir


def _deploy(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TENCENTCLOUD_SECRETID": DEMO_SECRET_ID, "TENCENTCLOUD_SECRETKEY": DEMO_SECRET_KEY}
    return subprocess.run([sys.executable, "-m", "superres", *args, "--project", str(project), "--env-file",
                           str(project / ".env")], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def _markers(data_dir: Path) -> list[dict]:
    path = data_dir / "function-log.jsonl"
    found = []
    for text in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        try:
            line = json.loads(text)
        except ValueError:
            continue
        message = line.get("message") if isinstance(line, dict) else None
        for candidate in (line, message):
            if isinstance(candidate, str):
                try:
                    candidate = json.loads(candidate)
                except ValueError:
                    continue
            if isinstance(candidate, dict) and "deploy_marker" in candidate:
                found.append(candidate)
    return found


def _wait_for(predicate, what: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def _result_exists(cos, key: str) -> bool:  # type: ignore[no-untyped-def]
    return cos.object_exists(Bucket=BUCKET, Key=key)


def test_deploy_update_noop_and_remove_against_the_local_cloud(tmp_path: Path, layer_dir: Path) -> None:
    project = project_copy(tmp_path, layer_dir, env=f"RUNTIME={RUNTIME}\n")
    index = project / "handler" / "index.py"
    original = index.read_text(encoding="utf-8")
    index.write_text(original + MARKER.format(version="v1"), encoding="utf-8")
    data_dir = tmp_path / "data"
    api_port = free_port()
    with superres_local(data_dir, "--no-function", "--scf-api-port", str(api_port), "--serverless",
                        str(project / "serverless.yml")) as (_, port):
        endpoint = ["--endpoint", f"127.0.0.1:{api_port}", "--cos-endpoint", f"http://127.0.0.1:{port}"]
        cos = cos_client(port)

        cos.put_object(Bucket=BUCKET, Key="uploads/before.png", Body=png(1))
        first = _deploy(project, "deploy", *endpoint)
        assert first.returncode == 0, first.stderr
        for step in ("publishing layer cos-superres-layer", "creating function cos-superres-dev",
                     "creating COS trigger photos-1250000000.cos.ap-guangzhou.myqcloud.com"):
            assert step in first.stderr, first.stderr

        cos.put_object(Bucket=BUCKET, Key="uploads/one.png", Body=png(2))
        _wait_for(lambda: _result_exists(cos, "superres/uploads/one.png.png"), "the first result")
        (marker,) = _wait_for(lambda: _markers(data_dir), "the first invocation's log")
        assert marker["deploy_marker"] == "v1"
        assert Path(marker["code"]).is_relative_to(data_dir / "scf" / "functions")
        assert Path(marker["cos_sdk"]).is_relative_to(data_dir / "scf" / "layers")
        assert not _result_exists(cos, "superres/uploads/before.png.png")  # uploaded before any function existed

        index.write_text(original + MARKER.format(version="v2"), encoding="utf-8")
        second = _deploy(project, "deploy", *endpoint)
        assert second.returncode == 0, second.stderr
        assert "updating the code of cos-superres-dev" in second.stderr
        assert "publishing layer" not in second.stderr and "creating COS trigger" not in second.stderr
        cos.put_object(Bucket=BUCKET, Key="uploads/two.png", Body=png(3))
        _wait_for(lambda: _result_exists(cos, "superres/uploads/two.png.png"), "the second result")
        markers = _wait_for(lambda: _markers(data_dir)[1:] and _markers(data_dir), "the second invocation's log")
        assert [m["deploy_marker"] for m in markers] == ["v1", "v2"]

        third = _deploy(project, "deploy", *endpoint)
        assert third.returncode == 0, third.stderr
        assert "cos-superres-dev: nothing to change" in third.stderr, third.stderr

        removed = _deploy(project, "remove", "--endpoint", f"127.0.0.1:{api_port}")
        assert removed.returncode == 0, removed.stderr
        assert "deleting COS trigger" in removed.stderr and "cos-superres-dev: removed" in removed.stderr
        cos.put_object(Bucket=BUCKET, Key="uploads/three.png", Body=png(4))
        time.sleep(3)  # time for a trigger, were one left, to start the function
        assert not _result_exists(cos, "superres/uploads/three.png.png")
        assert len(_markers(data_dir)) == 2

        again = _deploy(project, "remove", "--endpoint", f"127.0.0.1:{api_port}")
        assert again.returncode == 0 and "not deployed; nothing to remove" in again.stderr
