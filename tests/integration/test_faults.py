"""The function under a misbehaving cloud: the stand-in injects 503 SlowDown, 500, connection resets and answers
slower than the function's COS timeout, the local trigger retries failed invocations as SCF does (2 retries).

What "exactly once" means here. A CI request delayed past the client's timeout is still carried out by the server,
so the function's retry of it may make the server write the same output a second time (same key, same bytes). The
strongest true properties, asserted below, are:
- after the retries every output exists once, under its own key, with the right dimensions and an ETag matching its
  bytes, and nothing else is stored under the destination prefix;
- each record ends with exactly one success line (processed, or already_done when an earlier, timed-out request had
  in fact written the output) and at most one processed line; a delivery that did not succeed raised (SCF retries it);
- server-side, CI wrote each output at least once and at most once more than the number of its requests that were
  delayed past the timeout: the function never asks CI again for an output whose HEAD shows it exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from superres.scf.container import ContainerOptions, FunctionContainer, InvokeResult
from superres.scf.role import role_policy
from superres.scf.serverless import load_function_spec
from superres.scf.trigger import Delivery
from superres.sr import load_engine
from superres.stack import PROJECT_ROOT, LocalStack, StackOptions
from superres.standin.faults import FaultPlan
from tests.integration.stack_events import cos_event

BUCKET = "photos-1250000000"
DEST = "superres/"
SUCCESS = ("processed", "already_done")
# Client timeout 0.5 s, faults delayed 1 s: every "delay" is a timeout for the function. SCF time limits below
# leave the function's margin plus RetryPolicy.min_attempt_s (0.5 s) above one client timeout plus a cold start,
# so a call started just before the function's deadline cannot outlast SCF's limit.
# A delayed call lands 0.5 s after its client gave up, well within the landing bound of 2 s the function assumes.
FUNCTION_ENV = {"COS_TIMEOUT_S": "0.5", "CI_LANDING_BOUND_S": "2"}
DELAY_S = 1.0


def _png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16 + i % 7, 12 + i % 5), (i * 5 % 256, 80, 200 - i % 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def _role_policy() -> dict:
    """The function's role policy, plus reading batch/: the batch test feeds records outside the trigger's
    prefix, which a role limited to it could not read (the function runs under its role's keys)."""
    policy = role_policy(load_function_spec(PROJECT_ROOT / "serverless.yml"), FUNCTION_ENV)
    source = policy["statement"][0]["resource"][0].rsplit("/", 2)[0]  # qcs::cos:...:<bucket>
    extra = {"effect": "allow", "action": ["cos:GetObject", "cos:HeadObject"], "resource": [f"{source}/batch/*"]}
    return {**policy, "statement": [*policy["statement"], extra]}


def _stack(tmp_path: Path, *, timeout_s: int, trigger: bool = True) -> LocalStack:
    options = StackOptions(data_dir=tmp_path / "data", engine=load_engine("bicubic"), trigger=trigger,
                           retry_interval_s=0.2, function_env=FUNCTION_ENV, faults=FaultPlan(0.0),
                           role_policy=_role_policy())
    stack = LocalStack(options)
    # SCF's time limit for the function (serverless.yml says 60 s): short, so retries run into it.
    stack.spec = dataclasses.replace(stack.spec, timeout_s=timeout_s)
    return stack


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator:
    stacks: list[LocalStack] = []

    def make(**kwargs: object) -> LocalStack:
        stack = _stack(tmp_path, **kwargs).start()  # type: ignore[arg-type]
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


def _function_lines(result: InvokeResult) -> list[dict]:
    return [line for line in result.log_records if line.get("logger") == "superres"]


def _event(stack: LocalStack, keys: list[str]) -> dict:
    return cos_event(stack, BUCKET, keys, request_id="test")


def _check_deliveries(deliveries: list[Delivery]) -> None:
    """Every record of every delivery is processed (or was already done), or the invocation raised for SCF to
    retry it with the record's failure logged as retryable."""
    for delivery in deliveries:
        result = delivery.result
        lines = _function_lines(result)
        if result.ok:
            assert all(line["reason"] in SUCCESS for line in lines), lines
            assert len(lines) == len(delivery.event["Records"])
        else:
            assert not result.timed_out, f"SCF killed the function at its time limit: {result.error}"
            assert result.error and result.error.get("errorType") == "RecordsFailedError", result.error
            failed = [line for line in lines if line["outcome"] == "failed"]
            assert failed and all(line["retry"] is True for line in failed), lines
            assert all(line["reason"] in SUCCESS or line["outcome"] == "failed" for line in lines), lines


def _replay_dead_letters(stack: LocalStack, deliveries: list[Delivery]) -> list[InvokeResult]:
    """Events whose last SCF retry still failed would go to the dead-letter queue: replay them, faults off."""
    final: dict[str, Delivery] = {}
    for delivery in deliveries:
        final[json.dumps(delivery.event, sort_keys=True)] = delivery
    dead = [d.event for d in final.values() if not d.result.ok]
    assert all(d.attempt == stack.trigger.retries for d in final.values() if not d.result.ok)
    stack.standin.set_faults(FaultPlan(0.0))
    # A dead-letter queue is replayed long after the last retry: by then every claim an invocation left behind
    # (one cut short at its time limit releases nothing) has expired, and every in-flight marker has aged past the
    # landing bound. Here: the claims' time to live (the function's budget + CI_LANDING_BOUND_S + 2 s) and a second.
    time.sleep(stack.spec.timeout_s + float(FUNCTION_ENV["CI_LANDING_BOUND_S"]) + 3)
    replays = []
    with stack.container() as container:
        for event in dead:
            result = container.invoke(event)
            assert result.ok, result.error
            replays.append(result)
    return replays


def _check_outputs_exactly_once(
    stack: LocalStack, sources: dict[str, bytes], results: list[InvokeResult], *, one_record_per_event: bool
) -> None:
    """`results` in the order they ran (SCF's deliveries, then dead-letter replays)."""
    assert stack.standin.faults.wait_idle(60)  # delayed requests still being served
    # 1. every output once, nothing else under the destination prefix, right size, ETag = MD5 of the bytes
    listing = stack.standin.store.list(BUCKET, prefix=DEST, max_keys=1000)
    assert not listing.is_truncated
    listed = [info.key for info in listing.contents]
    assert sorted(listed) == sorted(DEST + key + ".png" for key in sources)  # RESULT_NAMES=append
    for key, data in sources.items():
        info, body = stack.standin.store.read(BUCKET, DEST + key + ".png")
        assert info.etag == f'"{hashlib.md5(body).hexdigest()}"'
        with Image.open(io.BytesIO(data)) as source, Image.open(io.BytesIO(body)) as output:
            assert output.size == (source.width * 2, source.height * 2)
    # 2. each record succeeded, was processed at most once and never after it had succeeded; with one record per
    #    event a success ends its deliveries, so there is exactly one success line
    reasons: dict[str, list[str]] = defaultdict(list)
    for result in results:
        for line in _function_lines(result):
            reasons[line["key"]].append(line["reason"])
    for key in sources:
        successes = [i for i, reason in enumerate(reasons[key]) if reason in SUCCESS]
        assert successes, (key, reasons[key])
        assert reasons[key].count("processed") <= 1, (key, reasons[key])
        assert "processed" not in reasons[key][successes[0] + 1:], (key, reasons[key])
        if one_record_per_event:
            assert len(successes) == 1, (key, reasons[key])
    # 3. server side: CI wrote each output at least once, and again only after a request delayed past the timeout
    written: Counter[str] = Counter()
    delayed: Counter[str] = Counter()
    for record in stack.standin.faults.records:
        if record.method == "POST" and record.is_ci:
            written[record.key] += record.status == 200
            delayed[record.key] += record.fault == "delay"
    for key in sources:
        assert 1 <= written[key] <= 1 + delayed[key], (key, written[key], delayed[key])


@pytest.mark.slow
def test_50_uploads_with_30_percent_faults_all_processed_exactly_once_after_scf_retries(stack_factory):
    stack = stack_factory(timeout_s=4)
    client = stack.client()
    stack.standin.set_faults(FaultPlan(0.3, delay_s=DELAY_S, seed=2024, targets=("ci", "head")))
    sources = {f"uploads/f{i:02d}.png": _png(i) for i in range(50)}
    for key, data in sources.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
    assert stack.trigger.wait_idle(400)
    deliveries = list(stack.trigger.deliveries)
    _check_deliveries(deliveries)
    replays = _replay_dead_letters(stack, deliveries)
    _check_outputs_exactly_once(stack, sources, [d.result for d in deliveries] + replays, one_record_per_event=True)
    faults = Counter(r.fault for r in stack.standin.faults.records if r.fault)
    assert set(faults) == {"slowdown", "internal", "reset", "delay"}  # every kind was exercised


@pytest.mark.slow
def test_batched_events_with_30_percent_faults_never_reprocess_an_existing_output(stack_factory):
    # Records outside the trigger's prefix, delivered as 2 events of 25: a retry re-delivers the whole batch, so
    # the records that succeeded before must be skipped by the HEAD check, not sent to CI again.
    stack = stack_factory(timeout_s=5)
    client = stack.client()
    sources = {f"batch/b{i:02d}.png": _png(i) for i in range(50)}
    for key, data in sources.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
    stack.standin.set_faults(FaultPlan(0.3, delay_s=DELAY_S, seed=7, targets=("ci", "head")))
    keys = sorted(sources)
    for start in range(0, 50, 25):
        stack.trigger.submit(_event(stack, keys[start:start + 25]))
    assert stack.trigger.wait_idle(400)
    deliveries = list(stack.trigger.deliveries)
    _check_deliveries(deliveries)
    assert any(d.attempt > 0 for d in deliveries), "no batch needed an SCF retry: the faults did not bite"
    replays = _replay_dead_letters(stack, deliveries)
    _check_outputs_exactly_once(stack, sources, [d.result for d in deliveries] + replays, one_record_per_event=False)
    already_done = sum(line["reason"] == "already_done" for d in deliveries for line in _function_lines(d.result))
    assert already_done > 0  # retried batches skipped their finished records


def test_permanent_ci_errors_are_tried_once_and_not_raised_for_scf_retry(stack_factory):
    stack = stack_factory(timeout_s=30)
    client = stack.client()
    big = io.BytesIO()
    Image.new("RGB", (2000, 1200), (1, 2, 3)).save(big, format="PNG")
    uploads = {
        "uploads/not-an-image.png": (b"this is text, not a PNG", "InvalidImageFormat"),
        "uploads/too-many-pixels.png": (big.getvalue(), "ImageResolutionExceed"),
    }
    for key, (data, _) in uploads.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=data)
    assert stack.trigger.wait_idle(120)
    deliveries = list(stack.trigger.deliveries)
    assert len(deliveries) == len(uploads)
    assert all(d.attempt == 0 and d.result.ok for d in deliveries)  # no SCF retry
    lines = {line["key"]: line for d in deliveries for line in _function_lines(d.result)}
    for key, (_, code) in uploads.items():
        assert lines[key]["outcome"] == "failed" and lines[key]["error"]["code"] == code
        assert lines[key]["error"]["retryable"] is False and lines[key]["attempts"] == 1
    assert stack.standin.faults.wait_idle(10)
    posts = Counter(r.key for r in stack.standin.faults.records if r.method == "POST" and r.is_ci)
    assert posts == Counter(uploads.keys())  # exactly one CI call each
    assert not stack.standin.store.list(BUCKET, prefix=DEST).contents


def test_image_too_large_for_ci_is_tried_once(stack_factory, tmp_path: Path):
    # MAX_INPUT_BYTES above CI's 5 MB lets the request through to CI, which refuses it (ImageTooLarge).
    stack = stack_factory(timeout_s=30, trigger=False)
    data = b"\x89PNG\r\n\x1a\n" + bytes(6 * 1024 * 1024)
    stack.client().put_object(Bucket=BUCKET, Key="uploads/huge.png", Body=data)
    options = ContainerOptions(env={**stack.function_env(), "MAX_INPUT_BYTES": str(32 * 1024 * 1024)},
                               appid=stack.settings.appid)
    with FunctionContainer(stack.spec, options) as container:
        result = container.invoke(_event(stack, ["uploads/huge.png"]))
    assert result.ok
    (line,) = _function_lines(result)
    assert line["error"]["code"] == "ImageTooLarge" and line["attempts"] == 1


@pytest.mark.parametrize(("kind", "records"), [("slowdown", 1), ("delay", 4)])
def test_retry_loop_gives_up_before_the_invocation_time_limit(stack_factory, kind: str, records: int):
    stack = stack_factory(timeout_s=5, trigger=False)
    keys = [f"uploads/t{i}.png" for i in range(records)]
    for i, key in enumerate(keys):
        stack.client().put_object(Bucket=BUCKET, Key=key, Body=_png(i))
    stack.standin.set_faults(FaultPlan(1.0, kinds=(kind,), delay_s=DELAY_S, targets=("ci",)))
    with FunctionContainer(stack.spec, ContainerOptions(env=stack.function_env(), appid=stack.settings.appid)) as c:
        result = c.invoke(_event(stack, keys))
    # SCF did not have to kill it: the function returned (raising, so SCF retries the event) within its limit
    assert not result.timed_out, result.error
    assert not result.ok and result.error["errorType"] == "RecordsFailedError"
    lines = _function_lines(result)
    assert [line["index"] for line in lines] == list(range(records))  # one line per record, even the last
    failed = [line for line in lines if line["outcome"] == "failed"]
    assert failed and all(line["retry"] is True for line in failed)
    # A delayed CI call still does its work after the client gave up, so it is never sent again in the same
    # invocation (SCF's retry publishes what landed); a SlowDown did nothing and is retried at once.
    assert all(line["outcome"] == "failed" for line in lines)
    if kind == "slowdown":
        assert lines[0]["attempts"] > 1
    else:
        assert all(line["attempts"] <= 1 for line in lines) and lines[0]["error"]["code"] == "CiOutcomeUnknown"
    assert stack.standin.faults.wait_idle(30)
    posts = sum(r.method == "POST" and r.is_ci for r in stack.standin.faults.records)
    assert posts == sum(line["attempts"] for line in lines)
