"""Cloud Infinite AISuperResolution on the stand-in, all three methods, through the real SDK over HTTP.

The engine is a Pillow-bicubic test double (see conftest): these tests are about the API, not the pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import xmltodict
from PIL import Image
from qcloud_cos.cos_exception import CosServiceError

from superres.standin import StandIn

from .conftest import EventRecorder, image_bytes

SR = "ci-process=AISuperResolution"
JPEG = image_bytes(64, 48, "JPEG")
FIVE_MB = 5 * 1024 * 1024


def _rule(fileid: str, rule: str = SR, bucket: str | None = None) -> dict[str, str]:
    return {"fileid": fileid, "rule": rule, **({"bucket": bucket} if bucket else {})}


def _ops(*rules: dict[str, str], is_pic_info: int = 1) -> str:
    return json.dumps({"is_pic_info": is_pic_info, "rules": list(rules)})


def _objects(result: dict) -> list[dict]:
    found = (result.get("ProcessResults") or {}).get("Object", [])
    return found if isinstance(found, list) else [found]


def _listing(cos, bucket: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(c["Key"], c["ETag"]) for c in cos.list_objects(Bucket=bucket).get("Contents", [])]


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _get(cos, bucket: str, key: str) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def]
    response = cos.get_object(Bucket=bucket, Key=key)
    return response, response["Body"].get_raw_stream().read()


def _error(call, *args, **kwargs) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value.get_status_code(), info.value.get_error_code()


# ---- a tiny image server for detect-url ----------------------------------------------------------
class _ImageHandler(BaseHTTPRequestHandler):
    routes = {"/img.jpg": JPEG, "/big.jpg": JPEG + b"\0" * FIVE_MB, "/notimage.txt": b"hello"}

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = self.routes.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# ---- method 1: processing during download --------------------------------------------------------
def test_get_by_key_returns_a_png_twice_the_size(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="in/a.jpg", Body=JPEG)
    response = cos.ci_super_resolution_process(Bucket=bucket, Key="in/a.jpg")
    image = _decode(response["Body"].get_raw_stream().read())
    assert (image.format, image.size) == ("PNG", (128, 96))
    assert response["Content-Type"] == "image/png"
    assert response["Server"] == "tencent-ci"
    assert response["x-cos-request-id"]


def test_get_by_key_with_magnify_4(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.jpg", Body=JPEG)
    data = cos.ci_process(Bucket=bucket, Key="a.jpg", CiProcess="AISuperResolution", Params={"magnify": "4"})
    assert _decode(data).size == (256, 192)


@pytest.mark.parametrize(
    ("key", "body", "params", "expected"),
    [
        ("a.jpg", JPEG, {"magnify": "3"}, (400, "InvalidArgument")),
        ("a.txt", b"not an image", {}, (400, "InvalidImageFormat")),
        ("missing.jpg", None, {}, (404, "NoSuchKey")),
    ],
)
def test_get_by_key_errors(cos, bucket: str, key: str, body: bytes | None, params: dict, expected) -> None:  # type: ignore[no-untyped-def]
    if body is not None:
        cos.put_object(Bucket=bucket, Key=key, Body=body)
    assert _error(cos.ci_process, Bucket=bucket, Key=key, CiProcess="AISuperResolution", Params=params) == expected


def test_get_with_detect_url_fetches_and_upscales(cos, bucket: str, image_server: str) -> None:
    response = cos.ci_super_resolution_process(Bucket=bucket, Url=f"{image_server}/img.jpg")
    assert _decode(response["Body"].get_raw_stream().read()).size == (128, 96)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("http://example.com/a.jpg", (400, "InvalidArgument")),  # host not on the allow list
        ("ftp://127.0.0.1/a.jpg", (400, "InvalidArgument")),
        ("{server}/missing.jpg", (400, "InvalidImageSource")),
        ("http://127.0.0.1:1/unreachable.jpg", (400, "InvalidImageSource")),
        ("{server}/big.jpg", (400, "ImageTooLarge")),
        ("{server}/notimage.txt", (400, "InvalidImageFormat")),
    ],
)
def test_detect_url_refusals(cos, bucket: str, image_server: str, path: str, expected: tuple[int, str]) -> None:  # type: ignore[no-untyped-def]
    url = path.format(server=image_server)
    assert _error(cos.ci_super_resolution_process, Bucket=bucket, Url=url) == expected


# ---- method 2: processing upon upload ------------------------------------------------------------
def test_upload_time_processing_stores_original_and_result(cos, bucket: str, standin_events: EventRecorder) -> None:
    headers, result = cos.ci_put_object(Bucket=bucket, Body=JPEG, Key="in/a.jpg", PicOperations=_ops(_rule("sr/a.png")))
    assert headers["Server"] == "tencent-ci"
    assert headers["Content-Type"] == "application/xml"
    original = result["OriginalInfo"]
    assert original["Key"] == "in/a.jpg"
    assert original["Location"] == f"{bucket}.cos.ap-guangzhou.myqcloud.com/in/a.jpg"
    assert original["ETag"] == f'"{hashlib.md5(JPEG).hexdigest()}"'
    assert original["ImageInfo"]["Format"] == "JPEG"
    assert (original["ImageInfo"]["Width"], original["ImageInfo"]["Height"]) == ("64", "48")
    assert isinstance(result["ProcessResults"]["Object"], dict)  # one rule: a dict, as real CI parses
    (obj,) = _objects(result)
    assert (obj["Key"], obj["Format"], obj["Width"], obj["Height"]) == ("in/sr/a.png", "png", "128", "96")
    response, data = _get(cos, bucket, "in/sr/a.png")
    assert obj["ETag"] == response["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert obj["Size"] == str(len(data))
    assert response["Content-Type"] == "image/png"
    assert _decode(data).size == (128, 96)
    assert [k for k, _ in _listing(cos, bucket)] == ["in/a.jpg", "in/sr/a.png"]
    events = standin_events.for_bucket(bucket)
    assert [(e.key, e.event_name) for e in events] == [
        ("in/a.jpg", "cos:ObjectCreated:Put"),
        ("in/sr/a.png", "cos:ObjectCreated:Put"),
    ]


def test_upload_time_processing_keeps_the_uploaded_metadata_on_the_original(cos, bucket: str) -> None:
    cos.ci_put_object(
        Bucket=bucket, Body=JPEG, Key="m.jpg", PicOperations=_ops(_rule("m_sr.jpg")), Metadata={"x-cos-meta-a": "1"}
    )
    assert cos.head_object(Bucket=bucket, Key="m.jpg")["x-cos-meta-a"] == "1"


# ---- method 3: cloud data processing -------------------------------------------------------------
def test_image_process_absolute_and_relative_fileids(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="in/x.jpg", Body=JPEG)
    _, result = cos.ci_image_process(
        Bucket=bucket, Key="in/x.jpg", PicOperations=_ops(_rule("/out/abs.jpg"), _rule("rel/./r.png"))
    )
    assert isinstance(result["ProcessResults"]["Object"], list)  # several rules: a list
    by_key = {o["Key"]: o for o in _objects(result)}
    assert set(by_key) == {"out/abs.jpg", "in/rel/r.png"}
    assert (by_key["out/abs.jpg"]["Format"], by_key["out/abs.jpg"]["Quality"]) == ("png", "100")
    assert _decode(_get(cos, bucket, "out/abs.jpg")[1]).format == "PNG"  # AISuperResolution writes PNG (see ci.py)
    assert _decode(_get(cos, bucket, "in/rel/r.png")[1]).format == "PNG"


def test_image_process_multiple_rules_with_different_magnify(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="p.png", Body=image_bytes(64, 48, "PNG"))
    rules = [_rule(f"x{m}.png", f"{SR}&magnify={m}") for m in (2, 4)] + [_rule("default.png")]
    _, result = cos.ci_image_process(Bucket=bucket, Key="p.png", PicOperations=_ops(*rules))
    sizes = {o["Key"]: (o["Width"], o["Height"]) for o in _objects(result)}
    assert sizes == {"x2.png": ("128", "96"), "x4.png": ("256", "192"), "default.png": ("128", "96")}
    for key, (width, height) in sizes.items():
        assert _decode(_get(cos, bucket, key)[1]).size == (int(width), int(height))


@pytest.mark.parametrize(
    ("source_format", "mode", "fileid"),
    [
        ("JPEG", "RGB", "out/noext"),
        ("WEBP", "RGB", "out/noext"),
        ("BMP", "RGB", "out/noext"),
        ("PNG", "RGBA", "out/noext"),
        ("JPEG", "RGB", "out/named.webp"),
        ("PNG", "RGB", "out/named.jpeg"),
    ],
)
def test_super_resolution_result_is_png_whatever_the_source_format_and_fileid_extension(
    cos, bucket: str, source_format: str, mode: str, fileid: str
) -> None:
    cos.put_object(Bucket=bucket, Key="src", Body=image_bytes(64, 48, source_format, mode))
    cos.ci_image_process(Bucket=bucket, Key="src", PicOperations=_ops(_rule(fileid)))
    response, data = _get(cos, bucket, fileid)
    result = _decode(data)
    assert (result.format, response["Content-Type"]) == ("PNG", "image/png")
    assert ("A" in result.mode) == (mode == "RGBA")


def test_image_process_into_another_bucket(standin: StandIn, cos, bucket: str) -> None:
    other = standin.create_bucket(f"dest{uuid.uuid4().hex[:8]}")
    cos.put_object(Bucket=bucket, Key="in/a.jpg", Body=JPEG)
    _, result = cos.ci_image_process(
        Bucket=bucket, Key="in/a.jpg", PicOperations=_ops(_rule("/sr/a.jpg", bucket=other))
    )
    (obj,) = _objects(result)
    assert obj["Location"] == f"{other}.cos.ap-guangzhou.myqcloud.com/sr/a.jpg"
    assert [k for k, _ in _listing(cos, other)] == ["sr/a.jpg"]
    assert [k for k, _ in _listing(cos, bucket)] == ["in/a.jpg"]


def test_is_pic_info_0_leaves_out_image_info(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.jpg", Body=JPEG)
    _, result = cos.ci_image_process(Bucket=bucket, Key="a.jpg", PicOperations=_ops(_rule("b.jpg"), is_pic_info=0))
    assert "ImageInfo" not in result["OriginalInfo"]
    _, with_info = cos.ci_image_process(Bucket=bucket, Key="a.jpg", PicOperations=_ops(_rule("b.jpg")))
    info = with_info["OriginalInfo"]["ImageInfo"]
    assert set(info) == {"Format", "Width", "Height", "Quality", "Ave", "Orientation"}
    assert info["Orientation"] == "1"
    assert info["Ave"].startswith("0x")


def test_fileid_equal_to_the_source_overwrites_it(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="same.jpg", Body=JPEG)
    cos.ci_image_process(Bucket=bucket, Key="same.jpg", PicOperations=_ops(_rule("same.jpg")))
    assert _decode(_get(cos, bucket, "same.jpg")[1]).size == (128, 96)


def test_image_process_result_fires_object_created(cos, bucket: str, standin_events: EventRecorder) -> None:
    cos.put_object(Bucket=bucket, Key="a.jpg", Body=JPEG)
    cos.ci_image_process(Bucket=bucket, Key="a.jpg", PicOperations=_ops(_rule("sr/a.jpg")))
    assert [e.key for e in standin_events.for_bucket(bucket)] == ["a.jpg", "sr/a.jpg"]


# ---- refusals: right code, and nothing stored ----------------------------------------------------
PORTRAIT_TOO_WIDE = image_bytes(1081, 1081, "PNG", "L")
WIDE = image_bytes(1921, 8, "PNG", "L")
TOO_BIG = JPEG + b"\0" * FIVE_MB

REFUSALS = [
    pytest.param(_ops(_rule("o.jpg", f"{SR}&magnify=3")), JPEG, (400, "InvalidArgument"), id="magnify-3"),
    pytest.param(_ops(_rule("o.jpg", "imageView2/format/png")), JPEG, (400, "InvalidArgument"), id="other-process"),
    pytest.param(_ops(_rule("o.jpg", f"{SR}|imageMogr2/format/webp")), JPEG, (400, "InvalidArgument"), id="sr-piped"),
    pytest.param('{"rules": [', JPEG, (400, "InvalidPicOperations"), id="bad-json"),
    pytest.param(_ops(*[_rule(f"o{i}.jpg") for i in range(6)]), JPEG, (400, "InvalidPicOperations"), id="6-rules"),
    pytest.param(_ops(_rule("out/")), JPEG, (400, "InvalidArgument"), id="fileid-ends-with-slash"),
    pytest.param(_ops(_rule("../../x.jpg")), JPEG, (400, "InvalidArgument"), id="fileid-escapes-root"),
    pytest.param(_ops(_rule("/../x.jpg")), JPEG, (400, "InvalidArgument"), id="absolute-fileid-escapes-root"),
    pytest.param(_ops(_rule("o.jpg", bucket="nosuch-1250000000")), JPEG, (404, "NoSuchBucket"), id="no-dest-bucket"),
    pytest.param(_ops(_rule("o.jpg")), b"plain text, not an image", (400, "InvalidImageFormat"), id="not-an-image"),
    pytest.param(_ops(_rule("o.jpg")), TOO_BIG, (400, "ImageTooLarge"), id="over-5MB"),
    pytest.param(_ops(_rule("o.jpg")), WIDE, (400, "ImageResolutionExceed"), id="over-1920-wide"),
    pytest.param(_ops(_rule("o.jpg")), PORTRAIT_TOO_WIDE, (400, "ImageResolutionExceed"), id="short-side-over-1080"),
]


@pytest.mark.parametrize(("operations", "source", "expected"), REFUSALS)
def test_image_process_refusal_stores_nothing(  # type: ignore[no-untyped-def]
    cos, bucket: str, standin_events: EventRecorder, operations: str, source: bytes, expected
) -> None:
    cos.put_object(Bucket=bucket, Key="in/a.jpg", Body=source)
    before, events_before = _listing(cos, bucket), len(standin_events.for_bucket(bucket))
    assert _error(cos.ci_image_process, Bucket=bucket, Key="in/a.jpg", PicOperations=operations) == expected
    assert _listing(cos, bucket) == before
    assert len(standin_events.for_bucket(bucket)) == events_before


@pytest.mark.parametrize(("operations", "source", "expected"), REFUSALS)
def test_upload_time_refusal_stores_nothing_not_even_the_original(  # type: ignore[no-untyped-def]
    cos, bucket: str, standin_events: EventRecorder, operations: str, source: bytes, expected
) -> None:
    assert _error(cos.ci_put_object, Bucket=bucket, Body=source, Key="in/a.jpg", PicOperations=operations) == expected
    assert _listing(cos, bucket) == []
    assert standin_events.for_bucket(bucket) == []


def test_image_process_on_a_missing_source_is_no_such_key(cos, bucket: str) -> None:
    operations = _ops(_rule("o.jpg"))
    assert _error(cos.ci_image_process, Bucket=bucket, Key="nope.jpg", PicOperations=operations) == (404, "NoSuchKey")
    assert _listing(cos, bucket) == []


def test_image_process_without_pic_operations_is_invalid_pic_operations(cos, bucket: str) -> None:
    cos.put_object(Bucket=bucket, Key="a.jpg", Body=JPEG)
    assert _error(cos.ci_image_process, Bucket=bucket, Key="a.jpg") == (400, "InvalidPicOperations")


def test_ci_error_responses_are_cos_error_xml_from_tencent_ci(standin: StandIn, cos, bucket: str) -> None:
    host = standin.settings.bucket_host(bucket)
    params = {"image_process": ""}
    authorization = cos.get_auth(Method="POST", Bucket=bucket, Key="nope.jpg", Params=params, Headers={"Host": host})
    response = requests.post(
        f"{standin.endpoint_url}/nope.jpg",
        params=params,
        headers={"Host": host, "Authorization": authorization, "Pic-Operations": _ops(_rule("o.jpg"))},
    )
    error = xmltodict.parse(response.content)["Error"]
    assert (response.status_code, error["Code"]) == (404, "NoSuchKey")
    assert response.headers["Server"] == "tencent-ci"
    assert response.headers["Content-Type"] == "application/xml"
    assert error["RequestId"] == response.headers["x-cos-request-id"]
