"""The function runs under its own role's policy, as on SCF: the local runtime hands it temporary keys
(TENCENTCLOUD_SECRETID / SECRETKEY / SESSIONTOKEN) limited to the policy `superres cam-policy` writes, the
shipped cam-policy.json for the shipped configuration. Every trigger test thus runs under it; here each of its
statements is shown to be needed: without any one, an upload is not super-resolved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qcloud_cos.cos_exception import CosServiceError

from superres.scf.role import role_policy
from superres.sr import load_engine
from superres.stack import PROJECT_ROOT, LocalStack, StackOptions

from .conftest import image_bytes

SHIPPED = json.loads((PROJECT_ROOT / "cam-policy.json").read_text(encoding="utf-8"))
BUCKET = "photos-1250000000"


def run_stack(data_dir: Path, policy: dict | None = None) -> LocalStack:
    options = StackOptions(data_dir=data_dir, engine=load_engine("bicubic"), retry_interval_s=0.05,
                           role_policy=policy, function_env={"CLAIM_WORK": "true"})
    return LocalStack(options)


def outcome(stack: LocalStack, key: str) -> dict:
    assert stack.trigger is not None
    assert stack.trigger.wait_idle(120)
    lines = [json.loads(line) for line in stack.trigger.log_lines if line.startswith("{")]
    mine = [line for line in lines if line.get("logger") == "superres" and line.get("key") == key]
    assert mine, f"no function line for {key}"
    return mine[-1]


def test_the_shipped_policy_is_the_one_the_function_gets() -> None:
    from superres.scf.serverless import load_function_spec

    assert role_policy(load_function_spec(PROJECT_ROOT / "serverless.yml"), {"CLAIM_WORK": "true"}) == SHIPPED


def test_the_function_keys_are_temporary_and_limited_to_the_role(tmp_path: Path) -> None:
    with run_stack(tmp_path) as stack:
        env = stack.function_env(role=True)
        assert env["TENCENTCLOUD_SESSIONTOKEN"]
        role = stack.standin.client(env["TENCENTCLOUD_SECRETID"], env["TENCENTCLOUD_SECRETKEY"],
                                    env["TENCENTCLOUD_SESSIONTOKEN"])
        with pytest.raises(CosServiceError) as info:
            role.put_object(Bucket=BUCKET, Key="uploads/not-the-roles-to-write.jpg", Body=b"x")
        assert info.value.get_error_code() == "AccessDenied"
        stack.client().put_object(Bucket=BUCKET, Key="uploads/ok.jpg", Body=image_bytes())
        line = outcome(stack, "uploads/ok.jpg")
        assert line["outcome"] == "processed", line


@pytest.mark.parametrize("index", range(len(SHIPPED["statement"])),
                         ids=[",".join(s["action"]) for s in SHIPPED["statement"]])
def test_each_statement_of_cam_policy_json_is_needed(tmp_path: Path, index: int) -> None:
    removed = SHIPPED["statement"][index]
    policy = {**SHIPPED, "statement": [s for i, s in enumerate(SHIPPED["statement"]) if i != index]}
    with run_stack(tmp_path, policy) as stack:
        stack.client().put_object(Bucket=BUCKET, Key="uploads/needs-all.jpg", Body=image_bytes())
        line = outcome(stack, "uploads/needs-all.jpg")
        if removed["action"] == ["cos:DeleteObject"]:
            # without it the claim on the work cannot be released: the result lands, the claim lingers
            assert line["outcome"] == "processed", line
            assert "not released (AccessDenied)" in line["warning"], line
            claims = stack.client().list_objects(Bucket=BUCKET, Prefix="superres/.claims/")
            assert claims.get("Contents"), "the claim should be left behind"
        else:
            assert line["outcome"] != "processed", line
            # COS's code, or for a HEAD (whose error has no body) its status
            assert "AccessDenied" in json.dumps(line) or '"HTTP403"' in json.dumps(line), line
            assert not stack.client().list_objects(Bucket=BUCKET, Prefix="superres/uploads/").get("Contents")
