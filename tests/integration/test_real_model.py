"""The stand-in's AISuperResolution runs the real SPAN model: through the SDK, over HTTP, on a real photo."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from superres.photos import photo_path
from superres.sr import load_engine
from superres.sr.metrics import downscale_bicubic, psnr_y
from superres.stack import LocalStack, StackOptions

BUCKET = "photos-1250000000"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("real-model")
    with LocalStack(StackOptions(data_dir=data, engine=load_engine("span"), trigger=False)) as running:
        yield running


@pytest.fixture(scope="module")
def original() -> Image.Image:
    # A 192x128 crop of a real photo: small enough to be quick, detailed enough to tell SR from a resize.
    with Image.open(photo_path("coffee.png")) as image:
        return image.convert("RGB").crop((200, 100, 392, 228))


@pytest.mark.parametrize("magnify", [2, 4])
def test_image_process_beats_bicubic_against_the_known_original(stack, original, magnify):
    low = downscale_bicubic(original, magnify)
    buffer = io.BytesIO()
    low.save(buffer, format="PNG")
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key=f"src/coffee-x{magnify}.png", Body=buffer.getvalue())
    operations = {"is_pic_info": 1, "rules": [{"fileid": f"/out/coffee-x{magnify}.png",
                                               "rule": f"ci-process=AISuperResolution&magnify={magnify}"}]}
    _, result = client.ci_image_process(Bucket=BUCKET, Key=f"src/coffee-x{magnify}.png",
                                        PicOperations=json.dumps(operations))
    obj = result["ProcessResults"]["Object"]
    assert (int(obj["Width"]), int(obj["Height"])) == (low.width * magnify, low.height * magnify)
    body = client.get_object(Bucket=BUCKET, Key=f"out/coffee-x{magnify}.png")["Body"].get_raw_stream().read()
    ai = Image.open(io.BytesIO(body)).convert("RGB")
    bicubic = low.resize(ai.size, Image.Resampling.BICUBIC)
    reference = original.crop((0, 0, *ai.size))
    gain = psnr_y(ai, reference, crop=magnify) - psnr_y(bicubic, reference, crop=magnify)
    assert gain > 0.5, f"SPAN x{magnify} gained only {gain:.2f} dB over bicubic"


def test_download_time_processing_returns_png_at_double_size(stack, original):
    buffer = io.BytesIO()
    original.save(buffer, format="JPEG", quality=90)
    client = stack.client()
    client.put_object(Bucket=BUCKET, Key="src/coffee.jpg", Body=buffer.getvalue())
    headers, body = client.ci_process(Bucket=BUCKET, Key="src/coffee.jpg", CiProcess="AISuperResolution",
                                       NeedHeader=True)
    assert headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "PNG"
        assert image.size == (original.width * 2, original.height * 2)
