"""`superres replay`: locally against a started stand-in, and `--deployed` through tencentcloud-sdk-python's SCF
client pointed (HttpProfile endpoint) at the local SCF API, which verifies the TC3 signature and runs the handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from superres.cli import main
from superres.replay import load_event, seed_objects
from superres.scf.api import ScfApiServer, serve_scf_api
from superres.scf.client import InvokeError, Target, invoke, make_client
from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
BUCKET = "photos-1250000000"
TRICKY_KEYS = ["uploads/a b.jpg", "uploads/a+b.jpg", "uploads/100%.jpg", "uploads/#1.png", "uploads/why?.png",
               "uploads/猫 照片.jpg", "uploads/😀.webp"]


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[ScfApiServer]:
    with serve_scf_api(stack) as server:
        yield server


@pytest.fixture
def keys(stack: LocalStack) -> dict[str, str]:
    return {k: v for k, v in stack.function_env().items() if k.startswith("TENCENTCLOUD_")}


def _exists(stack: LocalStack, key: str) -> bool:
    return bool(stack.client().object_exists(Bucket=BUCKET, Key=key))


def _seeded_event(stack: LocalStack, name: str, tmp_path: Path) -> str:
    """Seed what a sample event names and write the event aimed at the seeded versions (the deployed function takes
    an event whose ETag is not the source's as outdated, as it would for an old event replayed in the cloud)."""
    event = load_event(EVENTS / name)
    seed_objects(stack.client(), event, "ap-guangzhou")
    for record in event["Records"]:
        key = record["cos"]["cosObject"]["key"].split("/", 3)[3]
        record["cos"]["cosObject"]["meta"]["ETag"] = stack.standin.store.head(BUCKET, key).etag
    path = tmp_path / name
    path.write_text(json.dumps(event), encoding="utf-8")
    return str(path)


def _replay(*args: str, env: dict[str, str | None] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["replay", *args], env=env)


def test_local_replay_seeds_the_objects_and_writes_the_results(tmp_path: Path) -> None:
    data = tmp_path / "standin"
    result = _replay("--engine", "bicubic", "--data", str(data), "--serverless", str(ROOT / "serverless.yml"),
                     str(EVENTS / "put_single.json"), str(EVENTS / "tricky_keys.json"))
    assert result.exit_code == 0, result.output
    returns = [json.loads(line.removeprefix("return: ")) for line in result.stdout.splitlines()
               if line.startswith("return: ")]
    assert [r["processed"] for r in returns] == [1, 7]
    logged = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {entry["key"] for entry in logged} == {"uploads/astronaut.jpg", *TRICKY_KEYS}
    assert "seeded uploads/astronaut.jpg" in result.stdout
    # The stand-in's data stays in --data: open it again and look for every result.
    with LocalStack(StackOptions(data_dir=data, engine=load_engine("bicubic"), trigger=False)) as again:
        for key in ["uploads/astronaut.jpg", *TRICKY_KEYS]:
            assert _exists(again, f"superres/{key}.png"), key


def test_local_replay_of_a_skipped_record_succeeds_without_output(tmp_path: Path) -> None:
    result = _replay("--engine", "bicubic", "--data", str(tmp_path), "--serverless", str(ROOT / "serverless.yml"),
                     str(EVENTS / "non_image.json"))
    assert result.exit_code == 0, result.output
    assert '"reason":"suffix_not_accepted"' in result.stdout


def test_deployed_replay_sync_prints_ret_msg_log_duration_and_memory(stack: LocalStack, api: ScfApiServer,
                                                                    keys: dict[str, str], tmp_path: Path) -> None:
    event = _seeded_event(stack, "put_single.json", tmp_path)
    result = _replay("--deployed", stack.spec.name, "--scf-endpoint", api.endpoint, event, env=keys)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    ret_msg = json.loads(next(line for line in lines if line.startswith("RetMsg: ")).removeprefix("RetMsg: "))
    assert ret_msg["processed"] == 1
    assert any(line.startswith("{") and '"outcome":"processed"' in line for line in lines)  # the Log tail
    assert any(line.startswith("Duration: ") and "BillDuration: " in line and "MemUsage: " in line for line in lines)
    assert "ErrMsg" not in result.stdout
    assert _exists(stack, "superres/uploads/astronaut.jpg.png")
    assert keys["TENCENTCLOUD_SECRETKEY"] not in result.output


def test_deployed_replay_async_queues_the_event(stack: LocalStack, api: ScfApiServer, keys: dict[str, str],
                                               tmp_path: Path) -> None:
    event = _seeded_event(stack, "tricky_keys.json", tmp_path)
    result = _replay("--deployed", stack.spec.name, "--async", "--scf-endpoint", api.endpoint, event, env=keys)
    assert result.exit_code == 0, result.output
    assert "FunctionRequestId: " in result.stdout and "RetMsg" not in result.stdout
    assert api.wait_idle(120)
    for key in TRICKY_KEYS:
        assert _exists(stack, f"superres/{key}.png"), key
    # the id SCF answered with is the one the function's log lines carry
    answered = result.stdout.split("FunctionRequestId: ", 1)[1].split()[0]
    (function,) = api.functions.values()
    assert answered in {r.request_id for r in function.async_results}


def test_deployed_replay_with_a_wrong_key_fails_signature_verification(stack: LocalStack, api: ScfApiServer,
                                                                       keys: dict[str, str]) -> None:
    result = _replay("--deployed", stack.spec.name, "--scf-endpoint", api.endpoint, str(EVENTS / "put_single.json"),
                     env={**keys, "TENCENTCLOUD_SECRETKEY": "not-the-key"})
    assert result.exit_code == 1
    assert "AuthFailure.SignatureFailure" in result.output
    assert "not-the-key" not in result.output


def test_deployed_replay_of_an_unknown_function_names_it(api: ScfApiServer, keys: dict[str, str]) -> None:
    result = _replay("--deployed", "no-such-function", "--scf-endpoint", api.endpoint,
                     str(EVENTS / "put_single.json"), env=keys)
    assert result.exit_code == 1
    assert "ResourceNotFound.FunctionName" in result.output


@pytest.mark.parametrize("missing", ["TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY"])
def test_deployed_replay_without_credentials_exits_1_naming_the_variable(missing: str) -> None:
    env = {"TENCENTCLOUD_SECRETID": "AKIDpresent", "TENCENTCLOUD_SECRETKEY": "sup3r-secret-value",
           "TENCENTCLOUD_SESSIONTOKEN": None, missing: None}
    result = _replay("--deployed", "cos-superres-dev", "--scf-endpoint", "127.0.0.1:9", str(EVENTS / "put_single.json"),
                     env=env)
    assert result.exit_code == 1  # as backfill --deployed and deploy-config say it
    assert f"{missing} not set" in result.output
    assert "sup3r-secret-value" not in result.output


def test_async_limit_is_128_kb_and_sync_limit_is_larger(stack: LocalStack, api: ScfApiServer,
                                                       keys: dict[str, str]) -> None:
    client = make_client("ap-guangzhou", scf_endpoint=api.endpoint, environ=keys)
    target = Target(stack.spec.name, "ap-guangzhou")
    event = {**load_event(EVENTS / "non_image.json"), "padding": "x" * (130 * 1024)}
    with pytest.raises(InvokeError) as refused:
        invoke(client, target, event, invocation_type="Event")
    assert refused.value.code.startswith("InvalidParameterValue")
    outcome = invoke(client, target, event)  # the same event synchronously: under 6 MB
    assert not outcome.failed and json.loads(outcome.ret_msg)["skipped"] == 1


def test_sdk_signature_is_checked_for_every_action(stack: LocalStack, api: ScfApiServer) -> None:
    client = make_client("ap-guangzhou", scf_endpoint=api.endpoint,
                         environ={"TENCENTCLOUD_SECRETID": "AKIDunknown", "TENCENTCLOUD_SECRETKEY": "x"})
    with pytest.raises(TencentCloudSDKException) as refused:
        client.call("InvokeFunction", {"FunctionName": stack.spec.name, "Event": "{}"})
    assert refused.value.get_code() == "AuthFailure.SecretIdNotFound"


def test_invoke_function_runs_the_event_synchronously(stack: LocalStack, api: ScfApiServer,
                                                      keys: dict[str, str]) -> None:
    client = make_client("ap-guangzhou", scf_endpoint=api.endpoint, environ=keys)
    body = client.call("InvokeFunction", {"FunctionName": stack.spec.name, "LogType": "Tail",
                                          "Event": (EVENTS / "object_remove.json").read_text(encoding="utf-8")})
    result = json.loads(body)["Response"]["Result"]
    assert json.loads(result["RetMsg"])["skipped"] == 1
    assert '"reason":"not_object_created"' in result["Log"]


@pytest.mark.parametrize("command", ["replay", "backfill"])
def test_malformed_endpoint_is_a_clear_error_naming_the_option(command: str) -> None:
    args = [command, "--endpoint", "127.0.0.1:9000"] + ([str(EVENTS / "put_single.json")] if command == "replay"
                                                          else ["--dry-run"])
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "--endpoint: must look like 'http://127.0.0.1:9000'" in result.output


def test_a_client_context_nested_too_deep_to_read_is_refused_with_scfs_error(stack: LocalStack, api: ScfApiServer,
                                                                            keys: dict[str, str]) -> None:
    from tencentcloud.scf.v20180416 import models

    client = make_client("ap-guangzhou", scf_endpoint=api.endpoint, environ=keys)
    request = models.InvokeRequest()
    request.FunctionName, request.Namespace = stack.spec.name, "default"
    request.ClientContext = "[" * 20000 + "]" * 20000  # valid JSON, deeper than json reads
    with pytest.raises(TencentCloudSDKException) as info:
        client.Invoke(request)
    assert info.value.code == "InvalidParameterValue.Param" and "nested too deeply" in info.value.message
