"""`superres deploy-config`: the async retry count and message retention, applied with tencentcloud-sdk-python's
UpdateFunctionEventInvokeConfig over HTTP to the local SCF API (TC3-signed), read back with
GetFunctionEventInvokeConfig, and then governing the function's async deliveries there."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from superres.cli import main
from superres.scf.api import ScfApiServer, serve_scf_api
from superres.scf.client import Target, invoke, make_client
from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from superres.standin.faults import FaultPlan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, ScfApiServer]]:
    options = StackOptions(data_dir=tmp_path_factory.mktemp("standin"), engine=load_engine("bicubic"), trigger=False)
    with LocalStack(options) as stack, serve_scf_api(stack) as server:
        yield stack, server


def _keys(stack: LocalStack) -> dict[str, str | None]:
    env = stack.function_env()
    return {"TENCENTCLOUD_SECRETID": env["TENCENTCLOUD_SECRETID"], "TENCENTCLOUD_SECRETKEY":
            env["TENCENTCLOUD_SECRETKEY"], "TENCENTCLOUD_SESSIONTOKEN": env.get("TENCENTCLOUD_SESSIONTOKEN"),
            "ASYNC_RETRY_NUM": None, "ASYNC_MSG_TTL": None}


def _run(api: tuple[LocalStack, ScfApiServer], *args: str, serverless: Path = ROOT / "serverless.yml",
         env: dict[str, str | None] | None = None):  # type: ignore[no-untyped-def]
    stack, server = api
    return CliRunner().invoke(main, ["deploy-config", "--serverless", str(serverless), "--scf-endpoint",
                                     server.endpoint, *args], env={**_keys(stack), **(env or {})})


def _function(server: ScfApiServer):  # type: ignore[no-untyped-def]
    (function,) = server.functions.values()
    return function


def test_env_example_policy_is_applied_and_read_back(api: tuple[LocalStack, ScfApiServer]) -> None:
    result = _run(api)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["function"] == "cos-superres-dev" and out["namespace"] == "default"
    assert out["AsyncTriggerConfig"] == {"RetryConfig": [{"RetryNum": 2}], "MsgTTL": 21600}


def test_options_override_env_and_govern_async_retries(api: tuple[LocalStack, ScfApiServer]) -> None:
    stack, server = api
    result = _run(api, "--retry-num", "0", "--msg-ttl", "3600")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["AsyncTriggerConfig"] == {"RetryConfig": [{"RetryNum": 0}], "MsgTTL": 3600}
    function = _function(server)
    function.invoke_async({"Records": []})  # starts the async queue with the configured retry count
    assert server.wait_idle(60)
    assert function._async is not None and function._async.retries == 0
    assert _run(api, "--retry-num", "1").exit_code == 0
    assert function._async.retries == 1


def test_wrong_key_is_a_clear_error(api: tuple[LocalStack, ScfApiServer]) -> None:
    result = _run(api, env={"TENCENTCLOUD_SECRETKEY": "wrong"})
    assert result.exit_code == 1
    assert "AuthFailure.SignatureFailure" in result.output and "Traceback" not in result.output


def test_missing_keys_are_named_with_the_actions_deploy_config_needs(api: tuple[LocalStack, ScfApiServer]) -> None:
    result = _run(api, env={"TENCENTCLOUD_SECRETID": None})
    assert result.exit_code == 1 and "TENCENTCLOUD_SECRETID" in result.output
    assert "scf:UpdateFunctionEventInvokeConfig and scf:GetFunctionEventInvokeConfig" in result.output
    assert "scf:InvokeFunction" not in result.output


def test_malformed_env_setting_is_named(api: tuple[LocalStack, ScfApiServer], tmp_path: Path) -> None:
    shutil.copy(ROOT / "serverless.yml", tmp_path / "serverless.yml")
    text = (ROOT / ".env.example").read_text(encoding="utf-8").replace("ASYNC_MSG_TTL=21600", "ASYNC_MSG_TTL=6h")
    (tmp_path / ".env.example").write_text(text, encoding="utf-8")
    result = _run(api, serverless=tmp_path / "serverless.yml")
    assert result.exit_code == 1
    assert "ASYNC_MSG_TTL must be a whole number of seconds" in result.output


def test_unknown_function_is_reported_by_the_api(api: tuple[LocalStack, ScfApiServer], tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    text = (ROOT / "serverless.yml").read_text(encoding="utf-8").replace("cos-superres-${env:STAGE}", "other")
    (tmp_path / "serverless.yml").write_text(text, encoding="utf-8")
    result = _run(api, serverless=tmp_path / "serverless.yml")
    assert result.exit_code == 1 and "ResourceNotFound.FunctionName" in result.output


@pytest.mark.slow  # ~20 s: the function's own backoff runs its course on each delivery
def test_configured_retry_count_is_what_a_failing_event_gets(tmp_path: Path) -> None:
    """Every CI call fails (500), so each invocation raises a retryable error: SCF delivers the event
    1 + RetryNum times, then drops it."""
    options = StackOptions(data_dir=tmp_path / "standin", engine=load_engine("bicubic"), trigger=False,
                           function_env={"COS_TIMEOUT_S": "0.5"},
                           faults=FaultPlan(1.0, kinds=("internal",), targets=("ci",)))
    with LocalStack(options) as stack, serve_scf_api(stack) as server:
        buf = io.BytesIO()
        Image.new("RGB", (32, 24), (200, 80, 40)).save(buf, "JPEG")
        etag = stack.client().put_object(Bucket="photos-1250000000", Key="uploads/astronaut.jpg",
                                         Body=buf.getvalue())["ETag"]
        result = _run((stack, server), "--retry-num", "1")
        assert result.exit_code == 0, result.output
        client = make_client("ap-guangzhou", scf_endpoint=server.endpoint, environ=stack.function_env())
        event = json.loads((ROOT / "events" / "put_single.json").read_text(encoding="utf-8"))
        event["Records"][0]["cos"]["cosObject"]["meta"]["ETag"] = etag  # the version stored here
        invoke(client, Target("cos-superres-dev", "ap-guangzhou", "default", None), event, invocation_type="Event")
        assert server.wait_idle(120)
        deliveries = list(_function(server)._async.deliveries)
        assert [d.attempt for d in deliveries] == [0, 1]
        assert not any(d.result.ok for d in deliveries)
