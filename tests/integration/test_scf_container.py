"""The local SCF instance runs the handler in its own process, as SCF does: logs, errors, timeouts, retries."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from superres.scf.container import ContainerOptions, FunctionContainer
from superres.scf.serverless import load_function_spec
from superres.scf.trigger import TriggerDispatcher, build_cos_event, invocation_lines
from superres.standin.events import ObjectCreated
from tests.conftest import ROOT, load_event

HANDLER = '''
import json, os, sys, time
STATE = os.path.join(os.path.dirname(__file__), "calls.txt")
def main_handler(event, context):
    with open(STATE, "a") as fh:
        fh.write(context["request_id"] + "\\n")
    calls = open(STATE).read().count("\\n")
    print(json.dumps({"calls": calls, "env": os.environ.get("DEST_PREFIX")}))
    mode = event.get("mode")
    if mode == "fail-twice" and calls <= 2:
        raise RuntimeError("boom %d" % calls)
    if mode == "sleep":
        time.sleep(30)
    if mode == "exit":
        os._exit(3)
    return {"calls": calls, "region": context["tencentcloud_region"], "limit": context["time_limit_in_ms"]}
'''


@pytest.fixture
def spec(tmp_path: Path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text(HANDLER)
    base = load_function_spec(ROOT / "serverless.yml", environ={})
    return replace(base, src=code, timeout_s=3)


def test_invoke_returns_value_logs_and_context(spec):
    with FunctionContainer(spec) as container:
        first = container.invoke({"mode": "ok"})
        second = container.invoke({"mode": "ok"})
    assert first.ok and first.return_value == {"calls": 1, "region": "ap-guangzhou", "limit": 3000}
    assert second.return_value["calls"] == 2  # the same warm instance
    assert first.log_records == [{"calls": 1, "env": "superres/"}]
    assert first.memory_bytes > 0 and first.billed_ms >= 1


def test_user_exception_is_reported_with_traceback_in_log(spec):
    with FunctionContainer(spec) as container:
        result = container.invoke({"mode": "fail-twice"})
    assert not result.ok
    assert result.error["errorMessage"] == "user code exception caught"
    assert result.error["message"] == "boom 1"
    assert any("RuntimeError: boom 1" in line for line in result.logs)


def test_timeout_kills_instance_and_next_invocation_starts_cold(spec):
    with FunctionContainer(spec) as container:
        result = container.invoke({"mode": "sleep"})
        assert result.timed_out and not result.ok
        assert container.cold
        assert container.invoke({"mode": "ok"}).ok


def test_crash_is_reported(spec):
    with FunctionContainer(spec) as container:
        result = container.invoke({"mode": "exit"})
    assert not result.ok and not result.timed_out
    assert result.error["errorType"] == "Crash"


def test_isolated_instance_sees_only_code_and_layer_dirs(spec, tmp_path: Path):
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "only_in_layer.py").write_text("VALUE = 42\n")
    (spec.src / "index.py").write_text(
        "import sys, only_in_layer\n"
        "def main_handler(event, context):\n"
        "    try:\n        import qcloud_cos\n        has_sdk = True\n"
        "    except ImportError:\n        has_sdk = False\n"
        "    return {'value': only_in_layer.VALUE, 'has_sdk': has_sdk}\n"
    )
    with FunctionContainer(spec, ContainerOptions(isolated=True, layer_dirs=[layer])) as container:
        result = container.invoke({})
    assert result.return_value == {"value": 42, "has_sdk": False}


def test_trigger_retries_failed_invocations_twice_like_scf(spec):
    dispatcher = TriggerDispatcher(spec, ContainerOptions(), region="ap-guangzhou", instances=1,
                                   retry_interval_s=0.05)
    try:
        dispatcher.submit({"mode": "fail-twice"})
        assert dispatcher.wait_idle(60)
    finally:
        dispatcher.close()
    assert [(d.attempt, d.result.ok) for d in dispatcher.deliveries] == [(0, False), (1, False), (2, True)]


def test_trigger_gives_up_after_two_retries(spec):
    dispatcher = TriggerDispatcher(spec, ContainerOptions(), region="ap-guangzhou", instances=1,
                                   retries=2, retry_interval_s=0.05)
    try:
        dispatcher.submit({"mode": "exit"})
        assert dispatcher.wait_idle(60)
    finally:
        dispatcher.close()
    assert [d.attempt for d in dispatcher.deliveries] == [0, 1, 2]
    assert not any(d.result.ok for d in dispatcher.deliveries)


def test_built_event_has_the_real_shape_and_parses_back():
    from superres_fn import parse_record

    obj = ObjectCreated(bucket="photos-1250000000", key="uploads/猫 a+b%.jpg", size=10, etag='"abc"',
                        content_type="image/jpeg", meta={"x-cos-meta-k": "v"}, event_name="cos:ObjectCreated:Put",
                        request_id="rid", source_ip="127.0.0.1", authorization="q-sign-algorithm=sha1&q-signature=x")
    record = build_cos_event(obj, appid="1250000000", region="ap-guangzhou")
    reference = load_event("real_capture_2022.json")["Records"][0]
    assert set(record) == set(reference)
    assert set(record["cos"]["cosBucket"]) == set(reference["cos"]["cosBucket"])
    assert set(record["event"]) == set(reference["event"])
    assert record["cos"]["cosObject"]["key"] == "/1250000000/photos/uploads/猫 a+b%.jpg"
    assert "%E7%8C%AB%20a%2Bb%25.jpg" in record["cos"]["cosObject"]["url"]
    assert isinstance(record["event"]["eventTime"], int)
    parsed = parse_record(json.loads(json.dumps(record)))
    assert (parsed.key, parsed.bucket, parsed.etag) == ("uploads/猫 a+b%.jpg", "photos-1250000000", '"abc"')


def test_memory_is_the_instance_own_peak_not_the_parent_one(spec):
    ballast = bytearray(300 * 1024 * 1024)  # make the parent big: a child must not inherit its figure
    ballast[::4096] = b"x" * len(ballast[::4096])
    with FunctionContainer(spec) as container:
        result = container.invoke({"mode": "ok"})
    del ballast
    assert 0 < result.memory_bytes < 200 * 1024 * 1024


def test_cold_start_is_timed_apart_from_the_invocation(spec):
    # a 2 s import with a 3 s function timeout: SCF's initTimeout covers the import, not the invocation's limit
    (spec.src / "index.py").write_text(
        "import time\nprint('initializing')\ntime.sleep(2)\n"
        "def main_handler(event, context):\n    time.sleep(2)\n    return 'ok'\n")
    with FunctionContainer(spec) as container:
        result = container.invoke({})
    assert result.ok and result.return_value == "ok"
    assert result.logs[0] == "initializing"  # the cold start's output opens the first invocation's log


def test_initialization_timeout_is_reported(spec):
    (spec.src / "index.py").write_text("import time\ntime.sleep(30)\ndef main_handler(e, c):\n    return 1\n")
    with FunctionContainer(replace(spec, init_timeout_s=1)) as container:
        result = container.invoke({})
    assert not result.ok and result.timed_out
    assert result.error["errorMessage"] == "Initialization timed out after 1 seconds"


def test_event_nested_past_what_json_can_write_fails_that_invocation_only(spec):
    deep: object = {"mode": "ok"}
    for _ in range(5000):
        deep = [deep]
    with FunctionContainer(spec) as container:
        first = container.invoke({"Records": deep})
        assert not first.ok and first.error["errorType"] == "RecursionError"
        after = container.invoke({"mode": "ok"})  # the instance (and the caller's thread) lives on
    assert after.ok and after.return_value["calls"] == 1


def _spec_for(tmp_path: Path, source: str):  # type: ignore[no-untyped-def]
    """serverless.yml's function with `source` as its index.py."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "index.py").write_text(source)
    return replace(load_function_spec(ROOT / "serverless.yml", environ={}), src=code, timeout_s=10)


def test_runtime_sets_logging_up_as_the_scf_bootstrap_does(tmp_path: Path):
    spec = _spec_for(tmp_path,
        "import logging\n"
        "def main_handler(event, context):\n"
        "    root = logging.getLogger()\n"
        "    logging.getLogger('some.library').debug('a library debug line')\n"
        "    return {'level': root.level, 'handlers': [type(h).__name__ for h in root.handlers],\n"
        "            'stream': getattr(root.handlers[0].stream, 'name', None)}\n")
    with FunctionContainer(spec) as container:
        result = container.invoke({})
    assert result.ok, result.error
    assert result.return_value == {"level": 10, "handlers": ["StreamHandler"], "stream": "<stdout>"}
    assert "a library debug line" in result.logs  # what SCF's log would show


def test_an_event_as_deep_as_json_can_write_reaches_the_function(tmp_path: Path):
    spec = _spec_for(tmp_path,
        "def main_handler(event, context):\n"
        "    depth, value = 0, event['Records']\n"
        "    while isinstance(value, list):\n"
        "        depth, value = depth + 1, value[0]\n"
        "    print('{\"logger\": \"superres\", \"depth\": %d}' % depth)\n"
        "    raise RuntimeError('and a traceback')\n")
    deep: object = {"mode": "ok"}
    for _ in range(990):
        deep = [deep]
    results = []
    with FunctionContainer(spec) as container:
        # from a thread of its own, as the trigger delivers: the caller's stack is shallow enough to write the event
        caller = threading.Thread(target=lambda: results.append(container.invoke({"Records": deep})))
        caller.start()
        caller.join(30)
    (result,) = results
    assert result.error["errorType"] == "RuntimeError"  # the function ran; RecursionError would mean it did not
    assert result.log_records[0]["depth"] == 990
    # what DATA/function-log.jsonl gets: only JSON objects, the traceback in a field of one of them
    lines = [json.loads(line) for line in invocation_lines(result, 0)]
    assert [line["logger"] for line in lines] == ["superres", "superres.scf.output", "superres.scf"]
    assert "RuntimeError: and a traceback" in lines[1]["text"]
