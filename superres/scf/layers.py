"""Layers the local SCF API knows: PublishLayerVersion and GetLayerVersion (web-upload-and-deploy-api.md 4.3).
Each version is unpacked under DATA/scf/layers/<name>/<version>/; a function binding it runs with that folder
on its path, as SCF mounts layers at /opt."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .api import SCF, ApiError, action

_LAYER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}[A-Za-z0-9]|[A-Za-z]")
ZIP_MAX_BYTES = 50 * 1024 * 1024
# The Python runtimes this stand-in accepts: tencentcloud-sdk-python-scf's CreateFunction list and the runtimes
# of Tencent's own templates (Python3.11-3.13); anything else is InvalidParameterValue.Runtime, as SCF answers.
RUNTIMES = ("Python2.7", "Python3.6", "Python3.7", "Python3.9", "Python3.10", "Python3.11", "Python3.12",
            "Python3.13")  # Code.ZipFile's documented limit; no layer-specific one is documented


@dataclass(frozen=True)
class LayerVersion:
    name: str
    version: int
    runtimes: tuple[str, ...]
    description: str
    license_info: str
    sha256: str
    path: Path
    add_time: str


class LayerRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions: dict[str, list[LayerVersion]] = {}
        self._lock = threading.Lock()

    def publish(self, name: str, runtimes: tuple[str, ...], data: bytes, description: str = "",
                license_info: str = "") -> LayerVersion:
        with self._lock:
            versions = self.versions.setdefault(name, [])
            number = (versions[-1].version if versions else 0) + 1
            target = self.root / name / str(number)
            shutil.rmtree(target, ignore_errors=True)
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(target)
            layer = LayerVersion(name, number, runtimes, description, license_info, hashlib.sha256(data).hexdigest(),
                                 target, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()))
            versions.append(layer)
            return layer

    def get(self, name: str, version: int) -> LayerVersion:
        for layer in self.versions.get(name, []):
            if layer.version == version:
                return layer
        if name not in self.versions:
            raise ApiError("ResourceNotFound.Layer", f"layer {name!r} not found")
        raise ApiError("ResourceNotFound.LayerVersion", f"layer {name!r} has no version {version}")


class LayersApi:
    def __init__(self, layers: LayerRegistry, code_bytes: Callable[..., bytes]) -> None:
        self.layers = layers
        self.code_bytes = code_bytes  # FunctionRegistry.code_bytes: ZipFile or COS, checked as a zip

    @action(SCF, "PublishLayerVersion")
    def publish_layer_version(self, params: dict) -> dict:
        name = str(params.get("LayerName") or "")
        if not _LAYER_NAME_RE.fullmatch(name):
            raise ApiError("InvalidParameterValue.LayerName", f"LayerName {name!r}: 1-64 letters, digits, - and _, "
                           "starting with a letter, not ending with - or _")
        runtimes = params.get("CompatibleRuntimes")
        if not isinstance(runtimes, list) or not runtimes or len(runtimes) > 5:
            raise ApiError("InvalidParameterValue.CompatibleRuntimes", "CompatibleRuntimes: 1 to 5 runtimes")
        unknown = [r for r in runtimes if r not in RUNTIMES]
        if unknown:
            raise ApiError("InvalidParameterValue.CompatibleRuntimes", f"CompatibleRuntimes {unknown} are not "
                           f"runtimes; use {', '.join(r for r in RUNTIMES if r.startswith('Python3.1'))}")
        content = params.get("Content")
        data = self.code_bytes(content if isinstance(content, dict) else {}, limit=ZIP_MAX_BYTES)
        layer = self.layers.publish(name, tuple(map(str, runtimes)), data, str(params.get("Description") or ""),
                                    str(params.get("LicenseInfo") or ""))
        return {"LayerVersion": layer.version}

    @action(SCF, "GetLayerVersion")
    def get_layer_version(self, params: dict) -> dict:
        layer = self.layers.get(str(params.get("LayerName") or ""), int(params.get("LayerVersion") or 0))
        return {"LayerName": layer.name, "LayerVersion": layer.version, "CompatibleRuntimes": list(layer.runtimes),
                "Description": layer.description, "LicenseInfo": layer.license_info, "CodeSha256": layer.sha256,
                "Location": layer.path.as_uri(), "AddTime": layer.add_time, "Status": "Active"}
