"""Which bucket a Host header names, as COS resolves it: `<name>-<appid>.cos.<region>.myqcloud.com`."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import TYPE_CHECKING

from superres.standin.errors import CosError, no_such_bucket

if TYPE_CHECKING:
    from superres.standin.settings import StandinSettings
    from superres.standin.store import ObjectStore

_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-(?P<appid>\d+))\.cos\.(?P<region>[a-z0-9-]+)"
    r"\.(?:myqcloud\.com|tencentcos\.cn)$"
)


class Hosts:
    def __init__(self, settings: StandinSettings, store: ObjectStore) -> None:
        self._settings = settings
        self._store = store

    def bucket(self, host: str) -> str:
        """The bucket a Host names. Any APPID is served (a bucket exists once created); a bucket answers only in
        its own region, as COS does: the one it was created in, or the stand-in's configured region."""
        if self._settings.default_bucket and _is_address(host):
            # IP/Port mode (cos-python-sdk-v5's IP= option): a presigned URL names no bucket in its Host; it
            # reaches the stand-in's configured bucket.
            return self._settings.default_bucket
        bucket, region = self.parts(host)
        home = self._store.bucket_region(bucket) or self._settings.region
        if self._store.bucket_exists(bucket) and region != home:
            raise no_such_bucket(bucket, f"bucket {bucket} is in region {home}; the Host names {region}")
        return bucket

    def address_without_port(self, host: str) -> str | None:
        """For an address Host with a port served as the configured bucket, the host alone, else None."""
        if not (self._settings.default_bucket and _is_address(host)) or host.count(":") != 1:
            return None
        return host.rsplit(":", 1)[0]

    def parts(self, host: str) -> tuple[str, str]:
        """(bucket, region) of a bucket Host, or 400 InvalidURI."""
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        match = _HOST.match(host.lower())
        if match is None:
            expected = f"<BucketName>-{self._settings.appid}.cos.{self._settings.region}.myqcloud.com"
            raise CosError(400, "InvalidURI", f"Host {host!r} is not a COS bucket host; expected {expected}")
        return match["bucket"], match["region"]


@functools.lru_cache(maxsize=256)  # asked on every request; a client sends one Host over and over
def _is_address(host: str) -> bool:
    """A Host naming a machine, not a bucket: an IP address or localhost, with or without a port."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
