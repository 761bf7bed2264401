"""A temporary copy of the project (serverless.yml, layers/serverless.yml, .env.example, cam-policy.json,
handler/), with the built layer linked in, for the deploy tests to change without touching the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_copy(tmp_path: Path, layer_build_dir: Path | None = None, *, env: str | None = None) -> Path:
    """`env`: the copy's own .env (its text); the layer build folder is linked as layers/build/<its name>."""
    project = tmp_path / "project"
    (project / "layers" / "build").mkdir(parents=True)
    for name in ("serverless.yml", ".env.example", "cam-policy.json", "layers/serverless.yml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "handler", project / "handler", ignore=shutil.ignore_patterns("__pycache__"))
    if layer_build_dir is not None:
        (project / "layers" / "build" / layer_build_dir.name).symlink_to(layer_build_dir, target_is_directory=True)
    if env is not None:
        (project / ".env").write_text(env, encoding="utf-8")
    return project


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
