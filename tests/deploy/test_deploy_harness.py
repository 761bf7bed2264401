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
from click.testing import CliRunner

from superres.cli import main
from superres.deploy.layer import build_layer, configured_runtime, python_version_of
from superres.deploy.project import load_project
from superres.scf.serverless import read_env_files

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).parent / "harness"
FUNCTION_SETTINGS = {"DEST_PREFIX", "MAGNIFY", "ACCEPTED_SUFFIXES", "MAX_INPUT_BYTES", "SKIP_EXISTING", "CLAIM_WORK",
                    "RESULT_NAMES"}


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
    assert body["FunctionName"] == f"cos-superres-{env['STAGE']}", "function name"
    assert body["Runtime"] == env["RUNTIME"], f"runtime {body['Runtime']} is not RUNTIME {env['RUNTIME']}"
    assert body["Handler"] == "index.main_handler" and body["Type"] == "Event", "handler"
    assert body.get("Role") == env["SCF_ROLE"], "no execution role: the function would have no keys"
    assert 128 <= body["MemorySize"] <= 3072 and 1 <= body["Timeout"] <= 900, "memory or timeout"
    variables = {v["Key"]: v["Value"] for v in body["Environment"]["Variables"]}
    assert variables.keys() == FUNCTION_SETTINGS, "environment variables"
    assert variables["DEST_PREFIX"] == env["DEST_PREFIX"] and variables["MAGNIFY"] == env["MAGNIFY"], "settings"
    assert "undefined" not in json.dumps(body), "an ${env:} reference was not set"
    assert re.fullmatch(r"[A-Za-z0-9 ,.\n\u4e00-\u9fff]*", body.get("Description", "")), "description charset"
    layer_version = _body(result, "PublishLayerVersion")
    assert body["Layers"] == [{"LayerName": layer_version["LayerName"], "LayerVersion": 1}], "bound layer"
    assert "DeadLetterConfig" not in body, "dead-letter queue"


def check_trigger(result: dict, env: dict[str, str]) -> None:
    body = _body(result, "CreateTrigger")
    assert body["Type"] == "cos" and body["FunctionName"] == f"cos-superres-{env['STAGE']}", "trigger type"
    assert body["TriggerName"] == f"{env['BUCKET']}.cos.{env['REGION']}.myqcloud.com", "trigger bucket"
    assert json.loads(body["TriggerDesc"]) == {"event": "cos:ObjectCreated:*",
                                               "filter": {"Prefix": env["SOURCE_PREFIX"], "Suffix": ""}}, \
        "trigger prefix is not SOURCE_PREFIX"
    assert body["Enable"] == "OPEN", "trigger not enabled"
    assert body["Qualifier"] == "$DEFAULT", "trigger qualifier"


def check_layer(result: dict, env: dict[str, str]) -> None:
    body = _body(result, "PublishLayerVersion")
    assert body["LayerName"] == "cos-superres-layer", "layer name"
    assert body["CompatibleRuntimes"] == [env["RUNTIME"]], f"layer runtimes {body['CompatibleRuntimes']} not RUNTIME"
    assert re.fullmatch(r"[A-Za-z0-9 ,.\n\u4e00-\u9fff]*", body["Description"]), "layer description charset"
    files = result["deployed"]["cos-superres-layer"]["files"]
    tops = {f.split("/", 1)[0] for f in files}
    assert {"qcloud_cos", "orjson", "crcmod", "requests", "six.py", "xmltodict.py"} <= tops, "layer packages"
    assert "python" not in tops, "packages under python/"  # SCF puts /opt on PYTHONPATH, not /opt/python
    tag = python_version_of(env["RUNTIME"]).replace(".", "")
    extensions = [f for f in files if re.search(r"\.cpython-\d+-.*\.so$", f)]
    assert extensions and all(f".cpython-{tag}-x86_64-linux-gnu.so" in f for f in extensions), "layer extensions"


def check_code_upload(result: dict, project: Path) -> None:
    files = result["deployed"]["cos-superres"]["files"]
    expected = sorted(p.relative_to(project / "handler").as_posix() for p in (project / "handler").rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    assert files == expected, "uploaded files are not handler/ without caches"
    assert "index.py" in files and any(f.startswith("superres_fn/") for f in files), "handler files"


CHECKS = {"layer": check_layer, "function": check_function, "trigger": check_trigger}


def check_all(result: dict, project: Path) -> None:
    env = _env(project)
    for check in CHECKS.values():
        check(result, env)
    check_code_upload(result, project)


def caught_by(project: Path) -> str:
    """Which check refuses this copy: 'deploy: <the harness's reason>' when Tencent's code itself fails, else
    '<check>: <its message>' of the first check that fails, else 'nothing'."""
    try:
        result = deploy(project)
    except DeployFailed as exc:
        return f"deploy: {exc}"
    env = _env(project)
    for name, check in [*CHECKS.items(), ("code", lambda r, e: check_code_upload(r, project))]:
        try:
            check(result, env)
        except AssertionError as exc:
            return f"{name}: {str(exc).splitlines()[0]}"
    return "nothing"


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


# What tencent-component-toolkit adds to CreateFunction that SCF defaults to anyway (public network on, no L5, no
# dependency install, 512 MB disk, code mode); and the code itself, which it sends as an object in the platform's
# bucket where `superres deploy` sends Code.ZipFile / Content.ZipFile (compared by file list instead).
TOOLKIT_DEFAULTS = {"DeployMode", "PublicNetConfig", "L5Enable", "InstallDependency", "DiskSize"}
CODE_KEYS = {"Code", "Content"}


def _dry_run_bodies(project: Path) -> dict[str, dict]:
    no_keys = {"TENCENTCLOUD_SECRETID": None, "TENCENTCLOUD_SECRETKEY": None, "SUPERRES_SCF_ENDPOINT": None}
    result = CliRunner().invoke(main, ["deploy", "--dry-run", "--project", str(project)], env=no_keys)
    assert result.exit_code == 0, result.output
    bodies = {}
    for line in result.stdout.splitlines():
        action, _, body = line.removeprefix("would call ").partition(" ")
        bodies[action] = json.loads(body)
    return bodies


def test_superres_deploy_dry_run_sends_the_bodies_tencents_toolkit_sends(shipped: tuple[dict, Path]) -> None:
    result, project = shipped
    ours = _dry_run_bodies(project)
    for action in ("PublishLayerVersion", "CreateFunction", "CreateTrigger"):
        theirs = {k: v for k, v in _body(result, action).items()
                  if k not in {"Action", "Version", *TOOLKIT_DEFAULTS, *CODE_KEYS}}
        assert {k: v for k, v in ours[action].items() if k not in CODE_KEYS} == theirs, action
    loaded = load_project(project, environ={})
    assert sorted(name for _, name in loaded.code_files()) == sorted(result["deployed"]["cos-superres"]["files"])
    assert sorted(name for _, name in loaded.layer_files()) == sorted(
        result["deployed"]["cos-superres-layer"]["files"])


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# breakage -> (file, old text, new text, what catches it: the failing check and the start of its message)
BREAKAGES = {
    "role from an unset variable": ("serverless.yml", "role: ${env:SCF_ROLE}", "role: ${env:SCF_ROLE_NAME}",
                                    "function: no execution role"),
    "trigger left disabled": ("serverless.yml", "enable: true", "enable: false", "trigger: trigger not enabled"),
    "whole project uploaded": ("serverless.yml", "src: ./handler", "src: ./",
                               "code: uploaded files are not handler/"),
    "caches not excluded": ("serverless.yml", '      - "**/__pycache__/**"\n      - "**/*.pyc"\n', "",
                            "code: uploaded files are not handler/"),
    "runtime pinned apart from RUNTIME": ("serverless.yml", "runtime: ${env:RUNTIME}", "runtime: Python3.10",
                                          "function: runtime Python3.10 is not RUNTIME"),
    "layer runtime apart from RUNTIME": ("layers/serverless.yml", "    - ${env:RUNTIME}", "    - Python3.10",
                                         "layer: layer runtimes ['Python3.10'] not RUNTIME"),
    "layer bound from another instance": ("serverless.yml", "cos-superres-layer.version", "other-layer.version",
                                          "deploy: deploy harness: Error: unresolved engine variables"),
    "description with a hyphen": ("serverless.yml", "Super resolves", "Super-resolves",
                                  "function: description charset"),
    "trigger prefix from the wrong variable": ("serverless.yml", "prefix: ${env:SOURCE_PREFIX}",
                                               "prefix: ${env:DEST_PREFIX}",
                                               "trigger: trigger prefix is not SOURCE_PREFIX"),
    "yaml syntax error": ("serverless.yml", "inputs:\n", "inputs:\n  - [\n",
                          "deploy: deploy harness: Error: The serverless.yml file has incorrect format"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_each_broken_copy_is_caught_by_its_check(tmp_path: Path, layer_build_dir: Path, breakage: str) -> None:
    project = _project_copy(tmp_path, layer_build_dir)
    name, old, new, expected = BREAKAGES[breakage]
    _edit(project / name, old, new)
    if breakage == "caches not excluded":
        (project / "handler" / "__pycache__").mkdir(exist_ok=True)
        (project / "handler" / "__pycache__" / "index.cpython-312.pyc").write_bytes(b"\0")
    assert caught_by(project).startswith(expected)


def test_the_stubbed_cloud_api_refuses_an_action_it_does_not_model() -> None:
    script = ("const {answer} = require(process.argv[1]); "
              "console.log(JSON.stringify(answer({Action: 'UpdateAlias', FunctionName: 'f'})));")
    proc = subprocess.run([_node(), "-e", script, str(HARNESS / "deploy.js")], capture_output=True, text=True,
                          timeout=60, check=True)
    assert json.loads(proc.stdout)["Error"]["Code"] == "InvalidAction"


def test_dead_letter_queue_from_env_reaches_create_function(tmp_path: Path, layer_build_dir: Path) -> None:
    project = _project_copy(tmp_path, layer_build_dir)
    text = (project / "serverless.yml").read_text(encoding="utf-8")
    text = re.sub(r"^  # (deadLetter:|  type:|  name:|  filterType:)", r"  \1", text, flags=re.M)
    (project / "serverless.yml").write_text(text, encoding="utf-8")
    with (project / ".env.example").open("a", encoding="utf-8") as env:
        env.write("DEAD_LETTER_TYPE=CMQ\nDEAD_LETTER_NAME=cos-superres-dlq\nDEAD_LETTER_FILTER_TYPE=\n")
    body = _body(deploy(project), "CreateFunction")
    assert body["DeadLetterConfig"] == {"Type": "CMQ", "Name": "cos-superres-dlq"}
