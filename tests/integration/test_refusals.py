"""Requests the stand-in must refuse, through the real SDK or hand-signed HTTP: malformed Pic-Operations, forged
signatures, path-traversing fileids and forbidden detect-url hosts. Each is answered with the COS error code and
stores nothing: every bucket's listing, and every file under the data folder, is the same before and after."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
import requests
import xmltodict
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError

import superres.standin.detect_url as detect_url_module
from superres.standin import StandIn

from .conftest import image_bytes

SOURCE = "src/a.jpg"
SR = "ci-process=AISuperResolution"


def _ops(*rules: object, raw: str | None = None) -> str:
    return raw if raw is not None else json.dumps({"is_pic_info": 1, "rules": list(rules)})


def _rule(fileid: str = "/out/a.png", rule: str = SR, **extra: object) -> dict:
    return {"fileid": fileid, "rule": rule, **extra}


def _snapshot(standin: StandIn) -> tuple[dict[str, list[tuple[str, str, int]]], list[str]]:
    """Every object of every bucket, and every file in the data folder (a stray write would show in either)."""
    store = standin.store
    listings = {}
    for bucket in store.buckets():
        result = store.list(bucket, max_keys=100_000)
        assert not result.is_truncated
        listings[bucket] = [(info.key, info.etag, info.size) for info in result.contents]
    files = sorted(str(p.relative_to(standin.settings.data_dir)) for p in standin.settings.data_dir.rglob("*"))
    return listings, files


@pytest.fixture
def source(standin: StandIn, cos, bucket: str) -> str:  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=bucket, Key=SOURCE, Body=image_bytes())
    return bucket


@pytest.fixture
def refused(standin: StandIn) -> Iterator[Callable[..., None]]:
    """`refused(call, status, code)`: the call fails with exactly that COS error, and nothing changed on disk."""
    def check(call: Callable[[], object], status: int, code: str) -> None:
        before = _snapshot(standin)
        with pytest.raises(CosServiceError) as info:
            call()
        assert (info.value.get_status_code(), info.value.get_error_code()) == (status, code)
        assert _snapshot(standin) == before

    yield check


# ---- malformed Pic-Operations, for both CI methods that write ----------------------------------------------------
MALFORMED = {
    "not_json": (_ops(raw="{rules: [}"), "InvalidPicOperations"),
    "json_array": (_ops(raw=json.dumps([_rule()])), "InvalidPicOperations"),
    "json_string": (_ops(raw=json.dumps("rules")), "InvalidPicOperations"),
    "rules_not_a_list": (_ops(raw=json.dumps({"is_pic_info": 1, "rules": _rule()})), "InvalidPicOperations"),
    "rule_not_an_object": (_ops("fileid=/out/a.png"), "InvalidPicOperations"),
    "rule_missing_fileid": (_ops({"rule": SR}), "InvalidPicOperations"),
    "rule_missing_rule": (_ops({"fileid": "/out/a.png"}), "InvalidPicOperations"),
    "fileid_not_a_string": (_ops(_rule(fileid=7)), "InvalidPicOperations"),  # type: ignore[arg-type]
    "six_rules": (_ops(*[_rule(f"/out/{i}.png") for i in range(6)]), "InvalidPicOperations"),
    "is_pic_info_2": (_ops(raw=json.dumps({"is_pic_info": 2, "rules": [_rule()]})), "InvalidPicOperations"),
    "magnify_3": (_ops(_rule(rule=SR + "&magnify=3")), "InvalidArgument"),
    "magnify_word": (_ops(_rule(rule=SR + "&magnify=two")), "InvalidArgument"),
    "unknown_ci_process": (_ops(_rule(rule="ci-process=AIImageColoring")), "InvalidArgument"),
    "other_processing_rule": (_ops(_rule(rule="imageMogr2/thumbnail/!50p")), "InvalidArgument"),
    "unknown_parameter": (_ops(_rule(rule=SR + "&scale=2")), "InvalidArgument"),
    "good_rule_then_bad_rule": (_ops(_rule("/out/ok.png"), _rule(rule=SR + "&magnify=8")), "InvalidArgument"),
    "bad_destination_bucket": (_ops(_rule(bucket="Not_A_Bucket")), "InvalidArgument"),
    "missing_destination_bucket": (_ops(_rule(bucket="nosuch-1250000000")), "NoSuchBucket"),
}
TRAVERSING = {
    "dotdot_relative": "../../x.png",
    "dotdot_absolute": "/a/../../b.png",
    "dotdot_only": "..",
    "dot_dot_slash_chain": "./../../../etc/passwd",
    "ends_with_slash": "out/",
    "absolute_ends_with_slash": "/out/dir/",
    "empty": "",
    "root_only": "/",
}


def _status(code: str) -> int:
    return 404 if code == "NoSuchBucket" else 400


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_pic_operations_on_image_process_is_refused(refused, cos, source: str, name: str):  # type: ignore[no-untyped-def]
    header, code = MALFORMED[name]
    refused(lambda: cos.ci_image_process(Bucket=source, Key=SOURCE, PicOperations=header), _status(code), code)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_pic_operations_on_upload_stores_not_even_the_original(refused, cos, bucket: str, name: str):  # type: ignore[no-untyped-def]
    header, code = MALFORMED[name]
    refused(lambda: cos.ci_put_object(Bucket=bucket, Key="up/new.jpg", Body=image_bytes(), PicOperations=header),
            _status(code), code)


@pytest.mark.parametrize("name", sorted(TRAVERSING))
def test_path_traversing_or_folder_fileid_is_refused(refused, cos, source: str, name: str):  # type: ignore[no-untyped-def]
    header = _ops(_rule(fileid=TRAVERSING[name]))
    refused(lambda: cos.ci_image_process(Bucket=source, Key=SOURCE, PicOperations=header), 400, "InvalidArgument")
    refused(lambda: cos.ci_put_object(Bucket=source, Key="up/n.jpg", Body=image_bytes(), PicOperations=header),
            400, "InvalidArgument")


def test_percent_encoded_dots_in_fileid_are_a_literal_name_not_a_traversal(standin: StandIn, cos, source: str):  # type: ignore[no-untyped-def]
    # Pic-Operations is JSON, not a URL: nothing documents fileids as percent-decoded, so "%2e%2e" is two literal
    # segment characters. The result lands under that literal name next to the source, inside the bucket.
    before, _ = _snapshot(standin)
    cos.ci_image_process(Bucket=source, Key=SOURCE, PicOperations=_ops(_rule(fileid="%2e%2e/%2e%2e/x.png")))
    after, _ = _snapshot(standin)
    added = {b: sorted(set(after[b]) - set(before.get(b, []))) for b in after}
    assert {b: [key for key, _, _ in objs] for b, objs in added.items() if objs} == {
        source: ["src/%2e%2e/%2e%2e/x.png"]
    }


# ---- forged signatures -----------------------------------------------------------------------------------------
def _signed_post(standin: StandIn, cos, bucket: str, *, sign_key: str, send_key: str, header: str,  # type: ignore[no-untyped-def]
                 sent_header: str | None = None, expired: int = 600) -> Callable[[], object]:
    """Sign a POST ?image_process with the SDK's signer, then send it (possibly altered) by hand."""
    host = standin.settings.bucket_host(bucket)
    params = {"image_process": ""}
    authorization = cos.get_auth(Method="POST", Bucket=bucket, Key=sign_key, Params=params, Expired=expired,
                                 Headers={"Host": host, "Pic-Operations": header})

    def send() -> object:
        response = requests.post(f"{standin.endpoint_url}/{send_key}", params=params, timeout=10, headers={
            "Host": host, "Authorization": authorization, "Pic-Operations": sent_header or header})
        if response.status_code >= 300:
            error = xmltodict.parse(response.content)["Error"]
            raise CosServiceError("POST", {"code": error["Code"], "message": error["Message"],
                                           "requestid": error["RequestId"], "traceid": "", "resource": ""},
                                  response.status_code)
        return response

    return send


def test_wrong_secret_key_is_refused(refused, standin: StandIn, source: str):  # type: ignore[no-untyped-def]
    cred = standin.settings.credentials[0]
    forger = CosS3Client(CosConfig(Region=standin.settings.region, SecretId=cred.secret_id,
                                   SecretKey="not-the-" + cred.secret_key, IP="127.0.0.1", Port=standin.port,
                                   Scheme="http"), retry=0)
    header = _ops(_rule())
    refused(lambda: forger.ci_image_process(Bucket=source, Key=SOURCE, PicOperations=header),
            403, "SignatureDoesNotMatch")
    refused(lambda: forger.put_object(Bucket=source, Key="forged.txt", Body=b"x"), 403, "SignatureDoesNotMatch")


def test_unknown_secret_id_is_refused(refused, standin: StandIn, source: str):  # type: ignore[no-untyped-def]
    forger = CosS3Client(CosConfig(Region=standin.settings.region, SecretId="AKIDnobody", SecretKey="x" * 32,
                                   IP="127.0.0.1", Port=standin.port, Scheme="http"), retry=0)
    refused(lambda: forger.put_object(Bucket=source, Key="forged.txt", Body=b"x"), 403, "InvalidAccessKeyId")


def test_signature_for_another_path_is_refused(refused, standin: StandIn, cos, source: str):  # type: ignore[no-untyped-def]
    cos.put_object(Bucket=source, Key="src/b.jpg", Body=image_bytes())
    send = _signed_post(standin, cos, source, sign_key=SOURCE, send_key="src/b.jpg", header=_ops(_rule()))
    refused(send, 403, "SignatureDoesNotMatch")


def test_pic_operations_changed_after_signing_is_refused(refused, standin: StandIn, cos, source: str):  # type: ignore[no-untyped-def]
    send = _signed_post(standin, cos, source, sign_key=SOURCE, send_key=SOURCE, header=_ops(_rule("/out/a.png")),
                        sent_header=_ops(_rule("/elsewhere/a.png")))
    refused(send, 403, "SignatureDoesNotMatch")


def test_expired_signature_is_refused(refused, standin: StandIn, cos, source: str):  # type: ignore[no-untyped-def]
    send = _signed_post(standin, cos, source, sign_key=SOURCE, send_key=SOURCE, header=_ops(_rule()), expired=-60)
    refused(send, 403, "AccessDenied")


def test_hand_signed_request_is_accepted_when_untouched(standin: StandIn, cos, source: str):  # type: ignore[no-untyped-def]
    # The control for the forgeries above: the same helper, unaltered, is served.
    send = _signed_post(standin, cos, source, sign_key=SOURCE, send_key=SOURCE, header=_ops(_rule("/out/ok.png")))
    send()
    assert cos.object_exists(Bucket=source, Key="out/ok.png")


# ---- detect-url hosts outside the allow list -------------------------------------------------------------------
FORBIDDEN_URLS = [
    "http://10.0.0.1/a.jpg",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:10.0.0.1]/a.jpg",
    "http://127.0.0.1.nip.io/a.jpg",
    "http://localhost@10.0.0.1/a.jpg",
    "http://10.0.0.1#@127.0.0.1/a.jpg",
    "file:///etc/passwd",
    "ftp://127.0.0.1/a.jpg",
    "gopher://127.0.0.1:70/x",
    "//10.0.0.1/a.jpg",
    # parsers disagree on these (issue 9): urlsplit sees 127.0.0.1 / localhost, an HTTP client may connect elsewhere
    "http://169.254.169.254\\@127.0.0.1/",
    "http://127.0.0.1:1\\@localhost:9/",
    "http://user:pw@127.0.0.1/a.jpg",
    "http://127.0.0.1:99999/a.jpg",
]


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_forbidden_detect_url_is_refused_before_any_connection(refused, cos, bucket: str, url: str,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch):
    fetched: list[str] = []

    def no_fetch(self: object, source: object, *args: object) -> None:
        fetched.append(str(source))
        raise AssertionError(f"the stand-in tried to fetch {source}")

    monkeypatch.setattr(detect_url_module.SourceFetcher, "_fetch", no_fetch)
    refused(lambda: cos.ci_super_resolution_process(Bucket=bucket, Url=url), 400, "InvalidArgument")
    assert fetched == []

