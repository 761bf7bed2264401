"""`superres deploy` against the local cloud API in-process (real tencentcloud-sdk-python over HTTP): the paths the
end-to-end test does not take, and the API's refusals."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tencentcloud.cam.v20190116 import cam_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.scf.v20180416 import models

from superres.cli import main
from superres.deploy import package
from superres.deploy.deploy import Deployer
from superres.deploy.deploy_config import AsyncPolicy
from superres.deploy.layer import build_layer
from superres.deploy.project import load_project
from superres.scf.api import ScfApiServer, serve_scf_api
from superres.scf.client import client_profile, credential_from_env, make_client
from superres.stack import LocalStack, StackOptions
from tests.cut_off import errors_logged, send_cut_off
from tests.deploy.project_copy import project_copy

RUNTIME = f"Python{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def layer_dir() -> Path:
    return build_layer(python_version=RUNTIME.removeprefix("Python"), log=lambda line: None).build_dir


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[LocalStack, ScfApiServer]]:
    options = StackOptions(data_dir=tmp_path / "data", serverless=project_copy(tmp_path / "stack") / "serverless.yml",
                           function=False, engine=object())
    with LocalStack(options) as stack, serve_scf_api(stack) as api:
        yield stack, api


def test_an_upload_cut_off_mid_body_changes_nothing_and_logs_no_traceback(
        cloud: tuple[LocalStack, ScfApiServer], caplog: pytest.LogCaptureFixture) -> None:
    """A deploy killed while it sends CreateFunction's zip: no function is made, no traceback, the API goes on."""
    stack, api = cloud
    send_cut_off(int(api.endpoint.rsplit(":", 1)[1]), "POST / HTTP/1.1",
                 {"Host": api.endpoint, "X-TC-Action": "CreateFunction", "Content-Type": "application/json"})
    assert errors_logged(caplog) == []
    scf = make_client(stack.settings.region, scf_endpoint=api.endpoint, environ=stack.function_env())
    with pytest.raises(TencentCloudSDKException) as caught:  # the API answers the next call, and made nothing
        scf.call_json("GetFunction", {"FunctionName": "cos-superres-dev"})
    assert caught.value.get_code().startswith("ResourceNotFound")


def _deploy(stack: LocalStack, api: ScfApiServer, project: Path, *args: str) -> Result:
    cred = stack.settings.credentials[0]
    return CliRunner().invoke(main, [*args, "--project", str(project), "--env-file", str(project / ".env"),
                                     "--endpoint", api.endpoint, "--cos-endpoint", stack.standin.endpoint_url]
                              if args[0] == "deploy" else [*args, "--project", str(project), "--env-file",
                                                           str(project / ".env"), "--endpoint", api.endpoint],
                              env={"TENCENTCLOUD_SECRETID": cred.secret_id, "TENCENTCLOUD_SECRETKEY": cred.secret_key})


def test_unknown_actions_answer_invalid_action(cloud: tuple[LocalStack, ScfApiServer]) -> None:
    stack, api = cloud
    scf = make_client(stack.settings.region, scf_endpoint=api.endpoint, environ=stack.function_env())
    cam = cam_client.CamClient(credential_from_env(stack.function_env(), "-"), "", client_profile(api.endpoint))
    for client, action in ((scf, "PutProvisionedConcurrencyConfig"), (cam, "CreateRole")):
        with pytest.raises(TencentCloudSDKException) as caught:
            client.call_json(action, {})
        assert caught.value.get_code() == "InvalidAction"


def test_a_refused_runtime_is_one_line_naming_runtime_and_what_to_try(
        cloud: tuple[LocalStack, ScfApiServer], tmp_path: Path, layer_dir: Path) -> None:
    stack, api = cloud
    project = project_copy(tmp_path, env="RUNTIME=Python3.8\n")
    (project / "layers" / "build" / "Python3.8").symlink_to(layer_dir, target_is_directory=True)
    result = _deploy(stack, api, project, "deploy")
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert "InvalidParameterValue.CompatibleRuntimes" in line or "InvalidParameterValue.Runtime" in line
    assert "set RUNTIME in .env to one of Python3.12, Python3.11, Python3.10" in line


def test_code_over_the_zipfile_limit_goes_through_cos(cloud: tuple[LocalStack, ScfApiServer], tmp_path: Path,
                                                       layer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack, api = cloud
    monkeypatch.setattr(package, "ZIP_FILE_MAX_BYTES", 4096)
    project = project_copy(tmp_path, layer_dir, env=f"RUNTIME={RUNTIME}\n")
    result = _deploy(stack, api, project, "deploy")
    assert result.exit_code == 0, result.output
    assert "to cos://photos-1250000000/.superres-deploy/cos-superres-dev-" in result.stderr
    scf = make_client(stack.settings.region, scf_endpoint=api.endpoint, environ=stack.function_env())
    function = scf.call_json("GetFunction", {"FunctionName": "cos-superres-dev"})["Response"]
    assert function["Status"] == "Active" and function["Runtime"] == RUNTIME


def test_a_changed_trigger_is_replaced_and_an_identical_one_kept(cloud: tuple[LocalStack, ScfApiServer],
                                                                  tmp_path: Path, layer_dir: Path) -> None:
    stack, api = cloud
    project = project_copy(tmp_path, layer_dir, env=f"RUNTIME={RUNTIME}\n")
    assert _deploy(stack, api, project, "deploy").exit_code == 0
    (project / ".env").write_text(f"RUNTIME={RUNTIME}\nSOURCE_PREFIX=photos/\nASYNC_RETRY_NUM=0\n", encoding="utf-8")
    second = _deploy(stack, api, project, "deploy")
    assert second.exit_code == 0, second.output
    changes = [line for line in second.stderr.splitlines() if not line.startswith("deployed ")]
    assert changes == [
        "setting async retries/retention of cos-superres-dev",
        'deleting COS trigger photos-1250000000.cos.ap-guangzhou.myqcloud.com {"event":"cos:ObjectCreated:*"}',
        'creating COS trigger photos-1250000000.cos.ap-guangzhou.myqcloud.com '
        '{"event":"cos:ObjectCreated:*","filter":{"Prefix":"photos/","Suffix":""}}',
    ]
    scf = make_client(stack.settings.region, scf_endpoint=api.endpoint, environ=stack.function_env())
    (trigger,) = scf.call_json("ListTriggers", {"FunctionName": "cos-superres-dev"})["Response"]["Triggers"]
    assert json.loads(trigger["TriggerDesc"])["filter"]["Prefix"] == "photos/"
    config = scf.call_json("GetFunctionEventInvokeConfig", {"FunctionName": "cos-superres-dev"})["Response"]
    assert config["AsyncTriggerConfig"]["RetryConfig"] == [{"RetryNum": 0}]


def test_every_body_names_only_fields_of_the_sdks_request_models(tmp_path: Path, layer_dir: Path) -> None:
    project = load_project(project_copy(tmp_path, layer_dir, env=f"RUNTIME={RUNTIME}\n"), environ={},
                           env_file=tmp_path / "project" / ".env")
    outcome = Deployer(project, None, policy=AsyncPolicy(2, 21600), dry_run=True, say=lambda line: None).deploy()
    assert [c.action for c in outcome.calls] == ["PublishLayerVersion", "CreateFunction",
                                                "UpdateFunctionEventInvokeConfig", "CreateTrigger"]
    for call in outcome.calls:
        fields = {name.lstrip("_") for name in vars(getattr(models, f"{call.action}Request")())}
        assert set(call.body) <= fields, (call.action, set(call.body) - fields)
        for key in ("Code", "Content"):
            if key in call.body:
                assert set(call.body[key]) <= {name.lstrip("_") for name in vars(models.Code())}
