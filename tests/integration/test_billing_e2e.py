"""What may be billed, end to end: the real function in a local SCF instance (logging set up as Tencent's
bootstrap does), the real cos-python-sdk-v5 over HTTP, the stand-in counting every CI request it serves.

- a re-upload with new content is processed again and replaces the result (the freshness rule);
- SCF's retry of the same event makes no second CI call;
- a CI call that times out after CI did the work is confirmed by HEAD, not sent again (`confirmed_by: head`);
- permanent SDK errors cost one attempt and do not raise;
- concurrent duplicate deliveries make one CI call (claims), and a claim left by a killed instance is taken over;
- under the bootstrap's logging, every line a 3-record invocation writes to stdout is one JSON object.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from superres.scf.container import ContainerOptions, FunctionContainer, InvokeResult
from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from superres.standin.faults import FaultPlan
from tests.integration.conftest import solid_png
from tests.integration.stack_events import cos_event

BUCKET = "photos-1250000000"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    options = StackOptions(data_dir=tmp_path / "data", engine=load_engine("bicubic"), trigger=False,
                           faults=FaultPlan(0.0))  # a plan with share 0 records every request
    with LocalStack(options) as running:
        running.spec = dataclasses.replace(running.spec, timeout_s=20)
        yield running


def _event(stack: LocalStack, keys: list[str]) -> dict:
    return cos_event(stack, BUCKET, keys, request_id="t")


def _container(stack: LocalStack, **env: str) -> FunctionContainer:
    return FunctionContainer(stack.spec, ContainerOptions(env={**stack.function_env(), **env},
                                                          appid=stack.settings.appid))


def _ci_calls(stack: LocalStack) -> int:
    assert stack.standin.faults.wait_idle(30)
    return sum(1 for r in stack.standin.faults.records if r.is_ci and r.method == "POST")


def _lines(result: InvokeResult) -> list[dict]:
    return [line for line in result.log_records if line.get("logger") == "superres"]


def _next_second() -> None:
    """COS times are whole seconds: an upload in a later second than the stored result is newer than it."""
    time.sleep(1.05 - time.time() % 1)


def test_reupload_with_new_content_is_processed_again_and_replaces_the_result(stack: LocalStack):
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="uploads/a.png", Body=solid_png(1, (24, 16)))
    with _container(stack) as container:
        first = container.invoke(_event(stack, ["uploads/a.png"]))
        assert [line["outcome"] for line in _lines(first)] == ["processed"]
        old = stack.standin.store.head(BUCKET, "superres/uploads/a.png.png")
        _next_second()
        client.put_object(Bucket=BUCKET, Key="uploads/a.png", Body=solid_png(2, (40, 30)))  # edited photo, same key
        second = container.invoke(_event(stack, ["uploads/a.png"]))
        (line,) = _lines(second)
        assert line["outcome"] == "processed", line
        new = stack.standin.store.head(BUCKET, "superres/uploads/a.png.png")
        assert new.etag != old.etag and line["result"]["width"] == 80
        # SCF's retry of that same event: done, no call
        retry = container.invoke(_event(stack, ["uploads/a.png"]))
        assert [line["reason"] for line in _lines(retry)] == ["already_done"]
    assert _ci_calls(stack) == 2


def test_timeout_after_ci_did_the_work_is_published_by_the_retry_with_one_call(stack: LocalStack):
    stack.client().put_object(Bucket=BUCKET, Key="uploads/slow.png", Body=solid_png(3))
    # CI answers after 1 s; the function gives up after 0.5 s (the reproduction)
    stack.standin.set_faults(FaultPlan(1.0, kinds=("delay",), delay_s=1.0, targets=("ci",)))
    with _container(stack, COS_TIMEOUT_S="0.5") as container:
        first = container.invoke(_event(stack, ["uploads/slow.png"]))
        assert not first.ok  # retryable: SCF delivers the event again
        assert [line["reason"] for line in _lines(first)] == ["CiOutcomeUnknown"]
        assert stack.standin.faults.wait_idle(30)  # the late answer has been written
        retry = container.invoke(_event(stack, ["uploads/slow.png"]))
    assert retry.ok, retry.error
    (line,) = _lines(retry)
    assert line["outcome"] == "processed" and line["confirmed_by"] == "staging" and line["attempts"] == 0
    assert line["result"]["key"] == "superres/uploads/slow.png.png"
    assert _ci_calls(stack) == 1


@pytest.mark.parametrize(("env", "code"), [
    # refused at the first request, the source's HEAD: a HEAD error has no body, so its status names it
    ({"TENCENTCLOUD_SECRETKEY": "wrong-key"}, "HTTP403"),
])
def test_permanent_errors_cost_one_attempt_and_do_not_raise(stack: LocalStack, env: dict, code: str):
    stack.client().put_object(Bucket=BUCKET, Key="uploads/p.png", Body=solid_png(4))
    with _container(stack, CLAIM_WORK="false", SKIP_EXISTING="false", **env) as container:
        result = container.invoke(_event(stack, ["uploads/p.png"]))
    assert result.ok, result.error  # logged, not raised: SCF does not retry and re-bill
    (line,) = _lines(result)
    assert line["outcome"] == "failed" and line["attempts"] == 0 and line["error"]["code"] == code
    assert line["error"]["retryable"] is False and line["error"]["cos_request_id"]


def test_sdk_refusal_of_a_malformed_bucket_is_permanent(stack: LocalStack):
    stack.client().put_object(Bucket=BUCKET, Key="uploads/q.png", Body=solid_png(5))
    event = _event(stack, ["uploads/q.png"])
    event["Records"][0]["cos"]["cosBucket"]["cosRegion"] = "ap guangzhou!"  # the SDK refuses this region
    with _container(stack) as container:
        result = container.invoke(event)
    assert result.ok, result.error
    (line,) = _lines(result)
    assert line["outcome"] == "failed" and line["error"]["retryable"] is False, line
    assert line["attempts"] == 0 and _ci_calls(stack) == 0


def test_concurrent_duplicate_deliveries_make_one_ci_call(stack: LocalStack):
    stack.client().put_object(Bucket=BUCKET, Key="uploads/dup.png", Body=solid_png(6))
    event = _event(stack, ["uploads/dup.png"])
    # CI takes 1.5 s, so the two deliveries overlap
    stack.standin.set_faults(FaultPlan(1.0, kinds=("delay",), delay_s=1.5, targets=("ci",)))
    containers = [_container(stack).__enter__() for _ in range(2)]
    try:
        for container in containers:  # warm: cold starts must not serialise them
            container.invoke({"Records": []})
        results: list[InvokeResult] = []
        threads = [threading.Thread(target=lambda c=c: results.append(c.invoke(event))) for c in containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        lines = [line for result in results for line in _lines(result)]
        # the second waited on the first one's claim, then found its result done
        assert sorted(line["reason"] for line in lines) == ["already_done", "processed"], lines
        assert all(result.ok for result in results)
    finally:
        for container in containers:
            container.__exit__(None, None, None)
    assert _ci_calls(stack) == 1
    leftovers = [info.key for info in stack.standin.store.list(BUCKET, "superres/.claims/").contents]
    assert leftovers == []  # every claim released


def test_every_stdout_write_of_a_three_record_invocation_is_one_json_object(stack: LocalStack):
    keys = [f"uploads/log{i}.png" for i in range(3)]
    for i, key in enumerate(keys):
        stack.client().put_object(Bucket=BUCKET, Key=key, Body=solid_png(i))
    source = stack.standin.store.head(BUCKET, "uploads/log1.png").etag.strip('"')
    stack.client().put_object(Bucket=BUCKET, Key="superres/uploads/log1.png.png", Body=b"x",  # a skip, a HEAD 200
                              Metadata={"x-cos-meta-superres-source": source, "x-cos-meta-superres-rule": "x2"})
    with _container(stack) as container:
        result = container.invoke(_event(stack, keys))
    assert result.ok, result.error
    assert len(result.logs) == 3, result.logs  # urllib3/charset/SDK debug lines would show up here
    for line in result.logs:
        assert isinstance(json.loads(line), dict), line
    assert [json.loads(line)["reason"] for line in result.logs] == ["processed", "already_done", "processed"]


def test_claim_left_by_a_killed_instance_is_taken_over_when_it_expires(stack: LocalStack):
    stack.client().put_object(Bucket=BUCKET, Key="uploads/killed.png", Body=solid_png(7))
    event = _event(stack, ["uploads/killed.png"])
    # CI takes 3 s; the holder is killed while its call is in flight, and the call lands all the same
    stack.standin.set_faults(FaultPlan(1.0, kinds=("delay",), delay_s=3.0, targets=("ci",)))
    bound = {"CI_LANDING_BOUND_S": "4"}  # its claim lives 6 s of budget + 4 s + 2 s, by COS's clock
    stack.spec = dataclasses.replace(stack.spec, timeout_s=6)
    with _container(stack, **bound) as doomed:
        thread = threading.Thread(target=lambda: doomed.invoke(event))
        thread.start()
        deadline = time.monotonic() + 20
        while not stack.standin.store.list(BUCKET, "superres/.claims/").contents:
            assert time.monotonic() < deadline, "the first instance never took its claim"
            time.sleep(0.05)
        doomed.kill()  # as SCF kills an instance at its time limit, or a crash: the claim stays behind
        thread.join(30)
    stack.standin.set_faults(FaultPlan(0.0))
    stack.spec = dataclasses.replace(stack.spec, timeout_s=30)
    with _container(stack, **bound) as container:
        result = container.invoke(event)  # SCF's retry of the event
    assert result.ok, result.error
    (line,) = _lines(result)
    assert line["outcome"] == "processed" and "took over the expired claim" in line["warning"], line
    assert stack.standin.store.list(BUCKET, "superres/.claims/").contents == ()
