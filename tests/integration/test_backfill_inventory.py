"""Backfill at scale against the stand-in (bicubic engine): sources from a COS Inventory report (manifest.json +
gzip CSV, URL-encoded keys, as COS writes them), the work found by diffing with one listing of the destination
prefix (no HEAD of a source; each existing result read once for its stamp), the freshness rule, --max-calls as a
hard cap kept in the checkpoint, and `superres reconcile` as a report and as backfill input."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from superres.backfill.inventory import write_report
from superres.backfill.plan import ListedObject
from superres.cli import main
from superres.stack import LocalStack
from tests.integration.request_log import RequestLog

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "photos-1250000000"
T0 = time.time() - 3600  # the sources' LastModified in the reports: an hour ago


@pytest.fixture(scope="module")
def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def requests_seen() -> Iterator[RequestLog]:
    with RequestLog.attached() as log:
        yield log


def _cli(stack: LocalStack, command: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [command, "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                       stack.standin.endpoint_url, *args])
    return result.exit_code, result.stdout, result.stderr


def _summary(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _seed(stack: LocalStack, prefix: str, count: int, png: bytes, *, missing: int, stale: int
          ) -> tuple[list[ListedObject], list[str]]:
    """`count` sources in a report; results exist for all but `missing`, `stale` of them older than their source.
    Only the sources the backfill must process are stored (the planner reads the report, never the others)."""
    store = stack.standin.store
    etag = f'"{hashlib.md5(png).hexdigest()}"'  # what COS lists for the stored sources (the function checks it)
    objects = [ListedObject(f"{prefix}{i:05d}.png", len(png), etag, T0) for i in range(count)]
    work = [o.key for o in objects[:missing + stale]]
    for key in work:
        store.put(BUCKET, key, png, "image/png")
    for obj in objects[missing:]:
        store.put(BUCKET, f"superres/{obj.key}.png", b"result", "image/png")
    for obj in objects[missing:missing + stale]:
        store.update(BUCKET, f"superres/{obj.key}.png", last_modified=T0 - 10)  # older than the source: stale
    return objects, work


def _inventory_flow(stack: LocalStack, tmp_path: Path, requests_seen: RequestLog, png: bytes, *, count: int,
                    missing: int, stale: int, cap: int) -> None:
    prefix = f"uploads/inv{count}/"
    objects, work = _seed(stack, prefix, count, png, missing=missing, stale=stale)
    extras = [ListedObject(f"{prefix}notes/readme.txt", 10, '"x"', T0)]  # not an image: never work
    manifest = write_report(tmp_path / "report", bucket=BUCKET, objects=objects + extras, files=3)
    checkpoint = tmp_path / "checkpoint.json"
    requests_seen.clear()
    common = ("--prefix", prefix, "--inventory", str(manifest), "--checkpoint", str(checkpoint), "--rate", "1000",
              "--no-progress")

    code, out, err = _cli(stack, "backfill", *common, "--dry-run")
    assert code == 0, err
    dry = _summary(out)
    assert (dry["to_process"], dry["ci_calls"], dry["listed"]) == (missing + stale, missing + stale, count + 1)
    assert dry["estimated_output_bytes"] == (missing + stale) * len(png) * 4
    assert f"dry run: {missing + stale} objects to process, {missing + stale} CI calls" in err

    code, out, err = _cli(stack, "backfill", *common, "--max-calls", str(cap))
    assert code == 0, err
    first = _summary(out)
    assert first["processed"] == cap and first["stopped_after_max_calls"] is True and first["calls_left"] == 0
    assert f"--max-calls {cap} reached" in err
    assert sum(requests_seen.ci_calls().values()) == cap

    code, out, err = _cli(stack, "backfill", *common)  # no --max-calls: the checkpoint's cap still holds
    assert code == 0, err
    second = _summary(out)
    assert second["resumed"] is True and second["processed"] == 0 and second["stopped_after_max_calls"] is True
    assert sum(requests_seen.ci_calls().values()) == cap

    code, out, err = _cli(stack, "backfill", *common, "--max-calls", str(missing + stale))
    assert code == 0, err
    third = _summary(out)
    assert third["processed"] == missing + stale - cap and "stopped_after_max_calls" not in third
    assert third["totals_with_earlier_runs"]["calls"] == missing + stale
    assert json.loads(checkpoint.read_text())["complete"] is True
    assert requests_seen.ci_calls() == Counter(work)  # each missing or stale source once, nothing else

    # no source was HEADed to plan: the only looks at sources are the function's, one per processed object
    assert requests_seen.count("HEAD", prefix) == missing + stale
    requests_seen.clear()
    code, out, err = _cli(stack, "reconcile", "--prefix", prefix, "--inventory", str(manifest))
    assert code == 0, err
    assert out == ""
    report = json.loads(err.strip().splitlines()[-1])
    assert (report["sources"], report["done"], report["missing"], report["stale"]) == (count + 1, count, 0, 0)
    # reconcile reads each existing result once for what it was made from, and nothing else
    assert requests_seen.count("HEAD") == requests_seen.count("HEAD", "superres/") == count


def test_an_inventory_driven_backfill_heads_no_source_respects_max_calls_resumes_and_reconciles(
        stack: LocalStack, tmp_path: Path, requests_seen: RequestLog, png: bytes) -> None:
    _inventory_flow(stack, tmp_path, requests_seen, png, count=300, missing=12, stale=8, cap=7)


def test_an_inventory_of_10000_objects(stack: LocalStack, tmp_path: Path, requests_seen: RequestLog,
                                       png: bytes) -> None:
    # ~17 s on the shared 2-core box, most of it storing 10,000 results in the stand-in
    _inventory_flow(stack, tmp_path, requests_seen, png, count=10_000, missing=70, stale=30, cap=40)


def test_an_inventory_report_is_read_from_cos(stack: LocalStack, tmp_path: Path, png: bytes,
                                              requests_seen: RequestLog) -> None:
    objects, work = _seed(stack, "uploads/invcos/", 50, png, missing=5, stale=0)
    manifest = write_report(tmp_path / "report", bucket=BUCKET, objects=objects, files=2)
    client = stack.client()
    for path in (tmp_path / "report").rglob("*"):
        if path.is_file():
            # where COS delivers them: the manifest names each data file by its key in the bucket
            client.put_object(Bucket=BUCKET, Key=str(path.relative_to(tmp_path / "report")), Body=path.read_bytes())
    key = str(manifest.relative_to(tmp_path / "report"))
    requests_seen.clear()
    code, out, err = _cli(stack, "backfill", "--prefix", "uploads/invcos/", "--inventory", f"cos://{BUCKET}/{key}",
                          "--checkpoint", str(tmp_path / "checkpoint.json"), "--rate", "1000", "--no-progress")
    assert code == 0, err
    summary = _summary(out)
    assert summary["source"] == "inventory" and summary["processed"] == 5 and summary["listed"] == 50
    assert requests_seen.ci_calls() == Counter(work)


def test_an_inventory_of_another_bucket_or_a_missing_one_is_a_clear_error(stack: LocalStack, tmp_path: Path
                                                                          ) -> None:
    manifest = write_report(tmp_path / "report", bucket="other-1250000000",
                            objects=[ListedObject("uploads/a.png", 10, '"e"', T0)])
    code, _out, err = _cli(stack, "backfill", "--inventory", str(manifest), "--dry-run")
    assert code == 1
    assert "is the inventory of other-1250000000, not photos-1250000000: pass --bucket other-1250000000" in err
    code, _out, err = _cli(stack, "backfill", "--inventory", f"cos://{BUCKET}/no/such/manifest.json", "--dry-run")
    assert code == 1 and "NoSuchKey" in err and "Traceback" not in err


def test_reconcile_reports_missing_and_stale_results_and_backfill_does_exactly_that_work(
        stack: LocalStack, tmp_path: Path, png: bytes, requests_seen: RequestLog) -> None:
    store = stack.standin.store
    prefix = "uploads/reconcile/"
    keys = [f"{prefix}{name}" for name in ("a.png", "b.png", "c.png", "d.png", "e.png")]
    for key in keys:
        store.put(BUCKET, key, png, "image/png")
    now = time.time()
    for key in keys[1:4]:
        store.put(BUCKET, f"superres/{key}.png", b"result", "image/png")
    store.update(BUCKET, f"superres/{keys[1]}.png", last_modified=now - 60)  # stale
    # the same second as its source: it may predate a re-upload within that second, so it is a candidate
    store.update(BUCKET, f"superres/{keys[2]}.png", last_modified=store.head(BUCKET, keys[2]).last_modified)
    store.update(BUCKET, f"superres/{keys[3]}.png", last_modified=store.head(BUCKET, keys[3]).last_modified + 1)
    store.put(BUCKET, f"{prefix}notes.txt", b"text", "text/plain")
    report = tmp_path / "report.jsonl"

    code, out, err = _cli(stack, "reconcile", "--prefix", prefix, "--out", str(report))
    assert code == 0, err
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [(line["key"], line["state"], line["results"]) for line in lines] == [
        (keys[0], "missing", [f"superres/{keys[0]}.png"]),
        (keys[1], "stale", [f"superres/{keys[1]}.png"]),
        (keys[2], "stale", [f"superres/{keys[2]}.png"]),
        (keys[4], "missing", [f"superres/{keys[4]}.png"]),
    ]
    summary = json.loads(err.strip().splitlines()[-1])
    assert (summary["sources"], summary["done"], summary["missing"], summary["stale"],
            summary["not_for_the_function"]) == (6, 1, 2, 2, 1)

    requests_seen.clear()
    time.sleep(1.05 - time.time() % 1)  # results written in a later second than their sources, as CI's take seconds
    code, out, err = _cli(stack, "backfill", "--prefix", prefix, "--from-report", str(report), "--checkpoint",
                          str(tmp_path / "checkpoint.json"), "--rate", "1000", "--no-progress")
    assert code == 0, err
    # the function decides each candidate exactly: c's result, made before provenance was recorded and not strictly
    # newer than its source, is redone too
    assert _summary(out)["processed"] == 4 and _summary(out)["source"] == "report"
    assert requests_seen.ci_calls() == Counter([keys[0], keys[1], keys[2], keys[4]])

    code, out, err = _cli(stack, "reconcile", "--prefix", prefix)
    assert code == 0 and out == ""
    assert json.loads(err.strip().splitlines()[-1])["missing"] == 0


def test_deployed_redoes_a_stale_result_because_the_records_carry_the_sources_time(
        stack: LocalStack, tmp_path: Path, png: bytes) -> None:
    from superres.scf.api import serve_scf_api

    store = stack.standin.store
    prefix = "uploads/stale-deployed/"
    keys = [f"{prefix}a.png", f"{prefix}b.png"]
    for key in keys:
        store.put(BUCKET, key, png, "image/png")
        store.put(BUCKET, f"superres/{key}.png", b"old result", "image/png")
    store.update(BUCKET, f"superres/{keys[0]}.png", last_modified=store.head(BUCKET, keys[0]).last_modified - 60)
    store.update(BUCKET, f"superres/{keys[1]}.png", last_modified=store.head(BUCKET, keys[1]).last_modified + 1)
    credentials = {k: v for k, v in stack.function_env().items() if k.startswith("TENCENTCLOUD_")}
    with serve_scf_api(stack) as api:
        result = CliRunner().invoke(main, ["backfill", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                           stack.standin.endpoint_url, "--prefix", prefix, "--deployed",
                                           stack.spec.name, "--scf-endpoint", api.endpoint, "--checkpoint",
                                           str(tmp_path / "checkpoint.json"), "--no-progress"], env=credentials)
        assert result.exit_code == 0, result.output
        assert api.wait_idle(120)
        results = api.functions[("default", stack.spec.name)].async_results
    assert _summary(result.stdout)["processed"] == 1 and _summary(result.stdout)["skipped"] == {"already_done": 1}
    assert all(r.ok for r in results)
    _info, body = store.read(BUCKET, f"superres/{keys[0]}.png")
    assert body != b"old result"  # older than its source by COS's clock: redone
