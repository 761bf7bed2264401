"""serverless.yml and layers/serverless.yml, deployed by Tencent's own deployment code with the cloud stubbed.

tests/deploy/harness/deploy.js (pinned package.json; `make test` runs `npm ci` there) loads both files with the
CLI's loader (@serverless/components: ${env:} from .env.example, unset variables become undefined as in the
real CLI), uploads `src` with the CLI's own zip-and-PUT code (@serverless/platform-client-china) to a local
HTTP server, resolves the function's ${output:} references from the layer's deploy outputs, and runs
tencent-component-toolkit's Layer and Scf deploy code with `Capi.request` recording each API body.
These tests assert what would reach Tencent Cloud: the PublishLayerVersion, CreateFunction and CreateTrigger
bodies and the uploaded file lists. The same checks run on broken copies of the project and must fail there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from superres.deploy.layer import build_layer, configured_runtime, python_version_of
from superres.scf.serverless import read_env_files

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).parent / "harness"
FUNCTION_SETTINGS = {"DEST_PREFIX", "MAGNIFY", "ACCEPTED_SUFFIXES", "MAX_INPUT_BYTES", "SKIP_EXISTING", "CLAIM_WORK"}


class DeployFailed(Exception):
    """The harness itself failed: the CLI or the toolkit refused the configuration."""


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (HARNESS / "node_modules" / "tencent-component-toolkit").is_dir():
        pytest.fail("node or tests/deploy/harness/node_modules is missing: run `make test` (it runs npm ci there)")
    return node


def _env(project: Path) -> dict[str, str]:
    return read_env_files(project, environ={})


@pytest.fixture(scope="module")
def layer_build_dir() -> Path:
    """The layer as `make layer` builds it for .env.example's RUNTIME (reused when unchanged)."""
    runtime = configured_runtime(ROOT, environ={})
    return build_layer(python_version=python_version_of(runtime), log=lambda line: None).build_dir


def _project_copy(tmp_path: Path, layer_build_dir: Path) -> Path:
    """serverless.yml, layers/serverless.yml, .env.example and handler/ copied; the built layer linked in."""
    project = tmp_path / "project"
    (project / "layers" / "build").mkdir(parents=True)
    for name in ("serverless.yml", ".env.example", "layers/serverless.yml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "handler", project / "handler")
    (project / "layers" / "build" / layer_build_dir.name).symlink_to(layer_build_dir, target_is_directory=True)
    return project


def deploy(project: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(project), "NODE_ENV": "test"}
    proc = subprocess.run([_node(), str(HARNESS / "deploy.js"), str(project)], capture_output=True, text=True,
                          env=env, timeout=120)
    if proc.returncode != 0:
        reason = [line for line in proc.stderr.splitlines() if line.startswith("deploy harness:")]
        raise DeployFailed(reason[0] if reason else f"exit {proc.returncode}: {proc.stderr[-500:]}")
    return json.loads(proc.stdout)


def _body(result: dict, action: str) -> dict:
    bodies = [c["body"] for c in result["calls"] if c["body"]["Action"] == action]
    assert len(bodies) == 1, f"expected one {action}, got {len(bodies)}"
    return bodies[0]


def check_function(result: dict, env: dict[str, str]) -> None:
    body = _body(result, "CreateFunction")
    assert body["FunctionName"] == f"cos-superres-{env['STAGE']}"
    assert body["Runtime"] == env["RUNTIME"]
    assert body["Handler"] == "index.main_handler" and body["Type"] == "Event"
    assert body.get("Role") == env["SCF_ROLE"], "no execution role: the function would have no keys"
    assert 128 <= body["MemorySize"] <= 3072 and 1 <= body["Timeout"] <= 900
    variables = {v["Key"]: v["Value"] for v in body["Environment"]["Variables"]}
    assert variables.keys() == FUNCTION_SETTINGS
    assert variables["DEST_PREFIX"] == env["DEST_PREFIX"] and variables["MAGNIFY"] == env["MAGNIFY"]
    assert "undefined" not in json.dumps(body), "an ${env:} reference was not set"
    assert re.fullmatch(r"[A-Za-z0-9 ,.\n\u4e00-\u9fff]*", body.get("Description", "")), body.get("Description")
    layer_version = _body(result, "PublishLayerVersion")
    assert body["Layers"] == [{"LayerName": layer_version["LayerName"], "LayerVersion": 1}]
    assert "DeadLetterConfig" not in body


def check_trigger(result: dict, env: dict[str, str]) -> None:
    body = _body(result, "CreateTrigger")
    assert body["Type"] == "cos" and body["FunctionName"] == f"cos-superres-{env['STAGE']}"
    assert body["TriggerName"] == f"{env['BUCKET']}.cos.{env['REGION']}.myqcloud.com"
    assert json.loads(body["TriggerDesc"]) == {"event": "cos:ObjectCreated:*",
                                               "filter": {"Prefix": env["SOURCE_PREFIX"], "Suffix": ""}}
    assert body["Enable"] == "OPEN"
    assert body["Qualifier"] == "$DEFAULT"


def check_layer(result: dict, env: dict[str, str]) -> None:
    body = _body(result, "PublishLayerVersion")
    assert body["LayerName"] == "cos-superres-layer"
    assert body["CompatibleRuntimes"] == [env["RUNTIME"]]
    assert re.fullmatch(r"[A-Za-z0-9 ,.\n\u4e00-\u9fff]*", body["Description"]), body["Description"]
    files = result["deployed"]["cos-superres-layer"]["files"]
    tops = {f.split("/", 1)[0] for f in files}
    assert {"qcloud_cos", "orjson", "crcmod", "requests", "six.py", "xmltodict.py"} <= tops
    assert "python" not in tops  # SCF puts /opt on PYTHONPATH, not /opt/python
    tag = python_version_of(env["RUNTIME"]).replace(".", "")
    extensions = [f for f in files if re.search(r"\.cpython-\d+-.*\.so$", f)]
    assert extensions and all(f".cpython-{tag}-x86_64-linux-gnu.so" in f for f in extensions)


def check_code_upload(result: dict, project: Path) -> None:
    files = result["deployed"]["cos-superres"]["files"]
    expected = sorted(p.relative_to(project / "handler").as_posix() for p in (project / "handler").rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    assert files == expected
    assert "index.py" in files and any(f.startswith("superres_fn/") for f in files)


def check_all(result: dict, project: Path) -> None:
    env = _env(project)
    check_layer(result, env)
    check_function(result, env)
    check_trigger(result, env)
    check_code_upload(result, project)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory, layer_build_dir: Path) -> tuple[dict, Path]:
    project = _project_copy(tmp_path_factory.mktemp("shipped"), layer_build_dir)
    return deploy(project), project


def test_layer_is_published_for_the_runtime_with_packages_at_the_zip_root(shipped: tuple[dict, Path]) -> None:
    result, project = shipped
    check_layer(result, _env(project))


def test_create_function_has_runtime_handler_role_environment_and_the_deployed_layer(
        shipped: tuple[dict, Path]) -> None:
    result, project = shipped
    check_function(result, _env(project))


def test_cos_trigger_watches_the_source_prefix_and_is_enabled(shipped: tuple[dict, Path]) -> None:
    result, project = shipped
    check_trigger(result, _env(project))


def test_code_upload_holds_only_the_handler_folder(shipped: tuple[dict, Path]) -> None:
    result, project = shipped
    check_code_upload(result, project)


def test_layer_is_deployed_before_the_function_that_binds_it(shipped: tuple[dict, Path]) -> None:
    actions = [c["body"]["Action"] for c in shipped[0]["calls"]]
    assert actions.index("PublishLayerVersion") < actions.index("CreateFunction") < actions.index("CreateTrigger")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BREAKAGES = {
    "role from an unset variable": ("serverless.yml", "role: ${env:SCF_ROLE}", "role: ${env:SCF_ROLE_NAME}"),
    "trigger left disabled": ("serverless.yml", "enable: true", "enable: false"),
    "whole project uploaded": ("serverless.yml", "src: ./handler", "src: ./"),
    "caches not excluded": ("serverless.yml", '      - "**/__pycache__/**"\n      - "**/*.pyc"\n', ""),
    "runtime pinned apart from RUNTIME": ("serverless.yml", "runtime: ${env:RUNTIME}", "runtime: Python3.10"),
    "layer runtime apart from RUNTIME": ("layers/serverless.yml", "    - ${env:RUNTIME}", "    - Python3.10"),
    "layer bound from another instance": ("serverless.yml", "cos-superres-layer.version", "other-layer.version"),
    "description with a hyphen": ("serverless.yml", "Super resolves", "Super-resolves"),
    "trigger prefix from the wrong variable": ("serverless.yml", "prefix: ${env:SOURCE_PREFIX}",
                                               "prefix: ${env:DEST_PREFIX}"),
    "yaml syntax error": ("serverless.yml", "inputs:\n", "inputs:\n  - [\n"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_same_checks_fail_on_a_broken_copy(tmp_path: Path, layer_build_dir: Path, breakage: str) -> None:
    project = _project_copy(tmp_path, layer_build_dir)
    name, old, new = BREAKAGES[breakage]
    _edit(project / name, old, new)
    if breakage == "caches not excluded":
        (project / "handler" / "__pycache__").mkdir(exist_ok=True)
        (project / "handler" / "__pycache__" / "index.cpython-312.pyc").write_bytes(b"\0")
    with pytest.raises((AssertionError, DeployFailed)):
        check_all(deploy(project), project)


def test_dead_letter_queue_from_env_reaches_create_function(tmp_path: Path, layer_build_dir: Path) -> None:
    project = _project_copy(tmp_path, layer_build_dir)
    text = (project / "serverless.yml").read_text(encoding="utf-8")
    text = re.sub(r"^  # (deadLetter:|  type:|  name:|  filterType:)", r"  \1", text, flags=re.M)
    (project / "serverless.yml").write_text(text, encoding="utf-8")
    with (project / ".env.example").open("a", encoding="utf-8") as env:
        env.write("DEAD_LETTER_TYPE=CMQ\nDEAD_LETTER_NAME=cos-superres-dlq\nDEAD_LETTER_FILTER_TYPE=\n")
    body = _body(deploy(project), "CreateFunction")
    assert body["DeadLetterConfig"] == {"Type": "CMQ", "Name": "cos-superres-dlq"}
