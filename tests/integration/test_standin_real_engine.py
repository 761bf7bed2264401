"""The stand-in with its real SR engine (superres.sr, SPAN), loaded from settings.engine_name on first use."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from superres.standin import StandIn, StandinSettings

from .conftest import image_bytes


@pytest.fixture(scope="module")
def real_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    from superres.sr import EngineError, load_engine

    try:
        load_engine("span")
    except EngineError as exc:  # weights or runtime not installed here: nothing to test against
        pytest.skip(f"SPAN engine unavailable: {exc}")
    settings = StandinSettings(Path(tmp_path_factory.mktemp("standin-real")), engine_name="span")
    with StandIn(settings) as server:  # no engine= : the stand-in loads settings.engine_name itself
        yield server


@pytest.mark.parametrize("magnify", [2, 4])
def test_image_process_with_the_span_engine(real_standin: StandIn, magnify: int) -> None:
    bucket = real_standin.create_bucket(f"real{magnify}")
    cos = real_standin.client()
    cos.put_object(Bucket=bucket, Key="in/a.png", Body=image_bytes(64, 48, "PNG"))
    rule = {"fileid": "/out/a.png", "rule": f"ci-process=AISuperResolution&magnify={magnify}"}
    _, result = cos.ci_image_process(Bucket=bucket, Key="in/a.png", PicOperations=json.dumps({"rules": [rule]}))
    assert result["ProcessResults"]["Object"]["Width"] == str(64 * magnify)
    body = cos.get_object(Bucket=bucket, Key="out/a.png")["Body"].get_raw_stream().read()
    assert Image.open(io.BytesIO(body)).size == (64 * magnify, 48 * magnify)
