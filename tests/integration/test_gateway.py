"""The function's CosGateway against the stand-in: real SDK, real HTTP."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image
from superres_fn import CosCallError, CosGateway, CredentialsError, Invocation, handle_event, load_settings

from tests.conftest import load_event

BUCKET = "photos-1250000000"


def _env(stack, **extra):
    return {**stack.function_env(), "DEST_PREFIX": "superres/", **extra}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_sdk_log_records_never_reach_the_root_logger(stack):
    """As if the runtime had configured the root logger at DEBUG (pytest's caplog would see through this: it
    attaches itself to non-propagating loggers too, so a plain root handler is used)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
    etag = stack.client().put_object(Bucket=BUCKET, Key="uploads/astronaut.jpg", Body=buffer.getvalue())["ETag"]
    event = load_event("put_single.json")
    event["Records"][0]["cos"]["cosObject"]["meta"]["ETag"] = etag  # the version stored here, not the sample's
    env = _env(stack)
    settings = load_settings(env)
    lines: list[dict] = []
    root, collect = logging.getLogger(), _Collect()
    level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        handle_event(event, {"request_id": "r"},
                     Invocation(settings=settings, gateway=CosGateway(settings, env), emit=lines.append))
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
    assert lines[0]["outcome"] == "processed"
    # the HEAD miss (SDK WARNING), headers with the token and the signing key (SDK DEBUG) stay in the SDK
    assert not [r for r in collect.records if r.name.startswith("qcloud_cos")]
    assert [r for r in collect.records if r.name.startswith("superres.standin")]  # the handler did listen


def test_client_is_reused_and_rebuilt_when_credentials_rotate(stack):
    env = _env(stack)
    gateway = CosGateway(load_settings(env), env)
    first = gateway._client("ap-guangzhou")
    assert gateway._client("ap-guangzhou") is first
    env["TENCENTCLOUD_SESSIONTOKEN"] = "rotated"
    assert gateway._client("ap-guangzhou") is not first


def test_near_the_deadline_clients_are_cached_per_whole_second_of_timeout(stack):
    env = _env(stack)
    gateway = CosGateway(load_settings(env), env)  # COS_TIMEOUT_S 60
    assert gateway._client("ap-guangzhou", 75.0) is gateway._client("ap-guangzhou")  # capped at COS_TIMEOUT_S
    near = gateway._client("ap-guangzhou", 30.9)
    assert gateway._client("ap-guangzhou", 30.2) is near and near.get_conf()._timeout == 30.0
    assert gateway._client("ap-guangzhou", 29.5) is not near
    for seconds in range(20):  # a long invocation: the cache stays small
        gateway._client("ap-guangzhou", 50.5 - seconds)
    assert len(gateway._clients) <= 8
    assert gateway.head(BUCKET, "superres/none.jpg", "ap-guangzhou", 0.4) is None  # under a second still works


def test_wrong_credentials_are_a_permanent_typed_error(stack):
    env = _env(stack, TENCENTCLOUD_SECRETKEY="not-the-key")
    gateway = CosGateway(load_settings(env), env)
    with pytest.raises(CosCallError) as post:
        gateway.image_process(BUCKET, "uploads/astronaut.jpg", "ap-guangzhou", '{"rules": []}')
    assert (post.value.code, post.value.status, post.value.retryable) == ("SignatureDoesNotMatch", 403, False)
    with pytest.raises(CosCallError) as head:  # a HEAD answer has no body to carry the code
        gateway.head(BUCKET, "superres/x.jpg", "ap-guangzhou")
    assert (head.value.code, head.value.status, head.value.retryable) == ("HTTP403", 403, False)
    # ...but its x-cos-request-id header is there, and the error carries it
    assert head.value.cos_request_id and head.value.cos_request_id != "Unknown"


def test_missing_credentials_name_the_variables(stack):
    env = {k: v for k, v in _env(stack).items() if not k.startswith("TENCENTCLOUD_SECRET")}
    gateway = CosGateway(load_settings(env), env)
    with pytest.raises(CredentialsError, match="TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY not set"):
        gateway.head(BUCKET, "k", "ap-guangzhou")
