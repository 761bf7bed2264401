"""The layer package: built by `superres layer build`, unzipped next to the handler, and nothing else.

The layer is built for two versions: the default RUNTIME (.env.example, Python3.12: `make layer` installs
cp312 wheels) and the interpreter running the tests (3.11 here), which is also an SCF runtime one may choose.
Both builds are checked for their contents: packages at the zip root, extensions for that interpreter, no
caches or tests. A 3.12 interpreter is not installed here and cp312 extensions do not load on 3.11, so the
handler runs from the second build: the same command and code path (`superres layer build --python-version
X.Y --out ...`: same requirements, same manylinux x86_64 platform wheels, same crcmod repack and stripping),
under `python -I -S` with only the code folder and the unzipped layer on sys.path, against the stand-in
(bicubic engine).

Building needs PyPI (pip's cache makes later builds quick); a build whose inputs did not change is reused.
"""

from __future__ import annotations

import io
import json
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from superres.cli import main
from superres.deploy.layer import LAYERS_DIR, SCF_PYTHON_VERSION, default_build_dir, default_zip_path
from superres.scf.container import ContainerOptions, FunctionContainer
from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"
pytestmark = pytest.mark.skipif(sys.platform != "linux" or platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the layer holds manylinux x86_64 wheels, loadable only there")


def _build(python_version: str, zip_path: Path, build_dir: Path) -> Path:
    result = CliRunner().invoke(main, ["layer", "build", "--python-version", python_version, "--out", str(zip_path),
                                       "--build-dir", str(build_dir)])
    assert result.exit_code == 0, result.output
    assert str(zip_path) in result.output and " MB zipped" in result.output
    return zip_path


@pytest.fixture(scope="module")
def scf_zip() -> Path:
    """The real artifact: `make layer`'s zip for the default RUNTIME, in the folder layers/serverless.yml deploys."""
    return _build(SCF_PYTHON_VERSION, default_zip_path(), default_build_dir())


@pytest.fixture(scope="module")
def local_zip() -> Path:
    """The same build for the interpreter running the tests, kept apart from the deployable one."""
    tag = HERE.replace(".", "")
    return _build(HERE, LAYERS_DIR / "build" / "test" / f"cos-superres-layer-py{tag}.zip",
                  LAYERS_DIR / "build" / "test" / f"py{tag}")


@pytest.fixture
def var_user_and_opt(tmp_path: Path, local_zip: Path) -> tuple[Path, Path]:
    """handler/ copied as SCF's /var/user, the zip unpacked as /opt."""
    code, opt = tmp_path / "var" / "user", tmp_path / "opt"
    shutil.copytree(ROOT / "handler", code, ignore=shutil.ignore_patterns("__pycache__"))
    with zipfile.ZipFile(local_zip) as zf:
        zf.extractall(opt)
    return code, opt


@pytest.mark.parametrize("which", ["default runtime", "test interpreter"])
def test_zip_has_packages_at_root_built_for_its_python(which: str, request: pytest.FixtureRequest) -> None:
    zip_path, python_version = ((request.getfixturevalue("scf_zip"), SCF_PYTHON_VERSION) if which == "default runtime"
                                else (request.getfixturevalue("local_zip"), HERE))
    names = zipfile.ZipFile(zip_path).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {"qcloud_cos", "orjson", "crcmod", "requests", "Crypto", "xmltodict.py", "six.py"} <= tops
    assert "python" not in tops  # SCF puts /opt on PYTHONPATH, not /opt/python
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n or "/SelfTest/" in n]
    assert not [n for n in names if n.endswith(".dist-info/RECORD")]
    tag = python_version.replace(".", "")
    versioned = [n for n in names if re.search(r"\.cpython-\d+-.*\.so$", n)]
    assert versioned and all(f".cpython-{tag}-x86_64-linux-gnu.so" in n for n in versioned)
    # crcmod is the pure-Python package: no C extension, no self-test module.
    assert not [n for n in names if n.startswith("crcmod/") and (n.endswith(".so") or n.endswith("test.py"))]


def test_rebuild_with_same_inputs_is_reused(local_zip: Path) -> None:
    before = local_zip.stat().st_mtime_ns
    result = CliRunner().invoke(main, ["layer", "build", "--python-version", HERE, "--out", str(local_zip),
                                       "--build-dir", str(local_zip.parent / f"py{HERE.replace('.', '')}")])
    assert result.exit_code == 0 and "reused" in result.output
    assert local_zip.stat().st_mtime_ns == before


def test_index_imports_with_only_code_and_layer_on_the_path(var_user_and_opt: tuple[Path, Path]) -> None:
    code, opt = var_user_and_opt
    probe = (
        "import sys, json; sys.path[:0] = sys.argv[1:3]; import index, qcloud_cos, orjson, crcmod\n"
        "print(json.dumps({'path': sys.path, 'files': [m.__file__ for m in (index, qcloud_cos, orjson, crcmod)],"
        " 'crc_ext': sys.modules['crcmod.crcmod']._usingExtension}))"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(code), str(opt)], capture_output=True,
                          text=True, env={"DEST_PREFIX": "superres/", "PATH": "/usr/bin:/bin"}, cwd=code)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert not [p for p in seen["path"] if "site-packages" in p]
    index_file, *deps = seen["files"]
    assert index_file == str(code / "index.py")
    assert all(f.startswith(str(opt)) for f in deps)
    assert seen["crc_ext"] is False


def test_handler_from_the_layer_processes_an_upload(tmp_path: Path, var_user_and_opt: tuple[Path, Path]) -> None:
    code, opt = var_user_and_opt
    with LocalStack(StackOptions(data_dir=tmp_path / "standin", engine=load_engine("bicubic"), trigger=False)) as stack:
        buf = io.BytesIO()
        Image.new("RGB", (48, 32), (30, 120, 200)).save(buf, "JPEG")
        client = stack.client()
        etag = client.put_object(Bucket="photos-1250000000", Key="uploads/astronaut.jpg", Body=buf.getvalue())["ETag"]
        spec = replace(stack.spec, src=code)
        options = ContainerOptions(env=stack.function_env(), python=sys.executable, layer_dirs=(opt,), isolated=True,
                                   appid=stack.settings.appid)
        event = json.loads((ROOT / "events" / "put_single.json").read_text(encoding="utf-8"))
        event["Records"][0]["cos"]["cosObject"]["meta"]["ETag"] = etag  # the version stored here, not the sample's
        with FunctionContainer(spec, options) as container:
            result = container.invoke(event)
        assert result.ok, (result.error, result.logs)
        assert result.return_value["processed"] == 1
        head = client.head_object(Bucket="photos-1250000000", Key="superres/uploads/astronaut.jpg.png")
        assert int(head["Content-Length"]) > 0
