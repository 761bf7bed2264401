"""A web upload page in a real browser: Debian's Chromium (puppeteer-core), cos-js-sdk-v5 with temporary keys
from the page's own backend (tencentcloud-sdk-python STS against `superres local`). putObject, uploadFile
(multipart, about 3 MB) and postObject each upload with progress, the function super-resolves each upload
(COS trigger), and the page shows each result through a presigned URL in an <img>. An upload outside the keys'
prefix is refused. CORS is enforced by the browser (web security on): the bucket's CORS rule lets the page in,
and a page on another origin is kept out."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions

from .chromium import requires_chromium, run_script
from .conftest import BUCKET, DEST
from .web_backend import WebBackend

pytestmark = requires_chromium
PREFIX = "uploads/u1/"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(data_dir=tmp_path_factory.mktemp("browser"), engine=load_engine("bicubic"),
                           retry_interval_s=0.1)
    with LocalStack(options) as running:
        yield running


def cors_rule(origin: str) -> dict:
    return {"CORSRule": [{"AllowedOrigin": [origin], "AllowedMethod": ["PUT", "GET", "POST", "DELETE", "HEAD"],
                          "AllowedHeader": ["*"], "ExposeHeader": ["ETag", "Content-Length", "x-cos-request-id"],
                          "MaxAgeSeconds": "5"}]}


def function_lines(stack: LocalStack) -> list[dict]:
    assert stack.trigger is not None
    lines = [json.loads(line) for line in stack.trigger.log_lines if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "superres" and "event_name" in line]


def run_page(stack: LocalStack, url: str) -> dict:
    return run_script("run.js", url, stack.standin.endpoint_url)


def test_a_web_page_uploads_with_temporary_keys_and_shows_the_results(stack: LocalStack) -> None:
    with WebBackend(f"127.0.0.1:{stack.standin.port}", BUCKET, stack.settings.region, PREFIX, DEST) as backend:
        stack.client().put_bucket_cors(Bucket=BUCKET, CORSConfiguration=cors_rule(backend.origin))
        report = run_page(stack, backend.origin + "/")
    results = report["results"]
    assert "fatal" not in results, report
    for method, source in (("putObject", (64, 48)), ("uploadFile", (1000, 1000)), ("postObject", (64, 48))):
        outcome = results[method]
        assert outcome["ok"], (method, outcome, report["logs"][-20:])
        assert outcome["progress"] and outcome["progress"][-1] == 1, (method, outcome["progress"])
        assert outcome["shown"] == {"width": source[0] * 2, "height": source[1] * 2}, (method, outcome)
    assert results["uploadFile"]["size"] > 2_500_000
    events = {line["key"]: line["event_name"] for line in function_lines(stack)}
    assert events == {"uploads/u1/put.png": "cos:ObjectCreated:Put", "uploads/u1/post.png": "cos:ObjectCreated:Post",
                      "uploads/u1/multi.png": "cos:ObjectCreated:CompleteMultipartUpload"}
    uploads = stack.client().list_multipart_uploads(Bucket=BUCKET).get("Upload")
    assert not uploads
    refused = results["outsidePrefix"]
    assert (refused["ok"], refused["statusCode"], refused["code"]) == (False, 403, "AccessDenied"), refused
    listing = stack.client().list_objects(Bucket=BUCKET, Prefix="uploads/u2/")
    assert not listing.get("Contents")


def test_a_page_on_an_origin_the_cors_rule_does_not_name_cannot_upload(stack: LocalStack) -> None:
    with WebBackend(f"127.0.0.1:{stack.standin.port}", BUCKET, stack.settings.region, "uploads/u9/", DEST) as backend:
        stack.client().put_bucket_cors(Bucket=BUCKET, CORSConfiguration=cors_rule("http://elsewhere.test"))
        report = run_page(stack, backend.origin + "/")
    for method in ("putObject", "uploadFile", "postObject"):
        assert not report["results"][method]["ok"], report["results"][method]
    assert not stack.client().list_objects(Bucket=BUCKET, Prefix="uploads/u9/").get("Contents")
