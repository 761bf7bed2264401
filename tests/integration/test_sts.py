"""Temporary keys: `superres local` serves STS (GetFederationToken, AssumeRole) to tencentcloud-sdk-python's sts
client with TC3 signatures checked; the stand-in checks each key's token and enforces its CAM policy. Keys issued
for uploads/u1/* upload there and nowhere else; an expired or forged token is refused with COS's code; a refused
request changes nothing."""

from __future__ import annotations

import json
import time
import uuid
from urllib.parse import quote

import pytest
import requests
from qcloud_cos.cos_exception import CosServiceError
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.sts.v20180813 import models

from superres.standin import StandIn
from superres.standin.cam import parse_policy
from superres.standin.sts import TokenAuthority
from tests.cut_off import errors_logged, send_cut_off

from .conftest import EventRecorder
from .sts_keys import federation_token, sts, upload_policy
from .test_post_object_policy import page_post, sample_server_policy
from .test_refusals import _snapshot

UPLOAD_ACTIONS = ["name/cos:PutObject", "name/cos:PostObject", "cos:InitiateMultipartUpload", "cos:UploadPart",
                  "cos:CompleteMultipartUpload", "cos:Get*", "cos:HeadObject"]


def endpoint(standin: StandIn) -> str:
    return f"127.0.0.1:{standin.port}"


def temp_client(standin: StandIn, keys: dict):  # type: ignore[no-untyped-def]
    return standin.client(keys["TmpSecretId"], keys["TmpSecretKey"], keys["Token"])


def refused(call, *args, **kwargs) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(CosServiceError) as info:
        call(*args, **kwargs)
    return info.value.get_status_code(), info.value.get_error_code()


@pytest.fixture
def u1_keys(standin: StandIn, bucket: str) -> dict:
    return federation_token(endpoint(standin), upload_policy(bucket, "uploads/u1/", UPLOAD_ACTIONS))


def test_keys_for_a_prefix_upload_there(standin, cos, bucket: str, u1_keys: dict,  # type: ignore[no-untyped-def]
                                         standin_events: EventRecorder):
    assert u1_keys["TmpSecretId"].startswith("AKID") and u1_keys["ExpiredTime"] > time.time() + 1700
    temp = temp_client(standin, u1_keys)
    temp.put_object(Bucket=bucket, Key="uploads/u1/a.jpg", Body=b"mine")
    assert temp.get_object(Bucket=bucket, Key="uploads/u1/a.jpg")["Body"].get_raw_stream().read() == b"mine"
    temp.upload_file(Bucket=bucket, Key="uploads/u1/big.bin", LocalFilePath=__file__, PartSize=1, MAXThread=2)
    assert [e.key for e in standin_events.for_bucket(bucket)] == ["uploads/u1/a.jpg", "uploads/u1/big.bin"]


@pytest.mark.parametrize("key", ["uploads/u2/a.jpg", "uploads/u1", "other/uploads/u1/a.jpg", "a.jpg"])
def test_keys_for_a_prefix_upload_nowhere_else_and_change_nothing(standin, cos, bucket: str, u1_keys: dict,  # type: ignore[no-untyped-def]
                                                                   standin_events: EventRecorder, key: str):
    cos.put_object(Bucket=bucket, Key="uploads/u2/a.jpg", Body=b"someone else's")
    before = _snapshot(standin)
    temp = temp_client(standin, u1_keys)
    assert refused(temp.put_object, Bucket=bucket, Key=key, Body=b"intruder") == (403, "AccessDenied")
    assert refused(temp.delete_object, Bucket=bucket, Key=key) == (403, "AccessDenied")
    assert refused(temp.create_multipart_upload, Bucket=bucket, Key=key) == (403, "AccessDenied")
    assert _snapshot(standin) == before
    assert cos.get_object(Bucket=bucket, Key="uploads/u2/a.jpg")["Body"].get_raw_stream().read() == b"someone else's"
    assert len(standin_events.for_bucket(bucket)) == 1  # the setup's PUT only


def test_actions_the_policy_does_not_name_are_refused(standin, cos, bucket: str, u1_keys: dict):  # type: ignore[no-untyped-def]
    temp = temp_client(standin, u1_keys)
    temp.put_object(Bucket=bucket, Key="uploads/u1/a.jpg", Body=b"mine")
    assert refused(temp.delete_object, Bucket=bucket, Key="uploads/u1/a.jpg") == (403, "AccessDenied")
    assert refused(temp.list_objects, Bucket=bucket) == (403, "AccessDenied")
    acl = refused(temp.put_object_acl, Bucket=bucket, Key="uploads/u1/a.jpg", ACL="public-read")
    assert acl == (403, "AccessDenied")
    copy_source = {"Bucket": bucket, "Key": "uploads/u1/a.jpg", "Region": standin.settings.region}
    # copying into the prefix needs GetObject on the source too: granted here (cos:Get*), so it lands
    temp.copy_object(Bucket=bucket, Key="uploads/u1/b.jpg", CopySource=copy_source)
    cos.put_object(Bucket=bucket, Key="private/secret.txt", Body=b"secret")
    outside = {**copy_source, "Key": "private/secret.txt"}
    assert refused(temp.copy_object, Bucket=bucket, Key="uploads/u1/c.jpg", CopySource=outside) == (403, "AccessDenied")


def test_deny_wins_over_allow(standin, cos, bucket: str):  # type: ignore[no-untyped-def]
    policy = upload_policy(bucket, "uploads/", ["cos:*"])
    policy["statement"].append({"effect": "deny", "action": ["cos:PutObject"],
                                "resource": [f"qcs::cos:ap-guangzhou:uid/1250000000:{bucket}/uploads/locked/*"]})
    temp = temp_client(standin, federation_token(endpoint(standin), policy))
    temp.put_object(Bucket=bucket, Key="uploads/open/a", Body=b"ok")
    assert refused(temp.put_object, Bucket=bucket, Key="uploads/locked/a", Body=b"no") == (403, "AccessDenied")


def test_ip_condition_is_enforced(standin, cos, bucket: str):  # type: ignore[no-untyped-def]
    allowed = upload_policy(bucket, "", ["cos:PutObject"])
    allowed["statement"][0]["condition"] = {"ip_equal": {"qcs:ip": ["127.0.0.0/8"]}}
    temp_client(standin, federation_token(endpoint(standin), allowed)).put_object(Bucket=bucket, Key="a", Body=b"1")
    elsewhere = upload_policy(bucket, "", ["cos:PutObject"])
    elsewhere["statement"][0]["condition"] = {"ip_equal": {"qcs:ip": ["10.0.0.0/8"]}}
    temp = temp_client(standin, federation_token(endpoint(standin), elsewhere))
    assert refused(temp.put_object, Bucket=bucket, Key="b", Body=b"2") == (403, "AccessDenied")


def test_an_expired_token_is_refused_with_expired_token(standin, cos, bucket: str):  # type: ignore[no-untyped-def]
    # A key issued an hour ago for 60 s, sealed by the stand-in's own secret: only its age is wrong.
    past = TokenAuthority(standin.settings.data_dir, clock=lambda: time.time() - 3600)
    key = past.issue((parse_policy(json.dumps(upload_policy(bucket, "", ["cos:*"]))),), 60)
    temp = standin.client(key.secret_id, key.secret_key, key.token)
    before = _snapshot(standin)
    assert refused(temp.put_object, Bucket=bucket, Key="a", Body=b"late") == (400, "ExpiredToken")
    assert _snapshot(standin) == before


def test_forged_tokens_are_refused_with_invalid_access_key_id(standin, cos, bucket: str, u1_keys: dict):  # type: ignore[no-untyped-def]
    other = federation_token(endpoint(standin), upload_policy(bucket, "", ["cos:*"]))
    sealed, _, mac = u1_keys["Token"].partition(".")
    forgeries = {
        "another key's token": other["Token"],
        "payload swapped": other["Token"].partition(".")[0] + "." + mac,
        "mac altered": sealed + "." + ("0" if mac[0] != "0" else "1") + mac[1:],
    }
    before = _snapshot(standin)
    for name, token in forgeries.items():
        temp = standin.client(u1_keys["TmpSecretId"], u1_keys["TmpSecretKey"], token)
        code = refused(temp.put_object, Bucket=bucket, Key="uploads/u1/x", Body=b"x")
        assert code == (403, "InvalidAccessKeyId"), name
    no_token = standin.client(u1_keys["TmpSecretId"], u1_keys["TmpSecretKey"])
    assert refused(no_token.put_object, Bucket=bucket, Key="uploads/u1/x", Body=b"x") == (403, "InvalidAccessKeyId")
    wrong_key = standin.client(u1_keys["TmpSecretId"], "0" * 40, u1_keys["Token"])
    assert refused(wrong_key.put_object, Bucket=bucket, Key="uploads/u1/x", Body=b"x") == (403, "SignatureDoesNotMatch")
    assert _snapshot(standin) == before


def test_a_presigned_url_carries_the_token(standin, cos, bucket: str, u1_keys: dict):  # type: ignore[no-untyped-def]
    temp = temp_client(standin, u1_keys)
    temp.put_object(Bucket=bucket, Key="uploads/u1/p.txt", Body=b"presigned")
    host = standin.settings.bucket_host(bucket)
    url = temp.get_presigned_url(Bucket=bucket, Key="uploads/u1/p.txt", Method="GET", Headers={"Host": host},
                                 Params={"x-cos-security-token": u1_keys["Token"]})
    assert requests.get(url, headers={"Host": host}, timeout=10).content == b"presigned"


def test_sts_checks_the_tc3_signature(standin):  # type: ignore[no-untyped-def]
    request = models.GetFederationTokenRequest()
    request.Name = "web"
    request.Policy = quote(json.dumps({"version": "2.0", "statement": [
        {"effect": "allow", "action": "cos:*", "resource": "*"}]}))
    with pytest.raises(TencentCloudSDKException) as wrong:
        sts(endpoint(standin), secret_key="not-the-key").GetFederationToken(request)
    assert wrong.value.get_code() == "AuthFailure.SignatureFailure"
    with pytest.raises(TencentCloudSDKException) as unknown:
        sts(endpoint(standin), secret_id="AKIDnobody").GetFederationToken(request)
    assert unknown.value.get_code() == "AuthFailure.SecretIdNotFound"


@pytest.mark.parametrize(("policy", "code"), [
    ("not json", "InvalidParameter.StrategyFormatError"),
    ({"version": "2.0", "statement": [{"effect": "maybe", "action": "cos:*", "resource": "*"}]},
     "InvalidParameter.StrategyFormatError"),
    ({"version": "2.0", "statement": [{"effect": "allow", "action": "cos:*", "resource": "*",
                                       "condition": {"date_greater_than": {"qcs:current_time": "x"}}}]},
     "InvalidParameter.StrategyFormatError"),
])
def test_policies_outside_the_supported_grammar_are_refused(standin, policy: object, code: str):  # type: ignore[no-untyped-def]
    request = models.GetFederationTokenRequest()
    request.Name = "web"
    request.Policy = quote(policy if isinstance(policy, str) else json.dumps(policy))
    with pytest.raises(TencentCloudSDKException) as info:
        sts(endpoint(standin)).GetFederationToken(request)
    assert info.value.get_code() == code


def test_assume_role_intersects_the_role_and_the_session_policy(tmp_path):  # type: ignore[no-untyped-def]
    from superres.standin import StandinSettings

    bucket = "web-1250000000"
    role = json.dumps(upload_policy(bucket, "uploads/", ["cos:PutObject", "cos:GetObject"]))
    settings = StandinSettings(data_dir=tmp_path, roles=(("uploader", role),))
    with StandIn(settings) as standin:
        standin.create_bucket("web")
        request = models.AssumeRoleRequest()
        request.RoleArn = "qcs::cam::uin/100000000001:roleName/uploader"
        request.RoleSessionName = f"s-{uuid.uuid4().hex[:8]}"
        request.Policy = quote(json.dumps(upload_policy(bucket, "uploads/u1/", ["cos:*"])))
        creds = sts(endpoint(standin)).AssumeRole(request).Credentials
        temp = standin.client(creds.TmpSecretId, creds.TmpSecretKey, creds.Token)
        temp.put_object(Bucket=bucket, Key="uploads/u1/a", Body=b"both allow")
        assert refused(temp.put_object, Bucket=bucket, Key="uploads/u2/a", Body=b"role only") == (403, "AccessDenied")
        assert refused(temp.delete_object, Bucket=bucket, Key="uploads/u1/a") == (403, "AccessDenied")  # session only
        request.RoleArn = "qcs::cam::uin/100000000001:roleName/nobody"
        with pytest.raises(TencentCloudSDKException) as missing:
            sts(endpoint(standin)).AssumeRole(request)
        assert missing.value.get_code() == "ResourceNotFound.RoleNotFound"


def test_a_form_signed_with_temporary_keys_posts_inside_the_prefix_only(standin, cos, bucket: str,  # type: ignore[no-untyped-def]
                                                                         u1_keys: dict):
    def form(key: str) -> dict[str, str]:
        return sample_server_policy(bucket, key, ak=u1_keys["TmpSecretId"], secret_key=u1_keys["TmpSecretKey"])

    assert page_post(standin, bucket, form("uploads/u1/f.jpg"), token=u1_keys["Token"]).status_code == 204
    before = _snapshot(standin)
    outside = page_post(standin, bucket, form("uploads/u2/f.jpg"), token=u1_keys["Token"])
    assert outside.status_code == 403 and b"<Code>AccessDenied</Code>" in outside.content
    tokenless = page_post(standin, bucket, form("uploads/u1/g.jpg"))
    assert tokenless.status_code == 403 and b"<Code>InvalidAccessKeyId</Code>" in tokenless.content
    assert _snapshot(standin) == before


def test_a_request_cut_off_mid_body_is_dropped_quietly(standin, bucket: str,  # type: ignore[no-untyped-def]
                                                       caplog: pytest.LogCaptureFixture):
    """A caller that leaves before its JSON arrived gets no keys and leaves no traceback; the next caller is served."""
    send_cut_off(standin.port, "POST / HTTP/1.1", {"Host": endpoint(standin), "X-TC-Action": "GetFederationToken",
                                                   "Content-Type": "application/json"}, sent=10, declared=1000)
    assert errors_logged(caplog) == []
    keys = federation_token(endpoint(standin), upload_policy(bucket, "uploads/u1/", UPLOAD_ACTIONS))
    assert keys["Token"]
