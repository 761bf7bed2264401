"""No Authorization value, secret key or session token in any log line, on the happy path and the failure paths,
with a temporary key (SecretId + SecretKey + session token) like the one SCF hands a function's execution role."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from superres.scf.container import ContainerOptions, FunctionContainer
from superres.scf.trigger import build_cos_event
from superres.sr import load_engine
from superres.stack import LocalStack, StackOptions
from superres.standin import Credential, ObjectCreated, StandinSettings
from superres.standin.faults import FaultPlan
from tests.conftest import leaked_secrets, register_secret

BUCKET = "photos-1250000000"
ROLE = Credential("AKIDsuperresROLEtempKEY0000000000000", "superresROLEsecretKEYlogcheck0000",
                  token="superres-role-session-token-logcheck-0001")


def _png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), (i * 40 % 256, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_no_secret_in_any_log_line_with_a_session_token(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    register_secret(ROLE.secret_key, ROLE.token)
    caplog.set_level(logging.DEBUG, logger="superres")
    settings = StandinSettings(data_dir=tmp_path / "data", credentials=(ROLE,))
    options = StackOptions(data_dir=tmp_path / "data", settings=settings, engine=load_engine("bicubic"),
                           retry_interval_s=0.1, function_env={"COS_TIMEOUT_S": "0.5"},
                           faults=FaultPlan(0.4, delay_s=1.0, seed=3, targets=("ci", "head")))
    with LocalStack(options) as stack:
        assert stack.function_env()["TENCENTCLOUD_SESSIONTOKEN"] == ROLE.token  # the function signs with it
        client = stack.client()
        for i in range(6):
            client.put_object(Bucket=BUCKET, Key=f"uploads/s{i}.png", Body=_png(i))
        client.put_object(Bucket=BUCKET, Key="uploads/not-an-image.png", Body=b"text")
        assert stack.trigger.wait_idle(120)
        assert stack.standin.faults.wait_idle(30)
        outcomes = {json.loads(line).get("reason") for line in stack.trigger.log_lines if line.startswith("{")}
        # failure paths were logged too, not only successes
        assert {"processed", "InvalidImageFormat"} <= outcomes
        # a wrong token: the function's calls are refused, and that is logged
        wrong_token = {**stack.function_env(), "TENCENTCLOUD_SESSIONTOKEN": "superres-WRONG-token-logcheck"}
        register_secret(wrong_token["TENCENTCLOUD_SESSIONTOKEN"])
        obj = ObjectCreated(bucket=BUCKET, key="uploads/s0.png", size=10, etag='"x"', content_type="image/png",
                            meta={}, event_name="cos:ObjectCreated:Put", request_id="r", source_ip="127.0.0.1",
                            authorization="q-sign-algorithm=sha1&q-ak=X&q-signature=deadbeef")
        event = {"Records": [build_cos_event(obj, appid=settings.appid, region=settings.region)]}
        stack.standin.set_faults(None)
        with FunctionContainer(stack.spec, ContainerOptions(env=wrong_token, appid=settings.appid)) as container:
            refused = container.invoke(event)
        assert any(line.get("outcome") == "failed" and line["error"].get("status") == 403
                   for line in refused.log_records)
        function_log = (tmp_path / "data" / "function-log.jsonl").read_text(encoding="utf-8")

    texts = {
        "function-log.jsonl": function_log,
        "trigger log lines": "\n".join(stack.trigger.log_lines),
        "direct invocation": "\n".join(refused.logs) + json.dumps(refused.error),
        "superres loggers": "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records
                                      if r.name.startswith("superres")),
    }
    assert caplog.records  # the stand-in's request lines were captured
    for name, text in texts.items():
        assert leaked_secrets(text) == [], name
        assert ROLE.secret_key not in text and ROLE.token not in text and "security-token" not in text, name
