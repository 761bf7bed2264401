"""Option values the commands share, checked before anything is sent: a bucket is '<name>-<appid>', a region
looks like ap-guangzhou. A value that cannot be right is a usage error (exit 2) naming the option and the form."""

from __future__ import annotations

import click

from ..scf.serverless import BUCKET_RE, REGION_RE


def bucket_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not BUCKET_RE.match(value):
        raise click.BadParameter(f"{value!r} is not a COS bucket name: it is '<name>-<appid>', e.g. "
                                 "photos-1250000000 (lowercase letters, digits and '-', then the account's APPID)")
    return value


def region_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not REGION_RE.match(value):
        raise click.BadParameter(f"{value!r} is not a Tencent Cloud region: it looks like ap-guangzhou")
    return value
