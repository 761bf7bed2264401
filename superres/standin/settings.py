"""Configuration of the local COS + Cloud Infinite stand-in."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from superres.standin.cam import Policy

# Documented demo keys: the stand-in accepts these out of the box so `superres local` works with no setup.
# They guard nothing real; a deployment uses its own keys against the real COS.
DEMO_SECRET_ID = "AKIDsuperresLOCALdemo0000000000000000"
DEMO_SECRET_KEY = "superresLOCALdemoSecretKey000000"

_APPID = re.compile(r"^\d{1,20}$")
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_BUCKET_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True)
class Credential:
    """One SecretId/SecretKey pair; `token` makes it a temporary key that must send its session token.

    A key STS issued also carries its CAM policies (every one must allow a request) and its expiry; None:
    a key with every right on the stand-in (the account's own keys)."""

    secret_id: str
    secret_key: str
    token: str | None = None
    policies: tuple[Policy, ...] | None = None
    expires: int | None = None

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        return f"Credential(secret_id={self.secret_id!r}, secret_key=***, token={'***' if self.token else None})"


def _default_sr_jobs() -> int:
    # SR saturates every core it is given; one job per two cores leaves room for HTTP and disk work.
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class StandinSettings:
    data_dir: Path
    appid: str = "1250000000"
    region: str = "ap-guangzhou"
    credentials: tuple[Credential, ...] = (Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),)
    engine_name: str = "span"
    detect_url_allow_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    detect_url_max_bytes: int = 5 * 1024 * 1024
    detect_url_timeout_s: float = 10.0
    max_sr_jobs: int = field(default_factory=_default_sr_jobs)
    # The bucket (name-appid) a Host without a bucket reaches: an IP/Port-mode request such as a presigned URL
    # made by cos-python-sdk-v5 with IP= (None: such a Host answers 400 InvalidURI).
    default_bucket: str | None = None
    # CAM roles AssumeRole can take: (role name, policy JSON), e.g. the function's execution role.
    roles: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not _APPID.match(self.appid):
            raise ValueError(f"appid must be digits, got {self.appid!r}")
        if not _REGION.match(self.region):
            raise ValueError(f"region must look like 'ap-guangzhou', got {self.region!r}")
        if not self.credentials:
            raise ValueError("at least one credential is required")
        if self.max_sr_jobs < 1:
            raise ValueError("max_sr_jobs must be >= 1")

    def bucket_full_name(self, name: str) -> str:
        """`name` or `name-appid` -> `name-appid` (the form COS uses in Host headers and Pic-Operations)."""
        suffix = f"-{self.appid}"
        base = name[: -len(suffix)] if name.endswith(suffix) else name
        if not _BUCKET_NAME.match(base):
            raise ValueError(f"bucket name must be lowercase letters, digits and '-', got {name!r}")
        return base + suffix

    def bucket_host(self, bucket: str) -> str:
        """The virtual host a client sends for `bucket` (name-appid)."""
        return f"{bucket}.cos.{self.region}.myqcloud.com"
