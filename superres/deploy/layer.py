"""The SCF layer: the function's runtime dependencies, built for SCF's Python on Linux x86_64.

What SCF needs, and what goes wrong when it is ignored (shared/spec/tencent-platform-facts.md 2.7,
peer-systems.md section 2 lesson 4):

- SCF unpacks a layer into /opt and puts `/var/user:/opt` on PYTHONPATH, so packages sit at the zip ROOT
  (not under `python/`, the AWS Lambda convention).
- The wheels must match SCF's interpreter (cp312 for the Python3.12 runtime) and Linux x86_64 (manylinux),
  whatever machine builds the layer: pip gets `--platform/--python-version/--implementation` and
  `--only-binary=:all:`, so nothing is compiled for the build machine by accident.
- crcmod, a dependency of cos-python-sdk-v5, is published as a source distribution only, which
  `--only-binary=:all:` refuses. We repack its pure-Python package (the `python3/crcmod` folder of the
  sdist, without the C extension) as a `py3-none-any` wheel in a local folder pip also looks in; crcmod then
  runs its pure-Python CRC code (`crcmod._usingExtension` is False). Only the SDK's resumable downloader uses
  it, which the function never calls.

One pip resolve installs everything, so versions come from the requirements' own metadata.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..scf.serverless import read_env_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAYERS_DIR = PROJECT_ROOT / "layers"
REQUIREMENTS = LAYERS_DIR / "requirements.txt"
LAYER_NAME = "cos-superres-layer"
# One setting drives the runtime: RUNTIME in .env (.env.example ships the default) is serverless.yml's
# `runtime`, the layer's `runtimes` and its build folder, and the interpreter the layer's wheels are built for.
# Why Python3.12 is the default: docs/deploy.md, "Choosing the runtime".
DEFAULT_RUNTIME = "Python3.12"
_RUNTIME_RE = re.compile(r"Python(?P<version>3\.\d{1,2})")
# SCF's Python runtimes run on x86_64 Linux with glibc >= 2.17: manylinux2014 and older tags load there.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
# Bump when the build recipe changes, so a cached build is not reused.
_RECIPE_VERSION = "1"
# Folders and files that only cost space in a layer: tests, caches, console scripts, install bookkeeping.
_STRIP_DIRS = frozenset({"__pycache__", "tests", "test", "SelfTest", "bin"})
_STRIP_SUFFIXES = (".pyc", ".pyo")
_STRIP_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_EXT_RE = re.compile(r"\.cpython-(?P<ver>\d+)-(?P<plat>[^.]+)\.so$")
# 1980-01-01, the earliest zip timestamp: identical inputs give an identical zip.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class LayerBuildError(RuntimeError):
    """pip failed, or the result would not load on SCF."""


@dataclass(frozen=True)
class LayerBuild:
    zip_path: Path
    build_dir: Path
    python_version: str
    zip_bytes: int
    unpacked_bytes: int
    files: int
    distributions: tuple[str, ...]  # "name==version", sorted
    reused: bool = False

    def summary(self) -> str:
        how = "reused (inputs unchanged)" if self.reused else "built"
        return (f"{self.zip_path}: {self.zip_bytes / 1e6:.2f} MB zipped, {self.unpacked_bytes / 1e6:.2f} MB unpacked, "
                f"{self.files} files, Python {self.python_version} manylinux x86_64, {how}\n"
                f"  {', '.join(self.distributions)}")


def configured_runtime(root: Path = PROJECT_ROOT, environ: Mapping[str, str] | None = None) -> str:
    """RUNTIME from .env.example, .env and the environment (later wins), as serverless.yml resolves it."""
    return read_env_files(root, environ).get("RUNTIME") or DEFAULT_RUNTIME


def python_version_of(runtime: str) -> str:
    """'Python3.12' -> '3.12'; anything else is refused with the form SCF expects."""
    match = _RUNTIME_RE.fullmatch(runtime)
    if match is None:
        raise LayerBuildError(f"RUNTIME must be an SCF Python runtime such as {DEFAULT_RUNTIME}; got {runtime!r}")
    return match.group("version")


# The shipped default's interpreter (.env.example's RUNTIME).
SCF_PYTHON_VERSION = python_version_of(DEFAULT_RUNTIME)


def default_zip_path(python_version: str = SCF_PYTHON_VERSION) -> Path:
    return LAYERS_DIR / "dist" / f"{LAYER_NAME}-py{python_version.replace('.', '')}.zip"


def default_build_dir(python_version: str = SCF_PYTHON_VERSION) -> Path:
    """The unpacked layer: layers/serverless.yml deploys ./build/${env:RUNTIME}, i.e. this folder."""
    return LAYERS_DIR / "build" / f"Python{python_version}"


def build_layer(
    *,
    python_version: str | None = None,
    zip_path: Path | None = None,
    build_dir: Path | None = None,
    requirements: Path = REQUIREMENTS,
    reuse: bool = True,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> LayerBuild:
    """Install `requirements` for CPython `python_version` on manylinux x86_64 into `build_dir`, zip it.

    `python_version` defaults to the configured RUNTIME's. With `reuse`, a previous build with the same inputs
    (requirements, Python version, recipe) is kept.
    """
    if python_version is None:
        python_version = python_version_of(configured_runtime())
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise LayerBuildError(f"--python-version must look like 3.10; got {python_version!r}")
    zip_path = Path(zip_path or default_zip_path(python_version))
    build_dir = Path(build_dir or default_build_dir(python_version))
    manifest_path = zip_path.with_suffix(".json")
    fingerprint = _fingerprint(requirements, python_version)
    if reuse and zip_path.is_file() and build_dir.is_dir() and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("fingerprint") == fingerprint:
            return _describe(zip_path, build_dir, python_version, manifest["distributions"], reused=True)

    with tempfile.TemporaryDirectory(prefix="superres-layer-") as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        log(f"crcmod: repacking the sdist's pure-Python package as a py3-none-any wheel in {wheels}")
        _crcmod_wheel(_requirement_pin(requirements, "crcmod"), wheels, Path(tmp))
        staging = Path(tmp) / "layer"
        log(f"pip: installing {requirements.name} for CPython {python_version} manylinux x86_64, wheels only")
        _pip_install(requirements, staging, python_version, wheels)
        _strip(staging)
        distributions = _distributions(staging)
        _check_extensions(staging, python_version)
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, build_dir)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    _zip_dir(build_dir, zip_path)
    manifest_path.write_text(json.dumps({"fingerprint": fingerprint, "python_version": python_version,
                                         "platforms": list(PLATFORMS), "distributions": distributions}, indent=2)
                             + "\n", encoding="utf-8")
    return _describe(zip_path, build_dir, python_version, distributions, reused=False)


def _pip_install(requirements: Path, target: Path, python_version: str, find_links: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
        "--python-version", python_version, *(arg for p in PLATFORMS for arg in ("--platform", p)),
        "--find-links", str(find_links), "--requirement", str(requirements),
    ]
    _run(command)


def _crcmod_wheel(pin: str, wheels: Path, tmp: Path) -> Path:
    """Download crcmod's sdist and write its `python3/crcmod` package (no C extension) as a wheel."""
    version = pin.partition("==")[2] or None
    spec = f"crcmod=={version}" if version else "crcmod"
    sdists = tmp / "sdist"
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
          "--no-binary=:all:", "--dest", str(sdists), spec])
    archive = next(sdists.glob("crcmod-*.tar.gz"), None)
    if archive is None:
        raise LayerBuildError(f"pip download {spec} produced no crcmod-*.tar.gz in {sdists}")
    version = archive.name.removeprefix("crcmod-").removesuffix(".tar.gz")
    files: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            # crcmod-1.7/python3/crcmod/<module>.py, minus its self-test module
            if member.isfile() and parts[1:3] == ["python3", "crcmod"] and len(parts) == 4 \
                    and parts[3].endswith(".py") and parts[3] != "test.py":
                handle = tar.extractfile(member)
                assert handle is not None
                files[f"crcmod/{parts[3]}"] = handle.read()
    if "crcmod/__init__.py" not in files or "crcmod/_crcfunpy.py" not in files:
        raise LayerBuildError(f"{archive.name} has no pure-Python python3/crcmod package")
    dist_info = f"crcmod-{version}.dist-info"
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: crcmod\nVersion: {version}\n"
        "Summary: CRC generator (pure-Python build repacked by cos-superres; no C extension)\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: cos-superres\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [f"{name},sha256={_urlsafe_sha256(data)},{len(data)}" for name, data in sorted(files.items())]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    wheel = wheels / f"crcmod-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data)
    return wheel


def _strip(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        if path.is_dir() and path.name in _STRIP_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and (path.name.endswith(_STRIP_SUFFIXES)
                                 or (path.parent.name.endswith(".dist-info") and path.name in _STRIP_DIST_INFO)):
            path.unlink()


def _check_extensions(root: Path, python_version: str) -> None:
    """Every versioned extension module must be for the target interpreter on x86_64 Linux."""
    want = python_version.replace(".", "")
    wrong = [str(p.relative_to(root)) for p in root.rglob("*.so")
             if (m := _EXT_RE.search(p.name)) and (m.group("ver") != want or "x86_64" not in m.group("plat"))]
    if wrong:
        raise LayerBuildError(f"extension modules built for another interpreter or platform: {', '.join(wrong)}")


def _distributions(root: Path) -> list[str]:
    found = []
    for dist_info in root.glob("*.dist-info"):
        fields = dict(line.split(": ", 1) for line in (dist_info / "METADATA").read_text(encoding="utf-8")
                      .split("\n\n", 1)[0].splitlines() if ": " in line)
        found.append(f"{fields.get('Name', dist_info.name)}=={fields.get('Version', '?')}")
    return sorted(found, key=str.lower)


def _zip_dir(root: Path, zip_path: Path) -> None:
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(root.rglob("*")):
            name = path.relative_to(root).as_posix()
            if path.is_dir():
                info = zipfile.ZipInfo(name + "/", _ZIP_TIME)
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info = zipfile.ZipInfo(name, _ZIP_TIME)
                info.external_attr = (0o100755 if os.access(path, os.X_OK) else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
    tmp.replace(zip_path)


def _describe(zip_path: Path, build_dir: Path, python_version: str, distributions: Sequence[str], *,
              reused: bool) -> LayerBuild:
    files = [p for p in build_dir.rglob("*") if p.is_file()]
    return LayerBuild(zip_path=zip_path, build_dir=build_dir, python_version=python_version,
                      zip_bytes=zip_path.stat().st_size, unpacked_bytes=sum(p.stat().st_size for p in files),
                      files=len(files), distributions=tuple(distributions), reused=reused)


def _fingerprint(requirements: Path, python_version: str) -> str:
    text = requirements.read_text(encoding="utf-8")
    return hashlib.sha256(f"{_RECIPE_VERSION}\n{python_version}\n{PLATFORMS}\n{text}".encode()).hexdigest()


def _requirement_pin(requirements: Path, name: str) -> str:
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if re.match(rf"^{re.escape(name)}\b", line, re.IGNORECASE):
            return line
    return name


def _urlsafe_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _run(command: list[str]) -> None:
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise LayerBuildError(f"{' '.join(command[2:5])} ... failed (exit {proc.returncode}):\n" + "\n".join(tail))
