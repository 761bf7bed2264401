"""Several outputs per upload, end to end: OUTPUTS=x2/:2,x4/:4:webp:80 in the function's environment, one upload
with the real SDK, the COS trigger runs the function, the stand-in does CI's work (PNG super-resolution results,
imageMogr2 conversion) and counts the CI requests."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from superres.standin.faults import FaultPlan

BUCKET = "photos-1250000000"
KEY = "uploads/cat.jpg"


def _jpeg(size: tuple[int, int] = (48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize(size).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    options = StackOptions(data_dir=tmp_path / "data", engine=load_engine("bicubic"), faults=FaultPlan(0.0),
                           function_env={"OUTPUTS": "x2/:2,x4/:4:webp:80"})
    with LocalStack(options) as running:
        yield running


def _function_lines(stack: LocalStack) -> list[dict]:
    path = stack.options.data_dir / "function-log.jsonl"
    lines = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines() if text.strip()]
    return [line for line in lines if line.get("logger") == "superres"]


def _ci_requests(stack: LocalStack) -> list:
    assert stack.standin.faults.wait_idle(30)
    return [r for r in stack.standin.faults.records if r.is_ci]


def test_x2_and_x4_webp_from_one_upload_in_one_super_resolution_call(stack: LocalStack):
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key=KEY, Body=_jpeg())
    assert stack.trigger.wait_idle(120)

    x2 = client.get_object(Bucket=BUCKET, Key="superres/x2/" + KEY + ".png")["Body"].get_raw_stream().read()
    x4 = client.get_object(Bucket=BUCKET, Key="superres/x4/" + KEY + ".webp")["Body"].get_raw_stream().read()
    with Image.open(io.BytesIO(x2)) as image:
        assert (image.format, image.size) == ("PNG", (96, 64))  # what AISuperResolution writes
    with Image.open(io.BytesIO(x4)) as image:
        assert (image.format, image.size) == ("WEBP", (192, 128))
    # one request super-resolved both, one converted x4; nothing left in staging or claims
    assert len(_ci_requests(stack)) == 2
    assert [info.key for info in stack.standin.store.list(BUCKET, "superres/.").contents] == []

    (line,) = [line for line in _function_lines(stack) if line["key"] == KEY]
    assert line["outcome"] == "processed" and line["attempts"] == 2
    assert [(o["dest_key"], o["magnify"], o["format"], o["status"]) for o in line["outputs"]] == [
        ("superres/x2/" + KEY + ".png", 2, None, "processed"),
        ("superres/x4/" + KEY + ".webp", 4, "webp", "processed")]
    assert line["outputs"][1]["result"]["width"] == 192


def test_reupload_of_the_same_key_refreshes_every_output_and_a_retry_skips_them(stack: LocalStack):
    import time

    client = stack.client()
    client.put_object(Bucket=BUCKET, Key=KEY, Body=_jpeg((48, 32)))
    assert stack.trigger.wait_idle(120)
    time.sleep(1.05 - time.time() % 1)  # a later second than the stored results
    client.put_object(Bucket=BUCKET, Key=KEY, Body=_jpeg((20, 10)))
    assert stack.trigger.wait_idle(120)
    x4 = client.get_object(Bucket=BUCKET, Key="superres/x4/" + KEY + ".webp")["Body"].get_raw_stream().read()
    with Image.open(io.BytesIO(x4)) as image:
        assert image.size == (80, 40)
    assert len(_ci_requests(stack)) == 4


def test_an_output_in_another_bucket(tmp_path: Path):
    options = StackOptions(data_dir=tmp_path / "other", engine=load_engine("bicubic"), faults=FaultPlan(0.0),
                           function_env={"OUTPUTS": "x2/:2,x4/:4:jpg:70@results-1250000000"})
    with LocalStack(options) as stack:
        client = stack.client()
        client.create_bucket(Bucket="results-1250000000")
        client.put_object(Bucket=BUCKET, Key=KEY, Body=_jpeg())
        assert stack.trigger.wait_idle(120)
        x4 = client.get_object(Bucket="results-1250000000",
                               Key="superres/x4/" + KEY + ".jpg")["Body"].get_raw_stream().read()
        with Image.open(io.BytesIO(x4)) as image:
            assert (image.format, image.size) == ("JPEG", (192, 128))
        assert client.object_exists(Bucket=BUCKET, Key="superres/x2/" + KEY + ".png")
        assert not client.object_exists(Bucket=BUCKET, Key="superres/x4/" + KEY + ".jpg")
        assert [info.key for info in stack.standin.store.list("results-1250000000", "superres/.").contents] == []
        assert len(_ci_requests(stack)) == 2
