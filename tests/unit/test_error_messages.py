"""superres.errors: what the CLI says for each failure it knows (pure mapping; the CLI paths are tested as
subprocesses in tests/integration/test_cli_errors.py)."""

from __future__ import annotations

import errno

from qcloud_cos.cos_exception import CosClientError, CosServiceError

from superres.errors import describe
from superres.scf.serverless import ServerlessConfigError


def _cos_error(code: str, message: str, status: int = 403) -> CosServiceError:
    xml = (f"<?xml version='1.0' encoding='utf-8' ?><Error><Code>{code}</Code><Message>{message}</Message>"
           "<Resource>photos-1250000000.cos.ap-guangzhou.myqcloud.com/</Resource><RequestId>r1</RequestId>"
           "<TraceId>t1</TraceId></Error>")
    return CosServiceError("GET", xml, status)


def test_wrong_keys_name_the_code_and_the_variables():
    text = describe(_cos_error("SignatureDoesNotMatch", "The signature does not match"))
    assert text.startswith("COS refused the credentials: SignatureDoesNotMatch: The signature does not match")
    assert "TENCENTCLOUD_SECRETKEY" in text


def test_missing_bucket_names_the_bucket():
    text = describe(_cos_error("NoSuchBucket", "The specified bucket does not exist.", 404))
    assert text.startswith("photos-1250000000 does not exist: NoSuchBucket")


def test_head_answer_without_a_body_is_not_unknown_unknown():
    assert "Unknown" not in describe(CosServiceError("HEAD", "", 403))


def test_refused_local_connection_names_the_endpoint_and_superres_local():
    raw = ("HTTPConnectionPool(host='127.0.0.1', port=9000): Max retries exceeded with url: / (Caused by "
           "NewConnectionError(\"Failed to establish a new connection: [Errno 111] Connection refused\"))")
    assert describe(CosClientError(raw)) == ("cannot reach http://127.0.0.1:9000 (connection refused): is the "
                                             "stand-in running? Start it with `superres local --port 9000`")


def test_file_errors_name_the_path():
    assert describe(NotADirectoryError(errno.ENOTDIR, "Not a directory", "/x/out")) == "/x/out: Not a directory"


def test_config_errors_are_their_own_message():
    assert describe(ServerlessConfigError("serverless.yml: ${env:X} is not set")) == \
        "serverless.yml: ${env:X} is not set"


def test_anything_else_points_at_debug():
    assert "superres --debug" in describe(RuntimeError("boom"))
