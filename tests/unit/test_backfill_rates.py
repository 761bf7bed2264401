"""The backfill's rates: Cloud Infinite's documented limit by region, the Invoke API's 100/s with --deployed, and
what a reserved concurrency absorbs. Pure logic: no request is made."""

from __future__ import annotations

from pathlib import Path

from superres_fn import load_settings

from superres.backfill import Backfill, BackfillOptions, Deployed
from superres.scf.client import Target
from superres.scf.serverless import FunctionSpec

SPEC = FunctionSpec(name="cos-superres-dev", handler="index.main_handler", src=Path("handler"), runtime="Python3.10",
                    region="ap-guangzhou", memory_mb=512, timeout_s=60, environment={"DEST_PREFIX": "superres/"},
                    triggers=())


def _limiters(said: list[str], **options: object) -> dict[str, float]:
    opts = BackfillOptions(bucket="photos-1250000000", **options)  # type: ignore[arg-type]
    job = Backfill(opts, SPEC, load_settings({"DEST_PREFIX": "superres/"}), None, None,  # type: ignore[arg-type]
                   say=said.append)
    return {name: limiter.rate for name, limiter in job._limiters().items()}


def test_the_default_rate_is_the_regions_documented_ci_limit() -> None:
    said: list[str] = []
    assert _limiters(said, region="ap-guangzhou") == {"objects": 100}
    assert _limiters(said, region="ap-singapore") == {"objects": 50}
    assert _limiters(said, region="ap-shanghai-fsi") == {"objects": 50}
    assert said == []


def test_a_rate_above_the_limit_is_lowered_except_against_a_stand_in() -> None:
    said: list[str] = []
    assert _limiters(said, region="ap-singapore", rate=500.0) == {"objects": 50}
    assert said == ["--rate 500 is above Cloud Infinite's 50 requests/s in ap-singapore: using 50"]
    assert _limiters(said, region="ap-singapore", rate=500.0, endpoint="http://127.0.0.1:9000") == {"objects": 500}


def test_deployed_keeps_to_the_invoke_limit_and_the_reserved_instances() -> None:
    said: list[str] = []
    deployed = Deployed(client=None, target=Target("cos-superres-dev", "ap-guangzhou"))
    assert _limiters(said, deployed=deployed) == {"objects": 100, "invocations": 100}
    # 2,048 MB reserved / 512 MB per instance = 4 instances, 2 s per image: 2 objects/s
    assert _limiters(said, deployed=deployed, reserved_concurrency_mb=2048, seconds_per_image=2.0) == {
        "objects": 2, "invocations": 100}
    assert said == ["reserved concurrency 2048 MB = 4 instances of 512 MB at ~2 s per image: 2 objects/s"]
