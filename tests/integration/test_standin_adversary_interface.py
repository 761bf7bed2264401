"""The stand-in's scripting interface for adversary tests, driven by the real SDK over HTTP: the request log (in
memory and as a file, in-process and from `superres local`), inject rules (latency for one op, errors that change
nothing, share and count, an inject file re-read while serving, CI calls answered late) and the storage clock skew.
Rule grammar and combination logic: tests/unit/test_inject_rules.py."""

from __future__ import annotations

import calendar
import json
import time
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from superres.commands.local_cmd import local
from superres.scf.trigger import build_cos_event
from superres.sr import load_engine
from superres.standin import DEMO_SECRET_KEY, ObjectCreated, StandIn, StandinSettings
from tests.integration.local_process import BUCKET, cos_client, superres_local

from .conftest import image_bytes

SR_RULE = '{{"is_pic_info":1,"rules":[{{"fileid":"/{dest}","rule":"ci-process=AISuperResolution"}}]}}'
FIELDS = {"time", "method", "bucket", "key", "subresources", "ci", "status", "duration_ms", "request_id", "injected"}


@pytest.fixture(scope="module")
def request_log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adversary-log") / "requests.jsonl"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request_log_path: Path) -> Iterator[StandIn]:
    settings = StandinSettings(data_dir=tmp_path_factory.mktemp("adversary"))
    with StandIn(settings, engine=load_engine("bicubic"), request_log=request_log_path) as standin:
        yield standin


@pytest.fixture
def standin(server: StandIn) -> Iterator[StandIn]:
    """The module's server with no rules, no skew and an empty in-memory log; put back that way afterwards."""
    server.clear_requests()
    yield server
    server.set_injections([])
    server.set_inject_file(None)
    server.set_clock_skew(0)
    assert server.wait_idle(60)


@pytest.fixture
def bucket(server: StandIn) -> str:
    name = server.create_bucket(f"adv{uuid.uuid4().hex[:10]}")
    server.client().put_object(Bucket=name, Key="uploads/a.jpg", Body=image_bytes())
    server.clear_requests()  # the test's own requests are the log
    return name


def _client(standin: StandIn, timeout: float = 30) -> CosS3Client:
    """No SDK retries, so every request the test makes is one request served."""
    cred = standin.settings.credentials[0]
    config = CosConfig(Region=standin.settings.region, SecretId=cred.secret_id, SecretKey=cred.secret_key,
                       IP="127.0.0.1", Port=standin.port, Scheme="http", Timeout=timeout)
    return CosS3Client(config, retry=0)


def _sr(client: CosS3Client, bucket: str, key: str, dest: str) -> dict:
    return client.ci_image_process(Bucket=bucket, Key=key, PicOperations=SR_RULE.format(dest=dest))


def _wait_for(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


# ---- the request log ----------------------------------------------------------------------------------------
def test_every_request_served_is_one_record_with_its_fields(standin: StandIn, bucket: str):
    client = _client(standin)
    client.put_object(Bucket=bucket, Key="uploads/b.jpg", Body=image_bytes())
    head = client.head_object(Bucket=bucket, Key="uploads/b.jpg")
    _sr(client, bucket, "uploads/b.jpg", "out/b.png")
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=bucket, Key="uploads/missing.jpg")
    client.put_object_acl(Bucket=bucket, Key="uploads/b.jpg", ACL="private")

    records = standin.requests()
    assert [(r["method"], r["key"], r["subresources"], r["ci"], r["status"]) for r in records] == [
        ("PUT", "uploads/b.jpg", [], False, 200),
        ("HEAD", "uploads/b.jpg", [], False, 200),
        ("POST", "uploads/b.jpg", ["image_process"], True, 200),
        ("HEAD", "uploads/missing.jpg", [], False, 404),
        ("PUT", "uploads/b.jpg", ["acl"], False, 200),
    ]
    for record in records:
        assert set(record) == FIELDS
        assert record["bucket"] == bucket and record["injected"] is None and record["duration_ms"] >= 0
    assert records[1]["request_id"] == head["x-cos-request-id"]
    assert standin.count(ci=True) == 1
    assert standin.count(method="head") == 2
    assert standin.count(method="HEAD", status=404) == 1
    assert standin.count(key_prefix="uploads/b", ci=False) == 3
    standin.clear_requests()
    assert standin.requests() == [] and standin.count() == 0


def test_an_upload_with_pic_operations_is_a_ci_call(standin: StandIn, bucket: str):
    _client(standin).put_object(Bucket=bucket, Key="uploads/c.jpg", Body=image_bytes(),
                                PicOperations=SR_RULE.format(dest="out/c.png"))
    assert [(r["method"], r["ci"], r["status"]) for r in standin.requests()] == [("PUT", True, 200)]


def test_the_request_log_file_has_a_json_line_per_request_and_no_credentials(
    standin: StandIn, bucket: str, request_log_path: Path
):
    client = _client(standin)
    client.put_object(Bucket=bucket, Key="uploads/file.txt", Body=b"x")
    client.get_object(Bucket=bucket, Key="uploads/file.txt")["Body"].get_raw_stream().read()
    text = request_log_path.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [(line["method"], line["key"]) for line in lines[-2:]] == [("PUT", "uploads/file.txt"),
                                                                     ("GET", "uploads/file.txt")]
    assert lines[-2:] == standin.requests()[-2:]
    cred = standin.settings.credentials[0]
    for secret in (cred.secret_key, "q-sign-algorithm", "q-signature", "Authorization"):
        assert secret not in text


# ---- inject rules -------------------------------------------------------------------------------------------
def test_a_latency_range_applies_to_its_op_only(standin: StandIn, bucket: str):
    standin.set_injections(["op=head,latency=0.3-0.5"])
    client = _client(standin)
    client.head_object(Bucket=bucket, Key="uploads/a.jpg")
    client.get_object(Bucket=bucket, Key="uploads/a.jpg")["Body"].get_raw_stream().read()
    client.put_object(Bucket=bucket, Key="uploads/d.txt", Body=b"d")
    head, get, put = standin.requests()
    assert head["injected"] == "op=head,latency=0.3-0.5" and head["duration_ms"] >= 300
    assert get["injected"] is None and put["injected"] is None


def test_an_injected_error_is_cos_xml_and_changes_nothing(standin: StandIn, bucket: str):
    standin.set_injections(["op=put,prefix=uploads/,error=503:SlowDown", "op=delete,error=500"])
    client = _client(standin)
    with pytest.raises(CosServiceError) as put:
        client.put_object(Bucket=bucket, Key="uploads/e.txt", Body=b"e")
    assert (put.value.get_status_code(), put.value.get_error_code()) == (503, "SlowDown")
    assert put.value.get_request_id() and put.value.get_resource_location() == f"{bucket}/uploads/e.txt"
    with pytest.raises(CosServiceError) as delete:
        client.delete_object(Bucket=bucket, Key="uploads/a.jpg")
    assert (delete.value.get_status_code(), delete.value.get_error_code()) == (500, "InternalError")
    client.put_object(Bucket=bucket, Key="other/e.txt", Body=b"e")  # outside the prefix: served
    standin.set_injections([])
    assert not client.object_exists(Bucket=bucket, Key="uploads/e.txt")
    assert client.object_exists(Bucket=bucket, Key="uploads/a.jpg")
    assert [(r["status"], r["injected"]) for r in standin.requests()[:3]] == [
        (503, "op=put,prefix=uploads/,error=503:SlowDown"), (500, "op=delete,error=500"), (200, None)]


def test_count_spends_a_rule_and_share_zero_never_draws(standin: StandIn, bucket: str):
    standin.set_injections(["op=head,error=503:SlowDown,count=2", "op=get,share=0,error=500"])
    client = _client(standin)
    statuses = []
    for _ in range(4):
        try:
            client.head_object(Bucket=bucket, Key="uploads/a.jpg")
            statuses.append(200)
        except CosServiceError as err:
            statuses.append(err.get_status_code())
    client.get_object(Bucket=bucket, Key="uploads/a.jpg")
    assert statuses == [503, 503, 200, 200]
    assert standin.count(method="GET", status=200) == 1


def test_share_injects_into_some_requests_and_not_others(standin: StandIn, bucket: str):
    standin.set_injections(["op=head,share=0.5,seed=5,error=503:SlowDown"])
    client = _client(standin)
    for _ in range(30):
        try:
            client.head_object(Bucket=bucket, Key="uploads/a.jpg")
        except CosServiceError:
            pass
    assert 0 < standin.count(status=503) < 30
    assert standin.count(status=503) + standin.count(status=200) == 30


def test_the_inject_file_is_re_read_while_serving(standin: StandIn, bucket: str, tmp_path: Path):
    rules = tmp_path / "inject.txt"
    rules.write_text("# nothing yet\n")
    standin.set_inject_file(rules)
    client = _client(standin)
    client.head_object(Bucket=bucket, Key="uploads/a.jpg")
    rules.write_text("op=head,error=503:SlowDown\n")
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=bucket, Key="uploads/a.jpg")
    rules.write_text("op=head,error=not-a-status\n")  # a bad edit keeps the rules in force
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=bucket, Key="uploads/a.jpg")
    rules.write_text("op=get,error=500\n")
    client.head_object(Bucket=bucket, Key="uploads/a.jpg")
    assert [r["status"] for r in standin.requests()] == [200, 503, 503, 200]


def test_a_late_ci_call_times_out_and_its_result_lands_afterwards(standin: StandIn, bucket: str):
    standin.set_injections(["op=ci,late=2"])
    client = _client(standin, timeout=1)
    with pytest.raises(CosClientError, match="timed out"):
        _sr(client, bucket, "uploads/a.jpg", "out/late.png")
    checker = _client(standin)
    assert not checker.object_exists(Bucket=bucket, Key="out/late.png")  # nothing landed when the client gave up
    assert _wait_for(lambda: checker.object_exists(Bucket=bucket, Key="out/late.png"))
    assert standin.wait_idle(60)
    late = [r for r in standin.requests() if r["ci"]]
    assert [(r["status"], r["injected"]) for r in late] == [(200, "op=ci,late=2")]


def test_a_late_rule_leaves_other_operations_answered(standin: StandIn, bucket: str):
    standin.set_injections(["op=ci,late=1"])
    client = _client(standin, timeout=5)
    client.put_object(Bucket=bucket, Key="uploads/f.txt", Body=b"f")
    assert client.head_object(Bucket=bucket, Key="uploads/f.txt")["Content-Length"] == "1"


# ---- the storage clock --------------------------------------------------------------------------------------
@pytest.mark.parametrize("skew", [7200.0, -7200.0])
def test_clock_skew_moves_last_modified_and_date_but_signatures_still_verify(
    standin: StandIn, bucket: str, skew: float
):
    standin.set_clock_skew(skew)
    client = _client(standin)
    client.put_object(Bucket=bucket, Key="uploads/skewed.txt", Body=b"s")
    head = client.head_object(Bucket=bucket, Key="uploads/skewed.txt")
    now = time.time()
    modified = parsedate_to_datetime(head["Last-Modified"]).timestamp()
    date = parsedate_to_datetime(head["Date"]).timestamp()
    # An hour's margin each way: the clocks are two hours apart, so no machine is slow enough to blur it.
    assert abs(modified - (now + skew)) < 3600 and abs(date - (now + skew)) < 3600
    listed = client.list_objects(Bucket=bucket, Prefix="uploads/skewed.txt")["Contents"][0]["LastModified"]
    assert abs(calendar.timegm(time.strptime(listed[:19], "%Y-%m-%dT%H:%M:%S")) - modified) < 2  # one clock
    standin.set_clock_skew(0)
    client.put_object(Bucket=bucket, Key="uploads/plain.txt", Body=b"p")
    plain = parsedate_to_datetime(client.head_object(Bucket=bucket, Key="uploads/plain.txt")["Last-Modified"])
    assert abs(plain.timestamp() - time.time()) < 3600


# ---- `superres local` ---------------------------------------------------------------------------------------
def test_superres_local_writes_the_request_log_and_applies_inject_and_clock_skew(tmp_path: Path):
    log_path = tmp_path / "requests.jsonl"
    with superres_local(tmp_path / "data", "--no-trigger", "--request-log", str(log_path),
                        "--inject", "op=head,prefix=uploads/,error=503:SlowDown,count=1",
                        "--clock-skew", "-7200") as (_, port):
        client = cos_client(port)
        client.put_object(Bucket=BUCKET, Key="uploads/a.txt", Body=b"a")
        with pytest.raises(CosServiceError) as refused:
            client.head_object(Bucket=BUCKET, Key="uploads/a.txt")
        head = client.head_object(Bucket=BUCKET, Key="uploads/a.txt")
        lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert refused.value.get_status_code() == 503  # a HEAD answer has no body to carry the code
    assert abs(parsedate_to_datetime(head["Last-Modified"]).timestamp() - (time.time() - 7200)) < 3600
    ours = [line for line in lines if line["key"] == "uploads/a.txt"]
    assert [(line["method"], line["bucket"], line["status"], line["injected"]) for line in ours] == [
        ("PUT", BUCKET, 200, None),
        ("HEAD", BUCKET, 503, "op=head,prefix=uploads/,error=503:SlowDown,count=1"),
        ("HEAD", BUCKET, 200, None),
    ]
    assert all(set(line) == FIELDS for line in lines)
    assert DEMO_SECRET_KEY not in log_path.read_text(encoding="utf-8")


def test_superres_local_refuses_a_bad_inject_spec_in_one_line(tmp_path: Path):
    result = CliRunner().invoke(local, ["--data", str(tmp_path), "--inject", "op=ci,late=soon"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: inject spec 'op=ci,late=soon': late must be seconds (a number), got 'soon'"]
    bad_file = tmp_path / "rules.txt"
    bad_file.write_text("# ok\nop=get,error=200\n")
    result = CliRunner().invoke(local, ["--data", str(tmp_path), "--inject-file", str(bad_file)])
    assert result.exit_code == 1 and f"{bad_file}, line 2: inject spec 'op=get,error=200'" in result.output


def test_clock_skew_leaves_the_trigger_event_time_on_real_time(tmp_path: Path):
    events: list[ObjectCreated] = []
    settings = StandinSettings(data_dir=tmp_path / "data")
    with StandIn(settings, engine=load_engine("bicubic"), on_object_created=events.append,
                 clock_skew_s=-7200) as standin:
        bucket = standin.create_bucket("skewed")
        client = _client(standin)
        client.put_object(Bucket=bucket, Key="uploads/a.txt", Body=b"a")
        head = client.head_object(Bucket=bucket, Key="uploads/a.txt")
    event = build_cos_event(events[0], appid=settings.appid, region=settings.region)
    modified = parsedate_to_datetime(head["Last-Modified"]).timestamp()
    assert event["event"]["eventTime"] - modified > 3600  # the object is stamped two hours before its event
    assert abs(event["event"]["eventTime"] - time.time()) < 3600
