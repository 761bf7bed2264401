"""Backfill and reconcile follow RESULT_NAMES, end to end: `superres backfill` and `superres reconcile` as a user
runs them (CLI, a serverless.yml whose RESULT_NAMES is set) against the stand-in, CI requests counted from its
request log. Under `append` result names sort apart from their sources' keys ('a.jpg-2.jpg.png' lists before
'a.jpg.png') and a second run still finds every result; under `replace` two uploads share one name and exactly one
of them is super-resolved."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from superres.cli import main
from superres.stack import LocalStack
from tests.deploy.project_copy import edit, project_copy
from tests.integration.request_log import RequestLog

BUCKET = "photos-1250000000"


@pytest.fixture
def requests_seen() -> Iterator[RequestLog]:
    with RequestLog.attached() as log:
        yield log


def _serverless(tmp_path: Path, names: str) -> Path:
    """A copy of the project whose serverless.yml sets RESULT_NAMES to `names`."""
    project = project_copy(tmp_path)
    edit(project / "serverless.yml", "RESULT_NAMES: append", f"RESULT_NAMES: {names}")
    return project / "serverless.yml"


def _png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (shade, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def _cli(stack: LocalStack, serverless: Path, command: str, *args: str) -> tuple[int, list[str], str]:
    extra = ["--rate", "1000", "--no-progress"] if command == "backfill" else []
    result = CliRunner().invoke(main, [command, "--serverless", str(serverless), "--endpoint",
                                       stack.standin.endpoint_url, *extra, *args])
    return result.exit_code, result.stdout.strip().splitlines(), result.output


def _next_second() -> None:
    """COS times are whole seconds: the planner counts a result as done only when written in a later second."""
    time.sleep(1.05 - time.time() % 1)


def _keys(stack: LocalStack, prefix: str) -> list[str]:
    return [c["Key"] for c in stack.client().list_objects(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_append_names_that_sort_apart_are_found_by_the_second_run_and_by_reconcile(
        stack: LocalStack, tmp_path: Path, requests_seen: RequestLog) -> None:
    keys = ["uploads/ap/a.jpg", "uploads/ap/a.jpg-2.jpg", "uploads/ap/a.jpg 3.jpg", "uploads/ap/b.png"]
    for i, key in enumerate(keys):
        stack.client().put_object(Bucket=BUCKET, Key=key, Body=_png(i))
    serverless = _serverless(tmp_path, "append")
    _next_second()
    code, lines, output = _cli(stack, serverless, "backfill", "--prefix", "uploads/ap/", "--no-resume")
    assert code == 0 and json.loads(lines[-1])["processed"] == 4, output
    results = _keys(stack, "superres/uploads/ap/")
    assert results == sorted(f"superres/{k}.png" for k in keys)
    assert results.index("superres/uploads/ap/a.jpg-2.jpg.png") < results.index("superres/uploads/ap/a.jpg.png")
    for key in results:
        head = stack.client().head_object(Bucket=BUCKET, Key=key)
        assert head["Content-Type"] == "image/png"
    requests_seen.clear()
    code, lines, output = _cli(stack, serverless, "backfill", "--prefix", "uploads/ap/", "--no-resume")
    assert code == 0 and json.loads(lines[-1])["skipped"] == {"already_done": 4}, output
    # paired from the listings, each result read once for what it was made from; the function never ran
    assert requests_seen.count("HEAD") == 4 and requests_seen.count("PUT") == 0 and not requests_seen.ci_calls()
    code, lines, output = _cli(stack, serverless, "reconcile", "--prefix", "uploads/ap/")
    assert code == 0 and lines == [], output  # nothing missing or stale


def test_replace_names_shared_by_two_uploads_are_made_once_and_reconcile_says_so(
        stack: LocalStack, tmp_path: Path, requests_seen: RequestLog) -> None:
    for i, key in enumerate(["uploads/rp/cat.jpg", "uploads/rp/cat.png", "uploads/rp/dog.jpg"]):
        stack.client().put_object(Bucket=BUCKET, Key=key, Body=_png(100 + i))
    serverless = _serverless(tmp_path, "replace")
    code, lines, output = _cli(stack, serverless, "reconcile", "--prefix", "uploads/rp/")
    assert code == 0, output
    assert [(json.loads(line)["key"], json.loads(line)["results"]) for line in lines] == [
        ("uploads/rp/cat.jpg", ["superres/uploads/rp/cat.png"]),
        ("uploads/rp/cat.png", ["superres/uploads/rp/cat.png"]),
        ("uploads/rp/dog.jpg", ["superres/uploads/rp/dog.png"])]
    requests_seen.clear()
    _next_second()
    code, lines, output = _cli(stack, serverless, "backfill", "--prefix", "uploads/rp/", "--no-resume",
                               "--concurrency", "1")
    summary = json.loads(lines[-1])
    assert code == 0 and summary["processed"] == 2 and summary["skipped"] == {"result_name_taken": 1}, output
    assert sum(requests_seen.ci_calls().values()) == 2
    assert _keys(stack, "superres/uploads/rp/") == ["superres/uploads/rp/cat.png", "superres/uploads/rp/dog.png"]
    owner = stack.client().head_object(Bucket=BUCKET, Key="superres/uploads/rp/cat.png")
    made_from = stack.standin.store.head(BUCKET, "uploads/rp/cat.jpg").etag.strip('"')  # the first in key order
    assert owner["x-cos-meta-superres-source"] == made_from
    code, lines, output = _cli(stack, serverless, "reconcile", "--prefix", "uploads/rp/")
    assert code == 0 and lines == [], output
