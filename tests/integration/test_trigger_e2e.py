"""Upload through the SDK -> the stand-in fires the COS trigger -> the function (own process) calls CI ->
the result lands under the destination prefix. The fast bicubic engine stands in for the model here;
test_real_model.py runs the SPAN model through the same path."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from superres.standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

BUCKET = "photos-1250000000"


def _png(size=(48, 32), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def stack(tmp_path: Path):
    with LocalStack(StackOptions(data_dir=tmp_path / "data", engine=load_engine("bicubic"),
                                 retry_interval_s=0.1)) as running:
        yield running


def _lines(stack: LocalStack) -> list[dict]:
    return [json.loads(line) for line in stack.trigger.log_lines if line.startswith("{")]


def test_upload_is_super_resolved_into_destination_prefix(stack):
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="uploads/red.png", Body=_png(), ContentType="image/png")
    assert stack.trigger.wait_idle(120)
    got = client.get_object(Bucket=BUCKET, Key="superres/uploads/red.png.png")  # RESULT_NAMES=append, the default
    with Image.open(io.BytesIO(got["Body"].get_raw_stream().read())) as image:
        assert image.size == (96, 64) and image.format == "PNG"
    assert got["Content-Type"] == "image/png"
    (record,) = [line for line in _lines(stack) if line.get("logger") == "superres"]
    assert record["outcome"] == "processed"
    assert record["result"]["width"] == 96 and record["result"]["height"] == 64
    assert record["result"]["key"] == "superres/uploads/red.png.png"
    assert record["original"] == {"width": 48, "height": 32, "format": "PNG"}


def test_output_does_not_trigger_more_work(stack):
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="uploads/a.png", Body=_png())
    assert stack.trigger.wait_idle(120)
    # The result object raised an ObjectCreated event too, but it is outside the trigger's prefix.
    assert len(stack.trigger.deliveries) == 1
    keys = [o["Key"] for o in client.list_objects(Bucket=BUCKET).get("Contents", [])]
    assert sorted(keys) == ["superres/uploads/a.png.png", "uploads/a.png"]


def test_upload_under_destination_prefix_inside_trigger_prefix_is_skipped(tmp_path: Path):
    # A misconfiguration where the trigger covers the destination: the code guard stops the loop. (The stack
    # itself refuses such a configuration; this test turns that off to reach the function's own guard.)
    options = StackOptions(data_dir=tmp_path / "d", engine=load_engine("bicubic"),
                           function_env={"DEST_PREFIX": "uploads/superres/"}, refuse_self_trigger=False)
    with LocalStack(options) as stack:
        stack.client().put_object(Bucket=BUCKET, Key="uploads/b.png", Body=_png())
        assert stack.trigger.wait_idle(120)
        outcomes = [(line["key"], line["reason"]) for line in _lines(stack) if line.get("logger") == "superres"]
    # The claim object (CLAIM_WORK) and the staged result land under the destination prefix too, and are stopped by
    # the same guard.
    claims = [item for item in outcomes if item[0].startswith(("uploads/superres/.claims/",
                                                               "uploads/superres/.staging/"))]
    assert [reason for _, reason in claims] == ["under_destination_prefix"] * 2
    assert sorted(item for item in outcomes if item not in claims) == [
        ("uploads/b.png", "processed"), ("uploads/superres/uploads/b.png.png", "under_destination_prefix")]


@pytest.mark.parametrize("key", ["uploads/a b+c%d#e?.png", "uploads/猫/照片 1.png", "uploads/😀.png"])
def test_tricky_keys_round_trip_end_to_end(stack, key):
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key=key, Body=_png())
    assert stack.trigger.wait_idle(120)
    assert client.object_exists(Bucket=BUCKET, Key="superres/" + key + ".png")


def test_magnify_4_from_function_environment(tmp_path: Path):
    options = StackOptions(data_dir=tmp_path / "d", engine=load_engine("bicubic"), function_env={"MAGNIFY": "4"})
    with LocalStack(options) as stack:
        client = stack.client()
        client.put_object(Bucket=BUCKET, Key="uploads/x4.png", Body=_png((20, 10)))
        assert stack.trigger.wait_idle(120)
        body = client.get_object(Bucket=BUCKET, Key="superres/uploads/x4.png.png")["Body"].get_raw_stream().read()
    assert Image.open(io.BytesIO(body)).size == (80, 40)


def test_non_image_upload_is_skipped_and_ci_refusal_is_not_retried(stack):
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="uploads/notes.txt", Body=b"hello")
    client.put_object(Bucket=BUCKET, Key="uploads/fake.png", Body=b"not really a png")
    assert stack.trigger.wait_idle(120)
    lines = {line["key"]: line for line in _lines(stack) if line.get("logger") == "superres"}
    assert lines["uploads/notes.txt"]["reason"] == "suffix_not_accepted"
    assert lines["uploads/fake.png"]["outcome"] == "failed"
    assert lines["uploads/fake.png"]["error"]["code"] == "InvalidImageFormat"
    assert lines["uploads/fake.png"]["error"]["retryable"] is False
    # a permanent CI error is not raised, so SCF does not retry (and re-bill) it
    assert all(d.attempt == 0 and d.result.ok for d in stack.trigger.deliveries)


def test_function_log_never_contains_credentials_or_authorization(stack):
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="uploads/s.png", Body=_png())
    assert stack.trigger.wait_idle(120)
    text = (stack.options.data_dir / "function-log.jsonl").read_text()
    cred = stack.settings.credentials[0]
    assert cred.secret_key not in text and cred.secret_id not in text
    assert "q-signature" not in text and "Authorization" not in text


def test_first_answer_after_start_up_already_finds_the_bucket_and_trigger(tmp_path: Path):
    """A client polling from the moment the port exists (as scripts and tests waiting for `superres local` do)
    must never see the bucket missing, nor upload before the trigger is listening."""
    stack = LocalStack(StackOptions(data_dir=tmp_path / "d", engine=load_engine("bicubic")))
    port = stack.standin.bind()
    answers: list[object] = []

    def poll() -> None:
        client = CosS3Client(CosConfig(Region="ap-guangzhou", SecretId=DEMO_SECRET_ID, SecretKey=DEMO_SECRET_KEY,
                                       IP="127.0.0.1", Port=port, Scheme="http"), retry=0)
        while not answers:
            try:
                client.head_bucket(Bucket=BUCKET)
                answers.append(stack.trigger is not None)
            except CosServiceError as exc:
                answers.append(exc.get_status_code())
            except CosClientError:
                time.sleep(0.001)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        stack.start()
        poller.join(30)
    finally:
        answers.append("stop")
        stack.stop()
    assert answers[0] is True
