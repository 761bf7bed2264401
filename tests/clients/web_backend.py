"""The tiny app backend a web upload page needs: it serves the page and hands out temporary keys limited to one
user's prefix, asked from STS with tencentcloud-sdk-python (here `superres local`'s STS; in the cloud,
sts.tencentcloudapi.com). The keys' shape is what cos-js-sdk-v5's getAuthorization callback takes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.integration.sts_keys import federation_token

from .chromium import BROWSER_DIR

FILES = {
    "/": (BROWSER_DIR / "page" / "index.html", "text/html; charset=utf-8"),
    "/upload.js": (BROWSER_DIR / "page" / "upload.js", "text/javascript"),
    "/cos-js-sdk-v5.min.js": (BROWSER_DIR / "node_modules" / "cos-js-sdk-v5" / "dist" / "cos-js-sdk-v5.min.js",
                              "text/javascript"),
}


def upload_policy(bucket: str, region: str, prefix: str, result_prefix: str) -> dict:
    """Upload (PUT, POST form, multipart) under `prefix`; read the results of those uploads."""
    appid = bucket.rpartition("-")[2]
    def resource(path: str) -> str:
        return f"qcs::cos:{region}:uid/{appid}:{bucket}/{path}*"
    return {"version": "2.0", "statement": [
        {"effect": "allow",
         "action": ["name/cos:PutObject", "name/cos:PostObject", "name/cos:InitiateMultipartUpload",
                    "name/cos:ListMultipartUploads", "name/cos:ListParts", "name/cos:UploadPart",
                    "name/cos:CompleteMultipartUpload", "name/cos:AbortMultipartUpload"],
         "resource": [resource(prefix)]},
        {"effect": "allow", "action": ["name/cos:HeadObject", "name/cos:GetObject"],
         "resource": [resource(result_prefix + prefix)]},
    ]}


def post_policy(keys: dict, config: dict, cos_key: str) -> dict:
    """cos-js-sdk-v5's sample server route /post-policy (server/sts.js), signing with the temporary key."""
    now = int(time.time())
    exp = now + 900
    q_key_time = f"{now};{exp}"
    expiration = datetime.fromtimestamp(exp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    policy = json.dumps({"expiration": expiration, "conditions": [
        {"q-sign-algorithm": "sha1"}, {"q-ak": keys["TmpSecretId"]}, {"q-sign-time": q_key_time},
        {"bucket": config["Bucket"]}, {"key": cos_key}]}, separators=(",", ":"))
    sign_key = hmac.new(keys["TmpSecretKey"].encode(), q_key_time.encode(), hashlib.sha1).hexdigest()
    signature = hmac.new(sign_key.encode(), hashlib.sha1(policy.encode()).hexdigest().encode(),
                         hashlib.sha1).hexdigest()
    return {"cosHost": f"{config['Bucket']}.cos.{config['Region']}.myqcloud.com", "cosKey": cos_key,
            "policy": base64.b64encode(policy.encode()).decode(), "qSignAlgorithm": "sha1",
            "qAk": keys["TmpSecretId"], "qKeyTime": q_key_time, "qSignature": signature,
            "securityToken": keys["Token"]}


class WebBackend:
    def __init__(self, sts_endpoint: str, bucket: str, region: str, prefix: str, result_prefix: str) -> None:
        self.config = {"Bucket": bucket, "Region": region, "Prefix": prefix, "ResultPrefix": result_prefix}
        self.policy = upload_policy(bucket, region, prefix, result_prefix)
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/config":
                    return self._send(json.dumps(backend.config).encode(), "application/json")
                if path == "/sts":
                    keys = federation_token(sts_endpoint, backend.policy)
                    answer = {"TmpSecretId": keys["TmpSecretId"], "TmpSecretKey": keys["TmpSecretKey"],
                              "SecurityToken": keys["Token"], "StartTime": int(time.time()),
                              "ExpiredTime": keys["ExpiredTime"]}
                    return self._send(json.dumps(answer).encode(), "application/json")
                if path == "/post-policy":
                    name = self.path.partition("?name=")[2] or "upload.png"
                    answer = post_policy(federation_token(sts_endpoint, backend.policy), backend.config,
                                         backend.config["Prefix"] + name)
                    return self._send(json.dumps(answer).encode(), "application/json")
                if path in FILES:
                    file, kind = FILES[path]
                    return self._send(file.read_bytes(), kind)
                self.send_error(404)
                return None

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="web-backend", daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> WebBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
