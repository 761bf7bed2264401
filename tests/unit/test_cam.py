"""CAM policy evaluation as the stand-in enforces it on temporary keys (pure logic)."""

from __future__ import annotations

import json

import pytest

from superres.standin.cam import PolicyError, cos_resource, parse_policy, request_context

BUCKET = "photos-1250000000"


def policy(*statements: dict) -> object:
    return parse_policy(json.dumps({"version": "2.0", "statement": list(statements)}))


def res(key: str, region: str = "ap-guangzhou") -> str:
    return cos_resource(region, "1250000000", BUCKET, key)


def allow(action: object, resource: object, **extra: object) -> dict:
    return {"effect": "allow", "action": action, "resource": resource, **extra}


@pytest.mark.parametrize("action", ["cos:PutObject", "name/cos:PutObject", "cos:*", "cos:Put*", "*", "COS:putobject"])
def test_action_forms_and_wildcards_match(action: str) -> None:
    assert policy(allow(action, "*")).allows("cos:PutObject", res("a"), {})


def test_an_action_wildcard_does_not_reach_other_actions() -> None:
    assert not policy(allow("cos:Get*", "*")).allows("cos:PutObject", res("a"), {})


@pytest.mark.parametrize(("pattern", "key", "allowed"), [
    (f"qcs::cos:ap-guangzhou:uid/1250000000:{BUCKET}/uploads/u1/*", "uploads/u1/a/b.jpg", True),
    (f"qcs::cos:ap-guangzhou:uid/1250000000:{BUCKET}/uploads/u1/*", "uploads/u10/a.jpg", False),
    (f"qcs::cos:ap-guangzhou:uid/1250000000:{BUCKET}/uploads/*.jpg", "uploads/x/a.jpg", True),
    (f"qcs::cos::uid/1250000000:{BUCKET}/*", "a", True),  # empty region: any
    ("qcs::cos:ap-guangzhou:uid/1250000000:prefix//1250000000/photos/uploads/*", "uploads/a", True),  # older form
    (f"qcs::cos:ap-shanghai:uid/1250000000:{BUCKET}/*", "a", False),
])
def test_resources_match_with_prefix_wildcards(pattern: str, key: str, allowed: bool) -> None:
    assert policy(allow("cos:GetObject", pattern)).allows("cos:GetObject", res(key), {}) is allowed


def test_deny_wins() -> None:
    p = policy(allow("cos:*", "*"), {"effect": "deny", "action": "cos:DeleteObject", "resource": res("keep/*")})
    assert p.allows("cos:DeleteObject", res("other"), {})
    assert not p.allows("cos:DeleteObject", res("keep/a"), {})


def test_conditions_on_ip_and_headers() -> None:
    p = policy(allow("cos:PutObject", "*", condition={"ip_equal": {"qcs:ip": ["10.0.0.0/8"]},
                                                        "string_like": {"cos:content-type": ["image/*"]}}))
    assert p.allows("cos:PutObject", res("a"), {"qcs:ip": "10.1.2.3", "cos:content-type": "image/png"})
    assert not p.allows("cos:PutObject", res("a"), {"qcs:ip": "192.168.0.1", "cos:content-type": "image/png"})
    assert not p.allows("cos:PutObject", res("a"), {"qcs:ip": "10.1.2.3", "cos:content-type": "text/plain"})


def test_a_listing_is_limited_to_a_folder_by_cos_prefix() -> None:
    p = policy(allow("cos:GetBucket", res("*"), condition={"string_like": {"cos:prefix": ["superres/.staging/*"]}}))
    listing = request_context("127.0.0.1", {}, {"prefix": "superres/.staging/abc/"})
    assert p.allows("cos:GetBucket", res("superres/.staging/abc/"), listing)
    assert not p.allows("cos:GetBucket", res("uploads/"), request_context("127.0.0.1", {}, {"prefix": "uploads/"}))
    assert not p.allows("cos:GetBucket", res(""), request_context("127.0.0.1", {}, {}))  # the whole bucket


@pytest.mark.parametrize("statement", [
    {"effect": "allow", "action": [], "resource": "*"},
    {"effect": "allow", "action": "cos:*", "resource": "*", "principal": {"qcs": ["*"]}},
    {"effect": "allow", "action": "cos:*", "resource": "*", "condition": {"numeric_equal": {"cos:x": "1"}}},
    {"effect": "allow", "action": "cos:*", "resource": "*", "condition": {"ip_equal": {"cos:ip": "1.2.3.4"}}},
])
def test_policies_outside_the_grammar_are_refused(statement: dict) -> None:
    with pytest.raises(PolicyError):
        policy(statement)
