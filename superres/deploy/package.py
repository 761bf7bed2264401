"""The zips `superres deploy` uploads: serverless.yml's src minus its excludes (the function) and the built layer
folder, each deterministic (sorted names, fixed timestamps), so identical files give an identical SHA-256 and a
second deploy finds nothing to change."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

# 1980-01-01, the earliest zip timestamp.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Code.ZipFile limits (base64 of the zip): CreateFunction's docstring says 50 MB, UpdateFunctionCode's 20 MB
# (web-upload-and-deploy-api.md 4.1, "Uncertain"); the smaller one decides, larger code goes through COS.
ZIP_FILE_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Package:
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @property
    def fits_zip_file(self) -> bool:
        """Whether it may go inline as Code.ZipFile (its base64 within the documented limit)."""
        return (len(self.data) + 2) // 3 * 4 <= ZIP_FILE_MAX_BYTES


def zip_files(files: list[tuple[Path, str]]) -> Package:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path, name in sorted(files, key=lambda f: f[1]):
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.external_attr = (0o755 if path.stat().st_mode & 0o111 else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return Package(buffer.getvalue())
