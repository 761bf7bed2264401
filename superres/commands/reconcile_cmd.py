"""`superres reconcile`: which sources have no result, or a stale one, per output (a report, and backfill input)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import IO

import click
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from ..backfill import describe_cos_error
from ..backfill.confirm import find_work
from ..backfill.plan import outputs_for
from ..backfill.reconcile import report_line
from .backfill_cmd import resolve_where, where_options


@click.command()
@where_options
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report here [default: stdout].")
def reconcile(bucket: str | None, prefix: str | None, region: str | None, endpoint: str | None,
              inventory: str | None, from_report: Path | None, serverless: Path, out_path: Path | None) -> None:
    """Report the sources whose result is missing, or not made from the source's current version by the current
    rule, for any output, by merging the sorted sources (a listing, --inventory or --from-report) with one listing
    of each destination prefix, then reading each existing result's stamp (one HEAD; no HEAD of a source). Only
    what the function would process counts (suffix, size, ...).

    The report is JSON lines in key order, {"key", "size", "etag", "last_modified", "state": "missing" |
    "stale", "results": [destination keys]}; `superres backfill --from-report FILE` does exactly that work.
    A JSON summary goes to stderr. Exit status 0 (also when something is missing).
    """
    where = resolve_where(bucket, prefix, region, endpoint, inventory, from_report, serverless)
    outputs = outputs_for(where.settings, where.bucket)
    counts: Counter[str] = Counter()
    sink: IO[str]
    try:
        sink = out_path.open("w", encoding="utf-8") if out_path else sys.stdout
    except OSError as exc:
        raise click.BadParameter(f"cannot write {out_path}: {exc.strerror or exc}", param_hint="--out") from None
    try:
        for item in find_work(where.client, where.source.objects(None), outputs, where.settings,
                              bucket=where.bucket, region=where.region, prefix=where.prefix):
            counts["sources"] += 1
            if item.should_process:
                counts[item.reason] += 1
                sink.write(report_line(item))
            elif item.reason == "already_done":
                counts["done"] += 1
            else:
                counts["not_for_the_function"] += 1
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"reconcile stopped: {exc}") from exc
    except (CosServiceError, CosClientError) as exc:
        raise click.ClickException(f"reconcile stopped: {describe_cos_error(exc, endpoint)}") from exc
    finally:
        if out_path:
            sink.close()
    summary = {"bucket": where.bucket, "prefix": where.prefix, "source": where.source.description,
               "outputs": [o.prefix for o in outputs], "sources": counts["sources"], "done": counts["done"],
               "missing": counts["missing"], "stale": counts["stale"],
               "not_for_the_function": counts["not_for_the_function"]}
    click.echo(json.dumps(summary, ensure_ascii=False), err=True)
