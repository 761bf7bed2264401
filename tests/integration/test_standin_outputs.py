"""Several outputs per CI call on the stand-in, through the real SDK over HTTP: up to five rules in one
Pic-Operations (AISuperResolution x2 and x4, basic imageMogr2 format/quality conversions), and the follow-up
conversion of a super-resolved PNG to WebP/JPEG. Doc references for every behaviour: superres/standin/pic_operations.py
and ci.py. The SR engine is the Pillow-bicubic one: these tests are about the API and the bytes, not SR quality.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from qcloud_cos.cos_exception import CosServiceError

from superres.sr import load_engine
from superres.standin import StandIn, StandinSettings
from superres.standin.faults import FaultPlan
from superres.standin.images import load_source_image

from .conftest import EventRecorder, image_bytes

SR = "ci-process=AISuperResolution"
PNG = image_bytes(64, 48, "PNG")
JPEG = image_bytes(64, 48, "JPEG")


def _rule(fileid: str, rule: str = SR) -> dict[str, str]:
    return {"fileid": fileid, "rule": rule}


def _ops(*rules: dict[str, str]) -> str:
    return json.dumps({"is_pic_info": 1, "rules": list(rules)})


def _objects(result: dict) -> dict[str, dict]:
    found = (result.get("ProcessResults") or {}).get("Object", [])
    return {o["Key"]: o for o in (found if isinstance(found, list) else [found])}


def _read(cos, bucket: str, key: str) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def]
    response = cos.get_object(Bucket=bucket, Key=key)
    return response, response["Body"].get_raw_stream().read()


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _keys(cos, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [c["Key"] for c in cos.list_objects(Bucket=bucket).get("Contents", [])]


def _error(call, *args, **kwargs) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value.get_status_code(), info.value.get_error_code()


def _photo(width: int = 64, height: int = 64) -> bytes:
    """A PNG with photo-like detail (noise over a gradient), so lossy quality settings change the byte count."""
    noise = Image.frombytes("L", (width, height), os.urandom(width * height)).convert("RGB")
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(gradient, noise, 0.3).save(buffer, "PNG")
    return buffer.getvalue()


# ---- several super-resolution outputs in one call ------------------------------------------------
def test_x2_and_x4_rules_in_one_image_process_store_both_sizes(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="in/a.jpg", Body=JPEG)
    ops = _ops(_rule("/x2/in/a.jpg", f"{SR}&magnify=2"), _rule("/x4/in/a.jpg", f"{SR}&magnify=4"))
    _, result = cos.ci_image_process(Bucket=bucket, Key="in/a.jpg", PicOperations=ops)
    objects = _objects(result)
    assert {k: (o["Width"], o["Height"], o["Format"]) for k, o in objects.items()} == {
        "x2/in/a.jpg": ("128", "96", "png"),
        "x4/in/a.jpg": ("256", "192", "png"),
    }
    for key, obj in objects.items():
        response, data = _read(cos, bucket, key)
        assert _decode(data).size == (int(obj["Width"]), int(obj["Height"]))
        assert (obj["Size"], obj["ETag"]) == (str(len(data)), response["ETag"])
    assert _keys(cos, bucket) == ["in/a.jpg", "x2/in/a.jpg", "x4/in/a.jpg"]


def test_x2_and_x4_rules_at_upload_store_the_original_and_both_results(
    cos, bucket: str, standin_events: EventRecorder
) -> None:
    ops = _ops(_rule("/x2/a.png", f"{SR}&magnify=2"), _rule("/x4/a.png", f"{SR}&magnify=4"))
    _, result = cos.ci_put_object(Bucket=bucket, Key="a.png", Body=PNG, PicOperations=ops)
    assert set(_objects(result)) == {"x2/a.png", "x4/a.png"}
    assert _decode(_read(cos, bucket, "x4/a.png")[1]).size == (256, 192)
    assert [e.key for e in standin_events.for_bucket(bucket)] == ["a.png", "x2/a.png", "x4/a.png"]


def test_five_rules_of_both_kinds_are_accepted(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.png", Body=PNG)
    rules = [
        _rule("/o/1.png", f"{SR}&magnify=2"),
        _rule("/o/2.png", f"{SR}&magnify=4"),
        _rule("/o/3.webp", "imageMogr2/format/webp/quality/80"),
        _rule("/o/4.jpg", "imageMogr2/format/jpg"),
        _rule("/o/5.png", "imageMogr2/format/png"),
    ]
    _, result = cos.ci_image_process(Bucket=bucket, Key="a.png", PicOperations=_ops(*rules))
    formats = {k: o["Format"] for k, o in _objects(result).items()}
    assert formats == {"o/1.png": "png", "o/2.png": "png", "o/3.webp": "webp", "o/4.jpg": "jpg", "o/5.png": "png"}
    assert [_decode(_read(cos, bucket, f"o/{name}")[1]).format for name in ("3.webp", "4.jpg", "5.png")] == [
        "WEBP",
        "JPEG",
        "PNG",
    ]


# ---- the one-call count --------------------------------------------------------------------------
class _CountingEngine:
    """The bicubic engine, counting its runs (the stand-in's SR work per request)."""

    name = "bicubic-counted"

    def __init__(self) -> None:
        self._inner = load_engine("bicubic")
        self._lock = threading.Lock()
        self.scales: list[int] = []

    def upscale(self, image: Image.Image, scale: int) -> Image.Image:
        with self._lock:
            self.scales.append(scale)
        return self._inner.upscale(image, scale)


@pytest.fixture(scope="module")
def engine() -> _CountingEngine:
    return _CountingEngine()


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory, engine: _CountingEngine) -> Iterator[StandIn]:
    """A stand-in of its own whose fault injector records every request (share 0: it injects nothing)."""
    settings = StandinSettings(data_dir=Path(tmp_path_factory.mktemp("outputs")))
    with StandIn(settings, engine=engine) as server:  # type: ignore[arg-type]
        server.set_faults(FaultPlan(0.0))
        yield server


def test_x2_and_x4_in_one_request_is_one_ci_call_and_one_sr_run_per_magnify(
    counted: StandIn, engine: _CountingEngine
) -> None:
    cos = counted.client()
    bucket = counted.create_bucket("counted")
    cos.put_object(Bucket=bucket, Key="a.jpg", Body=JPEG)
    counted.faults.clear_records()
    engine.scales.clear()
    rules = [
        _rule("/x2/a.jpg", f"{SR}&magnify=2"),
        _rule("/x4/a.jpg", f"{SR}&magnify=4"),
        _rule("/x2-copy/a.jpg", f"{SR}&magnify=2"),
    ]
    cos.ci_image_process(Bucket=bucket, Key="a.jpg", PicOperations=_ops(*rules))
    assert counted.faults.wait_idle(10)
    ci_calls = [r for r in counted.faults.records if r.is_ci]
    assert [(r.method, r.key, r.status) for r in ci_calls] == [("POST", "a.jpg", 200)]
    assert sorted(engine.scales) == [2, 4]
    assert _keys(cos, bucket) == ["a.jpg", "x2-copy/a.jpg", "x2/a.jpg", "x4/a.jpg"]


# ---- basic format/quality conversion -------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "pillow_format", "ci_format", "content_type"),
    [
        ("imageMogr2/format/webp/quality/80", "WEBP", "webp", "image/webp"),
        ("imageMogr2/format/jpg/quality/80", "JPEG", "jpg", "image/jpeg"),
        ("imageMogr2/format/jpeg/quality/80", "JPEG", "jpg", "image/jpeg"),
        ("imageMogr2/format/yjpeg/quality/80", "JPEG", "jpg", "image/jpeg"),
        ("imageMogr2/quality/80/format/webp", "WEBP", "webp", "image/webp"),
        ("imageMogr2/format/webp|imageMogr2/quality/80", "WEBP", "webp", "image/webp"),
    ],
)
def test_format_conversion_of_a_stored_png_writes_real_bytes_of_that_format(
    cos, bucket: str, rule: str, pillow_format: str, ci_format: str, content_type: str
) -> None:
    cos.put_object(Bucket=bucket, Key="sr/a.png", Body=_photo())
    _, result = cos.ci_image_process(Bucket=bucket, Key="sr/a.png", PicOperations=_ops(_rule("/out/a", rule)))
    obj = _objects(result)["out/a"]
    assert (obj["Format"], obj["Quality"], obj["Width"], obj["Height"]) == (ci_format, "80", "64", "64")
    response, data = _read(cos, bucket, "out/a")
    image = _decode(data)
    assert (image.format, image.size, response["Content-Type"]) == (pillow_format, (64, 64), content_type)
    assert obj["Size"] == str(len(data))
    if pillow_format == "JPEG":
        assert load_source_image(data).quality == 80  # the quantisation tables say quality 80


@pytest.mark.parametrize("fmt", ["webp", "jpg"])
def test_lower_quality_gives_fewer_bytes(cos, bucket: str, fmt: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.png", Body=_photo(128, 128))
    rules = [_rule(f"/q{q}", f"imageMogr2/format/{fmt}/quality/{q}") for q in (90, 60, 30)]
    _, result = cos.ci_image_process(Bucket=bucket, Key="a.png", PicOperations=_ops(*rules))
    sizes = [int(_objects(result)[f"q{q}"]["Size"]) for q in (90, 60, 30)]
    assert sizes[0] > sizes[1] > sizes[2]


def test_quality_is_capped_at_the_sources_unless_forced(cos, bucket: str) -> None:
    # CI: "the smaller of the source's quality and the given one; '!' after the value forces it".
    buffer = io.BytesIO()
    Image.open(io.BytesIO(_photo())).save(buffer, "JPEG", quality=70)
    cos.put_object(Bucket=bucket, Key="a.jpg", Body=buffer.getvalue())
    rules = [_rule("/capped.jpg", "imageMogr2/quality/90"), _rule("/forced.jpg", "imageMogr2/quality/90!")]
    _, result = cos.ci_image_process(Bucket=bucket, Key="a.jpg", PicOperations=_ops(*rules))
    objects = _objects(result)
    assert (objects["capped.jpg"]["Quality"], objects["forced.jpg"]["Quality"]) == ("70", "90")
    for key, quality in (("capped.jpg", 70), ("forced.jpg", 90)):
        data = _read(cos, bucket, key)[1]
        assert (_decode(data).format, load_source_image(data).quality) == ("JPEG", quality)


def test_quality_alone_keeps_the_source_format(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.webp", Body=image_bytes(64, 48, "WEBP"))
    cos.ci_image_process(Bucket=bucket, Key="a.webp", PicOperations=_ops(_rule("b", "imageMogr2/quality/50")))
    assert _decode(_read(cos, bucket, "b")[1]).format == "WEBP"


def test_conversion_of_a_transparent_png(cos, bucket: str) -> None:
    transparent = Image.new("RGBA", (64, 48), (200, 30, 30, 0))
    transparent.paste((10, 200, 10, 255), (16, 12, 48, 36))
    buffer = io.BytesIO()
    transparent.save(buffer, "PNG")
    cos.put_object(Bucket=bucket, Key="t.png", Body=buffer.getvalue())
    rules = [_rule("/t.webp", "imageMogr2/format/webp"), _rule("/t.jpg", "imageMogr2/format/jpg")]
    cos.ci_image_process(Bucket=bucket, Key="t.png", PicOperations=_ops(*rules))
    assert _decode(_read(cos, bucket, "t.webp")[1]).mode == "RGBA"
    assert _decode(_read(cos, bucket, "t.jpg")[1]).mode == "RGB"


def test_conversion_rule_at_upload_time(cos, bucket: str) -> None:
    ops = _ops(_rule("/a.webp", "imageMogr2/format/webp/quality/75"))
    _, result = cos.ci_put_object(Bucket=bucket, Key="a.png", Body=PNG, PicOperations=ops)
    assert _objects(result)["a.webp"]["Format"] == "webp"
    assert _keys(cos, bucket) == ["a.png", "a.webp"]
    assert _decode(_read(cos, bucket, "a.webp")[1]).format == "WEBP"


def test_super_resolved_png_then_converted_by_a_second_image_process(cos, bucket: str) -> None:
    """The two-call flow for "x2 to A as WebP q80, x4 to B": SR both in one call, then convert A's result."""
    cos.put_object(Bucket=bucket, Key="photos/a.jpg", Body=JPEG)
    sr = _ops(_rule("/A/photos/a.png", f"{SR}&magnify=2"), _rule("/B/photos/a.png", f"{SR}&magnify=4"))
    cos.ci_image_process(Bucket=bucket, Key="photos/a.jpg", PicOperations=sr)
    convert = _ops(_rule("/A/photos/a.webp", "imageMogr2/format/webp/quality/80"))
    _, result = cos.ci_image_process(Bucket=bucket, Key="A/photos/a.png", PicOperations=convert)
    obj = _objects(result)["A/photos/a.webp"]
    assert (obj["Format"], obj["Width"], obj["Height"], obj["Quality"]) == ("webp", "128", "96", "80")
    assert _decode(_read(cos, bucket, "A/photos/a.webp")[1]).format == "WEBP"
    assert _decode(_read(cos, bucket, "B/photos/a.png")[1]).size == (256, 192)


def test_conversion_in_place_replaces_the_png_with_webp(cos, bucket: str, standin_events: EventRecorder) -> None:
    """fileid equal to the ObjectKey overwrites it (documented): one object per output, no intermediate left."""
    cos.put_object(Bucket=bucket, Key="src.jpg", Body=JPEG)
    cos.ci_image_process(Bucket=bucket, Key="src.jpg", PicOperations=_ops(_rule("/A/src.jpg", f"{SR}&magnify=2")))
    assert _decode(_read(cos, bucket, "A/src.jpg")[1]).format == "PNG"
    ops = _ops(_rule("/A/src.jpg", "imageMogr2/format/webp/quality/80!"))
    _, result = cos.ci_image_process(Bucket=bucket, Key="A/src.jpg", PicOperations=ops)
    response, data = _read(cos, bucket, "A/src.jpg")
    assert (_decode(data).format, _decode(data).size, response["Content-Type"]) == ("WEBP", (128, 96), "image/webp")
    assert result["OriginalInfo"]["ImageInfo"]["Format"] == "PNG"
    assert _keys(cos, bucket) == ["A/src.jpg", "src.jpg"]
    assert [e.key for e in standin_events.for_bucket(bucket)] == ["src.jpg", "A/src.jpg", "A/src.jpg"]


def _over_5_mb() -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (2000, 1500), os.urandom(2000 * 1500 * 3)).save(buffer, "PNG")  # incompressible
    assert 5 * 1024 * 1024 < len(buffer.getvalue()) < 32 * 1024 * 1024
    return buffer.getvalue()


def test_conversion_accepts_sources_over_the_super_resolution_limits(cos, bucket: str) -> None:
    """A 4x result is far over AISuperResolution's 5 MB / 1920x1080: its conversion uses basic processing limits."""
    big = _over_5_mb()
    cos.put_object(Bucket=bucket, Key="big.png", Body=big)
    sr = _ops(_rule("/sr.png"))
    assert _error(cos.ci_image_process, Bucket=bucket, Key="big.png", PicOperations=sr) == (400, "ImageTooLarge")
    ops = _ops(_rule("/big.jpg", "imageMogr2/format/jpg/quality/80"))
    cos.ci_image_process(Bucket=bucket, Key="big.png", PicOperations=ops)
    assert _decode(_read(cos, bucket, "big.jpg")[1]).size == (2000, 1500)


def test_upload_over_5_mb_is_converted_but_not_super_resolved(cos, bucket: str) -> None:
    big = _over_5_mb()
    sr = _ops(_rule("/sr.png"))
    assert _error(cos.ci_put_object, Bucket=bucket, Key="big.png", Body=big, PicOperations=sr) == (400, "ImageTooLarge")
    assert _keys(cos, bucket) == []
    convert = _ops(_rule("/big.webp", "imageMogr2/format/webp/quality/80"))
    cos.ci_put_object(Bucket=bucket, Key="big.png", Body=big, PicOperations=convert)
    assert _keys(cos, bucket) == ["big.png", "big.webp"]


# ---- refusals: a clear COS error, and nothing stored ---------------------------------------------
SIX = [_rule(f"/o/{i}.png", f"{SR}&magnify=2") for i in range(3)] + [
    _rule(f"/o/{i}.webp", "imageMogr2/format/webp") for i in range(3, 6)
]
REFUSALS = [
    pytest.param(_ops(*SIX), "InvalidPicOperations", id="six-rules"),
    pytest.param(_ops(_rule("/o", "imageMogr2/format/foo")), "InvalidArgument", id="unknown-format"),
    pytest.param(_ops(_rule("/o", "imageMogr2/format/avif")), "InvalidArgument", id="unimplemented-format"),
    pytest.param(_ops(_rule("/o", "imageMogr2/format/")), "InvalidArgument", id="empty-format"),
    pytest.param(_ops(_rule("/o", "imageMogr2/format/webp/quality/101")), "InvalidArgument", id="quality-101"),
    pytest.param(_ops(_rule("/o", "imageMogr2/format/webp/quality/-1")), "InvalidArgument", id="quality-negative"),
    pytest.param(_ops(_rule("/o", "imageMogr2/quality/high")), "InvalidArgument", id="quality-word"),
    pytest.param(_ops(_rule("/o", "imageMogr2/quality/8.5")), "InvalidArgument", id="quality-fraction"),
    pytest.param(_ops(_rule("/o", "imageMogr2/quality")), "InvalidArgument", id="quality-missing"),
    pytest.param(_ops(_rule("/o", "imageMogr2/thumbnail/!50p")), "InvalidArgument", id="unimplemented-step"),
    pytest.param(_ops(_rule("/o", f"{SR}|imageMogr2/format/webp")), "InvalidArgument", id="sr-then-convert-piped"),
    pytest.param(_ops(_rule("/o", f"imageMogr2/format/webp|{SR}")), "InvalidArgument", id="convert-then-sr-piped"),
    pytest.param(_ops(_rule("/o", "|".join(["imageMogr2/quality/80"] * 11))), "InvalidArgument", id="11-steps"),
    pytest.param(
        _ops(_rule("/ok.webp", "imageMogr2/format/webp"), _rule("/bad", "imageMogr2/format/webp/quality/200")),
        "InvalidArgument",
        id="good-rule-then-bad-rule",
    ),
]


@pytest.mark.parametrize(("operations", "code"), REFUSALS)
def test_image_process_refusal_stores_nothing(cos, bucket: str, operations: str, code: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.png", Body=PNG)
    expected = (400, code)
    assert _error(cos.ci_image_process, Bucket=bucket, Key="a.png", PicOperations=operations) == expected
    assert _keys(cos, bucket) == ["a.png"]


@pytest.mark.parametrize(("operations", "code"), REFUSALS)
def test_upload_refusal_stores_not_even_the_original(
    cos, bucket: str, standin_events: EventRecorder, operations: str, code: str
) -> None:
    assert _error(cos.ci_put_object, Bucket=bucket, Key="a.png", Body=PNG, PicOperations=operations) == (400, code)
    assert _keys(cos, bucket) == []
    assert standin_events.for_bucket(bucket) == []


def test_refusal_message_says_what_to_do(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.png", Body=PNG)
    with pytest.raises(CosServiceError) as info:
        cos.ci_image_process(
            Bucket=bucket, Key="a.png", PicOperations=_ops(_rule("/o", f"{SR}&magnify=2|imageMogr2/format/webp"))
        )
    assert "second image_process" in info.value.get_error_msg()
