"""serverless.yml, layers/serverless.yml, .env.example and cam-policy.json: valid, consistent, no self-trigger.

Each test loads the files from a temporary copy holding only .env.example (a developer's own .env must not
change what is checked), resolving ${env:...} as the deploy does.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from superres.deploy import (
    CI_ACTIONS,
    Deployment,
    cam_policy,
    environment_problems,
    self_trigger_problems,
)
from superres.deploy.layer import LAYER_NAME, configured_runtime
from superres.scf.serverless import load_function_spec

ROOT = Path(__file__).resolve().parents[2]
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def _copy_project(tmp_path: Path, serverless_text: str | None = None, env_example: str | None = None) -> Path:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env.example")
    if env_example is not None:
        (tmp_path / ".env.example").write_text(env_example, encoding="utf-8")
    (tmp_path / "serverless.yml").write_text(
        serverless_text or (ROOT / "serverless.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return tmp_path / "serverless.yml"


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    return Deployment.from_spec(load_function_spec(_copy_project(tmp_path), environ={}))


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_serverless_yml_is_the_scf_components_format() -> None:
    doc = _raw(ROOT / "serverless.yml")
    assert doc["component"] == "scf"
    assert {"app", "stage", "name", "inputs"} <= doc.keys()
    # The legacy serverless-tencent-scf plugin format must not creep back in.
    assert not {"service", "provider", "plugins", "functions"} & doc.keys()
    inputs = doc["inputs"]
    assert inputs["handler"] == "index.main_handler"
    assert inputs["runtime"] == "${env:RUNTIME}"  # one setting: .env's RUNTIME
    assert isinstance(inputs["environment"]["variables"], dict)
    assert 64 <= inputs["memorySize"] <= 3072 and 1 <= inputs["timeout"] <= 900
    assert inputs["role"], "the execution role provides the function's temporary keys"
    cos_events = [e["cos"] for e in inputs["events"] if "cos" in e]
    assert len(cos_events) == 1
    params = cos_events[0]["parameters"]
    assert {"bucket", "filter", "events", "enable"} <= params.keys()
    assert {"prefix", "suffix"} <= params["filter"].keys()
    assert params["events"] == "cos:ObjectCreated:*"
    assert params["enable"] is True  # the component docs default it to false: say it


def test_handler_string_names_the_entry_point_in_src() -> None:
    doc = _raw(ROOT / "serverless.yml")
    src = ROOT / doc["inputs"]["src"]["src"]
    module, _, function = doc["inputs"]["handler"].partition(".")
    code = (src / f"{module}.py").read_text(encoding="utf-8")
    assert re.search(rf"^def {function}\(event\b.*, context\b", code, re.M)


def test_serverless_yml_loads_with_only_env_example(deployment: Deployment) -> None:
    spec = deployment.spec
    assert spec.runtime == configured_runtime(ROOT, environ={}) == "Python3.12"
    assert spec.src == (ROOT / "handler").resolve() or spec.src.name == "handler"
    (trigger,) = spec.triggers
    assert trigger.bucket == "photos-1250000000" and trigger.region == "ap-guangzhou"
    assert trigger.prefix == "uploads/" and trigger.enable


def test_every_env_reference_is_defined_in_env_example() -> None:
    defined = {line.split("=", 1)[0].strip() for line in (ROOT / ".env.example").read_text().splitlines()
               if "=" in line and not line.lstrip().startswith("#")}
    for path in (ROOT / "serverless.yml", ROOT / "layers" / "serverless.yml"):
        used = set(_ENV_REF.findall(path.read_text(encoding="utf-8")))
        assert used <= defined, f"{path.name} uses {sorted(used - defined)} which .env.example does not define"


def test_environment_variables_are_valid_function_settings(deployment: Deployment) -> None:
    assert environment_problems(deployment.spec) == []
    assert deployment.settings.dest_prefix == "superres/"
    assert deployment.settings.magnify in (2, 4)


def test_trigger_prefix_and_dest_prefix_do_not_overlap(deployment: Deployment) -> None:
    assert self_trigger_problems(deployment) == []


@pytest.mark.parametrize(
    ("source_prefix", "dest_prefix"),
    [("", "superres/"), ("superres/in/", "superres/"), ("uploads/", "uploads/out/"), ("img", "img-out/")],
)
def test_overlapping_prefixes_are_reported_as_self_trigger(tmp_path: Path, source_prefix: str,
                                                           dest_prefix: str) -> None:
    env = (ROOT / ".env.example").read_text(encoding="utf-8")
    env = re.sub(r"^SOURCE_PREFIX=.*$", f"SOURCE_PREFIX={source_prefix}", env, flags=re.M)
    env = re.sub(r"^DEST_PREFIX=.*$", f"DEST_PREFIX={dest_prefix}", env, flags=re.M)
    spec = load_function_spec(_copy_project(tmp_path, env_example=env), environ={})
    problems = self_trigger_problems(Deployment.from_spec(spec))
    assert len(problems) == 1 and "trigger the function again" in problems[0]


def test_unknown_or_reserved_variables_are_reported(tmp_path: Path) -> None:
    text = (ROOT / "serverless.yml").read_text(encoding="utf-8").replace(
        "      DEST_PREFIX:", "      DEST_PREFX: typo/\n      TENCENTCLOUD_REGION: ap-guangzhou\n      DEST_PREFIX:", 1)
    spec = load_function_spec(_copy_project(tmp_path, serverless_text=text), environ={})
    problems = environment_problems(spec)
    assert any(p.startswith("DEST_PREFX:") for p in problems)
    assert any(p.startswith("TENCENTCLOUD_REGION:") and "reserves" in p for p in problems)


def test_layer_is_the_components_format_and_bound_by_the_function() -> None:
    layer = _raw(ROOT / "layers" / "serverless.yml")
    function = _raw(ROOT / "serverless.yml")
    assert layer["component"] == "layer" and layer["name"] == LAYER_NAME
    assert (layer["app"], layer["stage"]) == (function["app"], function["stage"])
    assert layer["inputs"]["runtimes"] == [function["inputs"]["runtime"]] == ["${env:RUNTIME}"]
    assert layer["inputs"]["src"] == "./build/${env:RUNTIME}"  # where `make layer` builds for RUNTIME
    (binding,) = function["inputs"]["layers"]
    assert binding["name"] == "${output:${stage}:${app}:" + LAYER_NAME + ".name}"
    assert binding["version"] == "${output:${stage}:${app}:" + LAYER_NAME + ".version}"


def test_layer_requirements_are_the_function_runtime_dependencies() -> None:
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / "layers" / "requirements.txt").read_text().splitlines()]
    names = {re.split(r"[<>=!~ ]", line, maxsplit=1)[0].lower() for line in lines if line}
    assert names == {"cos-python-sdk-v5", "orjson", "crcmod"}
    assert "cos-python-sdk-v5==1.9.44" in lines


def test_cam_policy_file_is_the_policy_for_serverless_yml(deployment: Deployment) -> None:
    on_disk = json.loads((ROOT / "cam-policy.json").read_text(encoding="utf-8"))
    assert on_disk == cam_policy(deployment), "regenerate with `superres cam-policy > cam-policy.json`"


def test_cam_policy_is_least_privilege_on_the_right_resources(deployment: Deployment) -> None:
    policy = json.loads((ROOT / "cam-policy.json").read_text(encoding="utf-8"))
    (trigger,) = deployment.spec.triggers
    appid = trigger.bucket.rsplit("-", 1)[1]
    grants = {tuple(s["action"]): s["resource"] for s in policy["statement"]}
    assert all(s["effect"] == "allow" for s in policy["statement"])
    base = f"qcs::cos:{trigger.region}:uid/{appid}:{trigger.bucket}/"
    assert grants == {
        # CI reads the upload; the function HEADs it for its version
        ("cos:GetObject", "cos:HeadObject"): [base + "uploads/*"],
        ("cos:HeadObject", "cos:PutObject"): [base + "superres/*"],
        CI_ACTIONS: [f"qcs::ci:{trigger.region}:uid/{appid}:bucket/{trigger.bucket}/*"],
        # results are published by a copy from staging, which is then deleted; listed only there
        ("cos:GetObject", "cos:DeleteObject"): [base + "superres/.staging/*"],
        ("cos:GetBucket",): [base + "*"],
        # CLAIM_WORK: the claim is released (deleted) under DEST_PREFIX.claims/, nowhere else
        ("cos:DeleteObject",): [base + "superres/.claims/*"],
    }
    (listing,) = [s for s in policy["statement"] if s["action"] == ["cos:GetBucket"]]
    assert listing["condition"] == {"string_like": {"cos:prefix": "superres/.staging/*"}}
    every_action = [a for s in policy["statement"] for a in s["action"]]
    assert not any(a.endswith("*") for a in every_action)


def test_cam_policy_follows_dest_bucket(tmp_path: Path) -> None:
    text = (ROOT / "serverless.yml").read_text(encoding="utf-8").replace(
        "      DEST_PREFIX:", "      DEST_BUCKET: results-1250000000\n      DEST_PREFIX:", 1)
    deployment = Deployment.from_spec(load_function_spec(_copy_project(tmp_path, serverless_text=text), environ={}))
    resources = [r for s in cam_policy(deployment)["statement"] if "cos:PutObject" in s["action"]
                 for r in s["resource"]]
    assert resources == ["qcs::cos:ap-guangzhou:uid/1250000000:results-1250000000/superres/*"]


def test_cam_policy_grants_staging_with_or_without_formats(tmp_path: Path) -> None:
    def policy(outputs: str) -> dict:
        text = (ROOT / "serverless.yml").read_text(encoding="utf-8").replace(
            "      DEST_PREFIX:", f"      OUTPUTS: {outputs}\n      DEST_PREFIX:", 1)
        folder = tmp_path / outputs.replace(":", "_").replace("/", "_").replace(",", "_")
        folder.mkdir()
        return cam_policy(Deployment.from_spec(load_function_spec(_copy_project(folder, serverless_text=text),
                                                                  environ={})))

    staging = "qcs::cos:ap-guangzhou:uid/1250000000:photos-1250000000/superres/.staging/*"
    with_format = {tuple(s["action"]): s["resource"] for s in policy("x2/:2,x4/:4:webp:80")["statement"]}
    assert with_format[("cos:GetObject", "cos:DeleteObject")] == [staging]
    without = {tuple(s["action"]): s["resource"] for s in policy("x2/:2,x4/:4")["statement"]}
    assert without[("cos:GetObject", "cos:DeleteObject")] == [staging]  # every result is published from staging


def test_cam_policy_follows_each_output_bucket(tmp_path: Path) -> None:
    text = (ROOT / "serverless.yml").read_text(encoding="utf-8").replace(
        "      DEST_PREFIX:", "      OUTPUTS: x2/:2,x4/:4:webp:80@results-1250000000\n      DEST_PREFIX:", 1)
    policy = cam_policy(Deployment.from_spec(load_function_spec(_copy_project(tmp_path, serverless_text=text),
                                                                environ={})))
    grants = {tuple(s["action"]): s["resource"] for s in policy["statement"]}
    base = "qcs::cos:ap-guangzhou:uid/1250000000:"
    assert grants[("cos:HeadObject", "cos:PutObject")] == [base + "photos-1250000000/superres/*",
                                                          base + "results-1250000000/superres/*"]
    assert grants[("cos:GetObject", "cos:DeleteObject")] == [base + "photos-1250000000/superres/.staging/*",
                                                            base + "results-1250000000/superres/.staging/*"]
    assert grants[("cos:DeleteObject",)] == [base + "photos-1250000000/superres/.claims/*"]
