"""The adversary suite: every way we know to make the function call CI twice for one source version, or leave a stale
result. The real function (superres_fn.process_event with a CosGateway: cos-python-sdk-v5 over HTTP) against the
stand-in, which counts every CI request it served (its request log) and injects latency, errors and late answers per
operation. Each case checks the CI requests served and the final result's provenance and content.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from superres_fn import CosGateway, Invocation, Report, load_settings, process_event
from superres_fn.targets import claim_root, source_folder

from superres.cli import main
from superres.sr import load_engine
from superres.stack import PROJECT_ROOT as ROOT
from superres.stack import LocalStack, StackOptions
from tests.integration.conftest import solid_png
from tests.integration.stack_events import cos_event

BUCKET = "photos-1250000000"
KEY = "uploads/adv.png"
DEST = "superres/uploads/adv.png.png"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    options = StackOptions(data_dir=tmp_path / "data", engine=load_engine("bicubic"), trigger=False)
    with LocalStack(options) as running:
        yield running


def _invocation(stack: LocalStack, **env: str) -> Invocation:
    environ = {**stack.spec.environment, **stack.function_env(), **env}
    settings = load_settings(environ)
    return Invocation(settings=settings, gateway=CosGateway(settings, environ=environ), emit=lambda line: None)


def _deliver(stack: LocalStack, event: dict, *, limit_ms: int = 20_000, **env: str) -> Report:
    return process_event(event, {"request_id": "adv", "time_limit_in_ms": limit_ms}, _invocation(stack, **env))


def _upload(stack: LocalStack, body: bytes, key: str = KEY) -> dict:
    """Upload, and the COS event the trigger would deliver for it."""
    stack.client().put_object(Bucket=BUCKET, Key=key, Body=body)
    return cos_event(stack, BUCKET, [key])


def _ci_calls(stack: LocalStack) -> int:
    return stack.standin.count(ci=True)


def _result(stack: LocalStack) -> tuple[str | None, tuple[int, int]]:
    """The published result's stamped source version, and its size in pixels."""
    head = stack.client().head_object(Bucket=BUCKET, Key=DEST)
    body = stack.client().get_object(Bucket=BUCKET, Key=DEST)["Body"].get_raw_stream().read()
    return head.get("x-cos-meta-superres-source"), Image.open(io.BytesIO(body)).size


def _etag(stack: LocalStack, key: str = KEY) -> str:
    return stack.standin.store.head(BUCKET, key).etag.strip('"')


def _concurrently(*calls) -> list:  # type: ignore[no-untyped-def]
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def _outcomes(reports: list[Report]) -> list[str]:
    return sorted(f"{line['outcome']}:{line['reason']}" for report in reports for line in report.lines)


def test_concurrent_deliveries_make_one_ci_call(stack: LocalStack):
    event = _upload(stack, solid_png(1))
    stack.standin.set_injections(["op=ci,latency=1.0"])
    reports = _concurrently(*[lambda: _deliver(stack, event)] * 4)
    assert _ci_calls(stack) == 1
    assert _outcomes(reports) == ["processed:processed"] + ["skipped:already_done"] * 3
    assert _result(stack) == (_etag(stack), (48, 32))


@pytest.mark.parametrize("round_", range(10))
def test_retries_taking_over_a_dead_claim_with_jitter_call_ci_once(stack: LocalStack, round_: int):
    event = _upload(stack, solid_png(round_ + 2))
    root = claim_root(_invocation(stack).settings, source_folder(BUCKET, KEY))
    # a holder that died long ago, by COS's clock: its claim is written 120 s in the storage clock's past
    stack.standin.set_clock_skew(-120)
    stack.client().put_object(Bucket=BUCKET, Key=root, Body=b'{"nonce": "dead"}',
                              Metadata={"x-cos-meta-superres-ttl": "60"})
    stack.standin.set_clock_skew(0)
    stack.standin.clear_requests()
    # jitter where a takeover races (the claim's HEAD, DELETE and PUT), and a CI call long enough for holders to
    # overlap
    stack.standin.set_injections(["op=delete,latency=0.01-0.4", "op=put,prefix=superres/.claims/,latency=0.01-0.4",
                                  "op=head,prefix=superres/.claims/,latency=0-0.2", "op=ci,latency=0.6"])
    reports = _concurrently(*[lambda: _deliver(stack, event)] * 5)
    assert _ci_calls(stack) == 1, _outcomes(reports)
    assert _outcomes(reports).count("processed:processed") == 1
    assert _result(stack)[0] == _etag(stack)
    assert stack.client().list_objects(Bucket=BUCKET, Prefix="superres/.claims/").get("Contents") is None


def test_reupload_during_processing_ends_with_the_newest_content(stack: LocalStack):
    first = _upload(stack, solid_png(1, (24, 16)))
    stack.standin.set_injections(["op=ci,latency=1.5"])
    holder = threading.Thread(target=lambda: _deliver(stack, first))
    holder.start()
    time.sleep(0.5)  # the first delivery's CI call is in flight
    second = _upload(stack, solid_png(2, (40, 30)))
    reports = _concurrently(lambda: _deliver(stack, second), lambda: _deliver(stack, first))
    holder.join(60)
    assert _result(stack) == (_etag(stack), (80, 60))  # made from the re-upload
    assert _ci_calls(stack) <= 2  # at most one per version
    assert "processed:processed" in _outcomes(reports) or _ci_calls(stack) == 1


def test_same_second_reupload_is_processed_again(stack: LocalStack):
    _deliver(stack, _upload(stack, solid_png(1, (24, 16))))
    report = _deliver(stack, _upload(stack, solid_png(2, (40, 30))))  # well within the second of the first result
    assert report.lines[0]["outcome"] == "processed" and _ci_calls(stack) == 2
    assert _result(stack) == (_etag(stack), (80, 60))


def test_the_same_bytes_uploaded_again_are_not_billed_again(stack: LocalStack):
    body = solid_png(3)
    _deliver(stack, _upload(stack, body))
    stack.client().copy_object(Bucket=BUCKET, Key=KEY, CopySource={"Bucket": BUCKET, "Key": KEY,
                                                                   "Region": "ap-guangzhou"},
                               CopyStatus="Replaced", Metadata={"x-cos-meta-note": "touched"})
    for event in (_upload(stack, body), cos_event(stack, BUCKET, [KEY])):
        assert _deliver(stack, event).lines[0]["reason"] == "already_done"
    assert _ci_calls(stack) == 1


@pytest.mark.parametrize("skew_s", [5.0, -5.0])
def test_storage_clock_skew_changes_nothing(stack: LocalStack, skew_s: float):
    stack.standin.set_clock_skew(skew_s)
    event = _upload(stack, solid_png(4))
    reasons = [_deliver(stack, event).lines[0]["reason"] for _ in range(3)]
    assert reasons == ["processed", "already_done", "already_done"] and _ci_calls(stack) == 1
    second = _upload(stack, solid_png(5, (40, 30)))
    assert _deliver(stack, second).lines[0]["reason"] == "processed" and _ci_calls(stack) == 2
    assert _result(stack) == (_etag(stack), (80, 60))


def test_a_call_that_lands_after_its_timeout_is_never_sent_twice(stack: LocalStack):
    event = _upload(stack, solid_png(6))
    stack.standin.set_injections(["op=ci,late=2,count=1"])
    env = {"COS_TIMEOUT_S": "1", "CI_LANDING_BOUND_S": "3"}
    first = _deliver(stack, event, limit_ms=5000, **env)
    assert first.retry and first.lines[0]["reason"] == "CiOutcomeUnknown"
    # SCF's retries, a little later each: they wait while the first call may land, then publish what landed
    lines = []
    for _ in range(15):
        time.sleep(1.5)  # SCF retries a minute apart; here the claim lives about 11 s
        report = _deliver(stack, event, limit_ms=5000, **env)
        lines.append(report.lines[0])
        if not report.retry:
            break
    assert lines[-1]["outcome"] == "processed" and lines[-1]["confirmed_by"] == "staging", lines
    assert _ci_calls(stack) == 1
    assert _result(stack)[0] == _etag(stack)


def test_backfill_beside_the_trigger_calls_ci_once(stack: LocalStack, tmp_path: Path):
    event = _upload(stack, solid_png(7))
    stack.standin.set_injections(["op=ci,latency=1.0"])
    trigger = threading.Thread(target=lambda: _deliver(stack, event))
    trigger.start()
    time.sleep(0.3)  # the trigger's CI call is in flight
    result = CliRunner().invoke(main, ["backfill", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                       stack.standin.endpoint_url, "--rate", "1000", "--no-progress",
                                       "--prefix", "uploads/", "--checkpoint", str(tmp_path / "cp.json")])
    trigger.join(60)
    assert result.exit_code == 0, result.output
    assert _ci_calls(stack) == 1
    assert _result(stack)[0] == _etag(stack)


def test_replaying_an_old_event_after_a_newer_upload_calls_ci_neither(stack: LocalStack):
    old = _upload(stack, solid_png(1, (24, 16)))
    _deliver(stack, _upload(stack, solid_png(2, (40, 30))))
    report = _deliver(stack, old)
    assert report.lines[0]["reason"] == "outdated" and _ci_calls(stack) == 1
    assert _result(stack) == (_etag(stack), (80, 60))


def test_under_deadline_pressure_every_record_gets_its_line(stack: LocalStack):
    keys = [f"uploads/p{i}.png" for i in range(3)]
    for i, key in enumerate(keys):
        stack.client().put_object(Bucket=BUCKET, Key=key, Body=solid_png(i))
    stack.standin.set_injections(["op=ci,latency=8"])  # CI hangs past the invocation's end
    report = _deliver(stack, cos_event(stack, BUCKET, keys), limit_ms=6000)
    assert [line["key"] for line in report.lines] == keys and report.retry
    assert all(line["outcome"] == "failed" for line in report.lines)
    assert _ci_calls(stack) <= 1  # the later records did not start a call they had no time for



def test_replace_names_two_uploads_racing_for_one_result_name_make_one_call_and_overwrite_nothing(stack: LocalStack):
    # RESULT_NAMES=replace names the results of uploads/pair.jpg and uploads/pair.png the same: superres/uploads/
    # pair.png. Both are delivered at once with CI slow: they share one claim, one calls CI, the other waits and is
    # told the name is taken; a late redelivery of the loser changes nothing either.
    jpg = _upload(stack, solid_png(3, (24, 16)), "uploads/pair.jpg")
    png = _upload(stack, solid_png(4, (40, 30)), "uploads/pair.png")
    stack.standin.set_injections(["op=ci,latency=1.0", "op=head,prefix=superres/,latency=0-0.2"])
    reports = _concurrently(lambda: _deliver(stack, jpg, RESULT_NAMES="replace"),
                            lambda: _deliver(stack, png, RESULT_NAMES="replace"))
    assert _ci_calls(stack) == 1, _outcomes(reports)
    assert _outcomes(reports) == ["processed:processed", "skipped:result_name_taken"]
    winner = next(line["key"] for report in reports for line in report.lines if line["outcome"] == "processed")
    head = stack.client().head_object(Bucket=BUCKET, Key="superres/uploads/pair.png")
    assert head.get("x-cos-meta-superres-source") == _etag(stack, winner)
    assert head.get("x-cos-meta-superres-upload") == source_folder(BUCKET, winner)
    assert head["Content-Type"] == "image/png"
    loser = jpg if winner == "uploads/pair.png" else png
    late = _deliver(stack, loser, RESULT_NAMES="replace")
    assert [line["reason"] for line in late.lines] == ["result_name_taken"] and _ci_calls(stack) == 1
    assert stack.client().head_object(Bucket=BUCKET, Key="superres/uploads/pair.png")["ETag"] == head["ETag"]


def test_each_naming_publishes_a_results_format_under_its_extension(stack: LocalStack):
    event = _upload(stack, solid_png(5), "uploads/named.jpg")
    outputs = "x2/:2,x4/:4:webp:80"
    expected = {"append": ("superres/x2/uploads/named.jpg.png", "superres/x4/uploads/named.jpg.webp"),
                "replace": ("superres/x2/uploads/named.png", "superres/x4/uploads/named.webp"),
                "keep": ("superres/x2/uploads/named.jpg", "superres/x4/uploads/named.jpg.webp")}
    for names, keys in expected.items():
        report = _deliver(stack, event, OUTPUTS=outputs, RESULT_NAMES=names)
        assert [o["dest_key"] for o in report.lines[0]["outputs"]] == list(keys), report.lines
        for key, (fmt, mime) in zip(keys, [("PNG", "image/png"), ("WEBP", "image/webp")], strict=True):
            got = stack.client().get_object(Bucket=BUCKET, Key=key)
            assert got["Content-Type"] == mime
            assert Image.open(io.BytesIO(got["Body"].get_raw_stream().read())).format == fmt
    # append and replace: one super-resolution call and one conversion each; keep names its WebP as append did, and
    # that result, made from this version by this rule, is already done
    assert _ci_calls(stack) == 2 + 2 + 1


def test_a_result_published_after_a_lost_reupload_is_not_taken_for_fresh(stack: LocalStack, tmp_path: Path):
    """The first upload's result is published (its COPY held back) after the re-upload landed, and the re-upload's
    event is lost (SCF's retries exhausted). The result is newer than the source by COS's clock, yet made from the
    old bytes: backfill and reconcile must still see it as stale, and backfill makes exactly the one CI call."""
    first = _upload(stack, solid_png(1, (24, 16)))
    stack.standin.set_injections([f"op=put,prefix={DEST},latency=2.0,count=1"])  # the publishing COPY
    holder = threading.Thread(target=lambda: _deliver(stack, first))
    holder.start()
    deadline = time.monotonic() + 30
    while _ci_calls(stack) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the COPY of the first result is held back
    stack.client().put_object(Bucket=BUCKET, Key=KEY, Body=solid_png(2, (40, 30)))  # its event never delivered
    holder.join(60)
    stale_stamp, _ = _result(stack)
    assert stale_stamp != _etag(stack)  # the result is the first upload's, published after the re-upload
    result = CliRunner().invoke(main, ["reconcile", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                       stack.standin.endpoint_url, "--prefix", "uploads/"])
    assert result.exit_code == 0 and KEY in result.output, result.output
    result = CliRunner().invoke(main, ["backfill", "--serverless", str(ROOT / "serverless.yml"), "--endpoint",
                                       stack.standin.endpoint_url, "--rate", "1000", "--no-progress",
                                       "--prefix", "uploads/", "--checkpoint", str(tmp_path / "cp.json")])
    assert result.exit_code == 0, result.output
    assert _ci_calls(stack) == 2
    assert _result(stack) == (_etag(stack), (80, 60))
