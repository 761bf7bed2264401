"""APPEND Object through cos-python-sdk-v5's append_object: position 0 creates an appendable object, each append
lands at its length and fires cos:ObjectCreated:Append; a wrong position or a normal object is refused (409) and
changes nothing."""

from __future__ import annotations

import pytest
from qcloud_cos.cos_exception import CosServiceError

from .conftest import EventRecorder
from .test_refusals import _snapshot


def test_appends_build_one_object_and_fire_append_events(cos, bucket: str,  # type: ignore[no-untyped-def]
                                                          standin_events: EventRecorder):
    first = cos.append_object(Bucket=bucket, Key="log.txt", Position=0, Data=b"hello ")
    assert first["x-cos-next-append-position"] == "6"
    second = cos.append_object(Bucket=bucket, Key="log.txt", Position=6, Data=b"world")
    assert second["x-cos-next-append-position"] == "11"
    assert cos.get_object(Bucket=bucket, Key="log.txt")["Body"].get_raw_stream().read() == b"hello world"
    assert cos.head_object(Bucket=bucket, Key="log.txt")["x-cos-object-type"] == "appendable"
    assert [e.event_name for e in standin_events.for_bucket(bucket)] == ["cos:ObjectCreated:Append"] * 2


@pytest.mark.parametrize(("setup", "position", "code"), [
    ("appendable", 3, "PositionNotEqualToLength"),
    ("none", 5, "PositionNotEqualToLength"),
    ("normal", 4, "ObjectNotAppendable"),
])
def test_wrong_appends_are_409_and_change_nothing(standin, cos, bucket: str, setup: str, position: int,  # type: ignore[no-untyped-def]
                                                  code: str):
    if setup == "appendable":
        cos.append_object(Bucket=bucket, Key="k", Position=0, Data=b"abcd")
    elif setup == "normal":
        cos.put_object(Bucket=bucket, Key="k", Body=b"abcd")
    before = _snapshot(standin)
    with pytest.raises(CosServiceError) as info:
        cos.append_object(Bucket=bucket, Key="k", Position=position, Data=b"more")
    assert (info.value.get_status_code(), info.value.get_error_code()) == (409, code)
    assert _snapshot(standin) == before
