"""The stand-in's fault injection as the real SDK sees it: each kind, the request filters, repeatable draws, and
switching plans while serving. (What the function does under faults: test_faults.py, slow tier.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from superres.commands.local_cmd import local
from superres.sr import load_engine
from superres.standin import StandIn, StandinSettings
from superres.standin.faults import FaultPlan

from .conftest import image_bytes

PIC_OPERATIONS = '{"is_pic_info":1,"rules":[{"fileid":"/out/a.jpg","rule":"ci-process=AISuperResolution"}]}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    settings = StandinSettings(data_dir=Path(tmp_path_factory.mktemp("faults")))
    with StandIn(settings, engine=load_engine("bicubic")) as standin:
        yield standin


@pytest.fixture
def faulty(server: StandIn, bucket: str) -> Iterator[StandIn]:
    """The server with an empty plan (records requests, injects nothing); any plan is dropped afterwards."""
    server.set_faults(FaultPlan(0.0))
    yield server
    assert server.faults.wait_idle(10)  # a request may still be unwinding after its client saw the answer
    server.set_faults(None)
    server.faults.clear_records()


@pytest.fixture(scope="module")
def bucket(server: StandIn) -> str:
    name = server.create_bucket("faults")
    server.client().put_object(Bucket=name, Key="a.jpg", Body=image_bytes())
    return name


def _client(server: StandIn, timeout: float = 0.5) -> CosS3Client:
    cred = server.settings.credentials[0]
    config = CosConfig(Region=server.settings.region, SecretId=cred.secret_id, SecretKey=cred.secret_key,
                       IP="127.0.0.1", Port=server.port, Scheme="http", Timeout=timeout)
    return CosS3Client(config, retry=0)


@pytest.mark.parametrize(
    ("kind", "status", "code"), [("slowdown", 503, "SlowDown"), ("internal", 500, "InternalError")]
)
def test_error_kinds_answer_with_cos_error_xml(faulty: StandIn, bucket: str, kind: str, status: int, code: str):
    faulty.set_faults(FaultPlan(1.0, kinds=(kind,)))
    with pytest.raises(CosServiceError) as info:
        _client(faulty).get_object(Bucket=bucket, Key="a.jpg")
    assert (info.value.get_status_code(), info.value.get_error_code()) == (status, code)
    assert info.value.get_request_id()


def test_reset_drops_the_connection_without_an_answer(faulty: StandIn, bucket: str):
    faulty.set_faults(FaultPlan(1.0, kinds=("reset",)))
    for call in (lambda c: c.head_object(Bucket=bucket, Key="a.jpg"),
                 lambda c: c.put_object(Bucket=bucket, Key="reset.txt", Body=b"x")):
        with pytest.raises(CosClientError) as info:
            call(_client(faulty))
        assert "reset" in str(info.value).lower() or "aborted" in str(info.value).lower()
    assert faulty.faults.wait_idle(10)
    assert [(r.fault, r.status) for r in faulty.faults.records] == [("reset", None), ("reset", None)]
    faulty.set_faults(None)
    assert not _client(faulty).object_exists(Bucket=bucket, Key="reset.txt")


def test_delay_outlasts_the_client_timeout_but_the_request_is_still_served(faulty: StandIn, bucket: str):
    faulty.set_faults(FaultPlan(1.0, kinds=("delay",), delay_s=0.6))
    with pytest.raises(CosClientError) as info:
        _client(faulty, timeout=0.2).put_object(Bucket=bucket, Key="late.txt", Body=b"late" * 1000)
    assert "timed out" in str(info.value).lower()
    assert faulty.faults.wait_idle(10)
    faulty.set_faults(None)
    body = faulty.client().get_object(Bucket=bucket, Key="late.txt")["Body"].get_raw_stream().read()
    assert body == b"late" * 1000


def test_targets_limit_faults_to_ci_calls_and_head(faulty: StandIn, bucket: str):
    faulty.set_faults(FaultPlan(1.0, kinds=("slowdown",), targets=("ci", "head")))
    client = _client(faulty)
    assert client.get_object(Bucket=bucket, Key="a.jpg")["Body"].get_raw_stream().read()
    client.put_object(Bucket=bucket, Key="plain.txt", Body=b"ok")
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=bucket, Key="a.jpg")
    with pytest.raises(CosServiceError) as info:
        client.ci_image_process(Bucket=bucket, Key="a.jpg", PicOperations=PIC_OPERATIONS)
    assert info.value.get_error_code() == "SlowDown"
    assert faulty.faults.wait_idle(10)
    assert [(r.method, r.is_ci, r.fault) for r in faulty.faults.records] == [
        ("GET", False, None), ("PUT", False, None), ("HEAD", False, "slowdown"), ("POST", True, "slowdown"),
    ]


def test_key_prefix_limits_faults_to_matching_keys(faulty: StandIn, bucket: str):
    faulty.set_faults(FaultPlan(1.0, kinds=("internal",), key_prefix="a."))
    client = _client(faulty)
    client.put_object(Bucket=bucket, Key="b.txt", Body=b"fine")
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=bucket, Key="a.jpg")


def test_same_seed_draws_the_same_faults(faulty: StandIn, bucket: str):
    def run() -> list[str | None]:
        faulty.set_faults(FaultPlan(0.5, kinds=("slowdown", "internal"), seed=7))
        client = _client(faulty)
        for _ in range(30):
            try:
                client.head_object(Bucket=bucket, Key="a.jpg")
            except CosServiceError:
                pass
        assert faulty.faults.wait_idle(10)
        faults = [r.fault for r in faulty.faults.records]
        faulty.faults.clear_records()
        return faults

    first, second = run(), run()
    assert first == second
    assert 5 < sum(f is not None for f in first) < 25  # a share, not all or nothing


def test_share_zero_injects_nothing_and_none_stops_recording(faulty: StandIn, bucket: str):
    client = _client(faulty)
    client.head_object(Bucket=bucket, Key="a.jpg")
    assert faulty.faults.wait_idle(10)
    assert [(r.method, r.fault, r.status) for r in faulty.faults.records] == [("HEAD", None, 200)]
    faulty.set_faults(None)
    client.head_object(Bucket=bucket, Key="a.jpg")
    assert len(faulty.faults.records) == 1


@pytest.mark.parametrize("kwargs", [{"share": 1.5}, {"share": 0.3, "kinds": ("teapot",)}, {"share": 0.3, "kinds": ()},
                                    {"share": 0.3, "targets": ("options",)}, {"share": 0.3, "delay_s": 0}])
def test_invalid_plans_are_refused(kwargs: dict):
    with pytest.raises(ValueError):
        FaultPlan(**kwargs)


def test_plan_from_comma_lists():
    plan = FaultPlan.parse(0.3, "slowdown, reset", "ci,HEAD", delay_s=3, seed=1)
    assert plan == FaultPlan(0.3, kinds=("slowdown", "reset"), targets=("ci", "head"), delay_s=3, seed=1)
    assert FaultPlan.parse(0.3).kinds == ("slowdown", "internal", "reset", "delay")


def test_local_command_refuses_unknown_fault_kind(tmp_path: Path):
    result = CliRunner().invoke(local, ["--data", str(tmp_path), "--fault-share", "0.3", "--fault-kinds", "teapot"])
    assert result.exit_code != 0 and "kinds" in result.output
