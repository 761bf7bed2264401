"""The SCF API's `Invoke` (and `InvokeFunction`), version 2018-04-16, served locally.

tencentcloud-sdk-python talks to it unchanged once its HttpProfile points here
(`HttpProfile(protocol="http", endpoint="127.0.0.1:PORT")`), so `superres replay --deployed` and
`superres backfill --deployed` are tested end to end: the request is signed with TC3-HMAC-SHA256 and
verified here against the configured keys, the handler runs in a FunctionContainer wired to the stand-in,
and the answer has the shape of the real API (shared/spec/tencent-platform-facts.md section 7).

    with serve_scf_api(stack) as api:        # api.endpoint == "127.0.0.1:PORT"
        ...
        api.wait_idle()                      # async (InvocationType=Event) invocations finished

Limits enforced as SCF does: ClientContext at most 128 KB for InvocationType=Event, 6 MB for sync.
UpdateFunctionEventInvokeConfig / GetFunctionEventInvokeConfig set and read the async retry count and message
retention (`superres deploy-config`); the retry count governs the async deliveries here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..serving import BackgroundServer
from .container import ContainerOptions, FunctionContainer, InvokeResult
from .serverless import FunctionSpec
from .trigger import TriggerDispatcher, invocation_lines, write_function_log

if TYPE_CHECKING:
    from ..stack import LocalStack
    from ..standin.settings import Credential

log = logging.getLogger("superres.scf.api")

API_VERSION = "2018-04-16"
SERVICE = "scf"
ASYNC_EVENT_MAX_BYTES = 128 * 1024
SYNC_EVENT_MAX_BYTES = 6 * 1024 * 1024
# LogType=Tail returns the last 4 KB of the invocation's log.
LOG_TAIL_BYTES = 4096
EVENT_INVOKE_CONFIG_ACTIONS = ("UpdateFunctionEventInvokeConfig", "GetFunctionEventInvokeConfig")
# SCF's defaults for async invocations: 2 retries after an execution error, events kept 6 hours (doc 583/41138).
DEFAULT_RETRY_NUM = 2
DEFAULT_MSG_TTL_S = 21600
# TencentCloud API 3.0 rejects requests whose X-TC-Timestamp is more than 5 minutes off.
MAX_CLOCK_SKEW_S = 300


class ApiError(Exception):
    """An error answer: {"Response": {"Error": {"Code", "Message"}, "RequestId"}}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ScfFunction:
    """One function the local API knows, with its warm instances (sync) and its async queue (Event)."""

    spec: FunctionSpec
    options: ContainerOptions
    region: str
    instances: int = 2
    retry_num: int = DEFAULT_RETRY_NUM
    msg_ttl_s: int = DEFAULT_MSG_TTL_S
    # Every invocation, sync or async, is logged as the trigger logs its deliveries (superres.scf.trigger).
    log_path: Path | None = None
    on_log: Callable[[str], None] | None = None
    _pool: list[FunctionContainer] = field(default_factory=list, repr=False)
    _idle: list[FunctionContainer] = field(default_factory=list, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _async: TriggerDispatcher | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def namespace(self) -> str:
        return self.options.namespace

    def invoke_sync(self, event: object) -> InvokeResult:
        container = self._checkout()
        try:
            result = container.invoke(event)
            write_function_log(invocation_lines(result, 0), self.log_path, self.on_log)
            return result
        finally:
            with self._cond:
                self._idle.append(container)
                self._cond.notify()

    def invoke_async(self, event: dict) -> str:
        with self._cond:
            if self._async is None:
                # SCF's async path: a queue, warm instances, 2 retries after an execution error.
                self._async = TriggerDispatcher(self.spec, self.options, region=self.region,
                                                instances=self.instances, retries=self.retry_num,
                                                log_path=self.log_path, on_log=self.on_log)
        return self._async.submit(event)

    def configure_async(self, *, retry_num: int | None, msg_ttl_s: int | None) -> None:
        with self._cond:
            if retry_num is not None:
                self.retry_num = retry_num
                if self._async is not None:
                    self._async.retries = retry_num
            if msg_ttl_s is not None:
                self.msg_ttl_s = msg_ttl_s

    def async_trigger_config(self) -> dict[str, object]:
        return {"RetryConfig": [{"RetryNum": self.retry_num}], "MsgTTL": self.msg_ttl_s}

    @property
    def async_results(self) -> list[InvokeResult]:
        return [d.result for d in self._async.deliveries] if self._async else []

    def wait_idle(self, timeout: float = 300.0) -> bool:
        return self._async.wait_idle(timeout) if self._async else True

    def close(self) -> None:
        if self._async is not None:
            self._async.close()
        for container in self._pool:
            container.close()

    def _checkout(self) -> FunctionContainer:
        with self._cond:
            while not self._idle:
                if len(self._pool) < self.instances:
                    container = FunctionContainer(self.spec, self.options)
                    self._pool.append(container)
                    return container
                self._cond.wait()
            return self._idle.pop()


@dataclass(frozen=True)
class ReceivedCall:
    """What a test may want to check about a request that reached the API."""

    action: str
    function_name: str
    invocation_type: str
    client_context_bytes: int
    records: int


class ScfApiServer:
    """The local SCF API on a port, served by uvicorn in a background thread."""

    def __init__(self, functions: Iterable[ScfFunction], credentials: Sequence[Credential], *,
                 host: str = "127.0.0.1", port: int = 0, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.functions = {(f.namespace, f.name): f for f in functions}
        self.credentials = {c.secret_id: c for c in credentials}
        self.calls: list[ReceivedCall] = []
        self._clock = clock
        self.app = Starlette(routes=[Route("/", self._handle, methods=["POST"])])
        self._server = BackgroundServer(self.app, host=host, port=port, name="SCF API")

    @property
    def endpoint(self) -> str:
        """HOST:PORT, what HttpProfile(endpoint=...) and --scf-endpoint take."""
        return f"{self._server.host}:{self._server.port}"

    def start(self) -> ScfApiServer:
        self._server.start()
        log.info("scf api: serving %s", self.endpoint)
        return self

    def wait_idle(self, timeout: float = 300.0) -> bool:
        """Block until every async invocation (retries included) finished."""
        deadline = time.monotonic() + timeout
        return all(f.wait_idle(max(0.0, deadline - time.monotonic())) for f in self.functions.values())

    def stop(self) -> None:
        self._server.stop()
        for function in self.functions.values():
            function.close()

    def __enter__(self) -> ScfApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _handle(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())
        body = await request.body()
        try:
            self._authenticate(request, body)
            action = request.headers.get("x-tc-action", "")
            version = request.headers.get("x-tc-version", "")
            if version != API_VERSION:
                raise ApiError("InvalidParameterValue", f"X-TC-Version {version!r} is not supported; use {API_VERSION}")
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                raise ApiError("InvalidParameter", "the request body is not JSON") from None
            if action in EVENT_INVOKE_CONFIG_ACTIONS:
                return JSONResponse({"Response": {**self._event_invoke_config(action, params),
                                                  "RequestId": request_id}})
            if action == "Invoke":
                result = await self._invoke(action, params, event_field="ClientContext",
                                            invocation_type=params.get("InvocationType") or "RequestResponse")
            elif action == "InvokeFunction":
                result = await self._invoke(action, params, event_field="Event", invocation_type="RequestResponse")
            else:
                raise ApiError("InvalidAction", f"action {action!r} is not served here (Invoke, InvokeFunction, "
                               f"{', '.join(EVENT_INVOKE_CONFIG_ACTIONS)})")
        except ApiError as exc:
            return JSONResponse({"Response": {"Error": {"Code": exc.code, "Message": exc.message},
                                              "RequestId": request_id}})
        return JSONResponse({"Response": {"Result": result, "RequestId": request_id}})

    def _event_invoke_config(self, action: str, params: dict) -> dict[str, object]:
        """UpdateFunctionEventInvokeConfig / GetFunctionEventInvokeConfig: the async retry count and message
        retention (AsyncTriggerConfig {RetryConfig: [{RetryNum}], MsgTTL}); the retry count then governs this
        function's async deliveries here, as it does on SCF."""
        name = params.get("FunctionName") or ""
        namespace = params.get("Namespace") or "default"
        function = self.functions.get((namespace, name))
        if function is None:
            raise ApiError("ResourceNotFound.FunctionName", f"function {name!r} not found in namespace {namespace!r}")
        if action == "GetFunctionEventInvokeConfig":
            return {"AsyncTriggerConfig": function.async_trigger_config()}
        config = params.get("AsyncTriggerConfig")
        if not isinstance(config, dict):
            raise ApiError("MissingParameter", "AsyncTriggerConfig is required")
        retry = config.get("RetryConfig") or []
        retry_num, msg_ttl = (retry[0].get("RetryNum") if retry else None), config.get("MsgTTL")
        for field_name, value in (("RetryConfig.RetryNum", retry_num), ("MsgTTL", msg_ttl)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ApiError("InvalidParameterValue.AsyncTriggerConfig",
                               f"AsyncTriggerConfig.{field_name} must be a non-negative integer; got {value!r}")
        function.configure_async(retry_num=retry_num, msg_ttl_s=msg_ttl)
        return {}

    async def _invoke(self, action: str, params: dict, *, event_field: str, invocation_type: str) -> dict[str, object]:
        name = params.get("FunctionName") or ""
        namespace = params.get("Namespace") or "default"
        function = self.functions.get((namespace, name))
        if function is None:
            raise ApiError("ResourceNotFound.FunctionName", f"function {name!r} not found in namespace {namespace!r}")
        if invocation_type not in ("RequestResponse", "Event"):
            raise ApiError("InvalidParameterValue.InvocationType",
                           f"InvocationType must be RequestResponse or Event; got {invocation_type!r}")
        raw = params.get(event_field) or "{}"
        size = len(raw.encode("utf-8"))
        limit = ASYNC_EVENT_MAX_BYTES if invocation_type == "Event" else SYNC_EVENT_MAX_BYTES
        if size > limit:
            raise ApiError("InvalidParameterValue.ClientContext" if event_field == "ClientContext"
                           else "InvalidParameterValue.Event",
                           f"{event_field} is {size} bytes; {invocation_type} invocations take at most {limit} bytes")
        try:
            event = json.loads(raw)
        except ValueError:
            raise ApiError("InvalidParameterValue.Param", f"{event_field} is not in standard JSON format") from None
        except RecursionError:
            raise ApiError("InvalidParameterValue.Param",
                           f"{event_field} is nested too deeply to be read as JSON") from None
        records = event.get("Records") if isinstance(event, dict) else None
        self.calls.append(ReceivedCall(action, name, invocation_type, size,
                                       len(records) if isinstance(records, list) else 0))
        if invocation_type == "Event":
            return _result(function_request_id=await run_in_threadpool(function.invoke_async, event))
        outcome = await run_in_threadpool(function.invoke_sync, event)
        return _sync_result(outcome, tail=params.get("LogType") == "Tail")

    def _authenticate(self, request: Request, body: bytes) -> None:
        authorization = request.headers.get("authorization", "")
        fields = _parse_tc3(authorization)
        secret_id, date, service, terminator = (fields["Credential"].split("/") + ["", "", "", ""])[:4]
        credential = self.credentials.get(secret_id)
        if credential is None:
            raise ApiError("AuthFailure.SecretIdNotFound", "the SecretId is not found; check your credentials")
        try:
            timestamp = int(request.headers.get("x-tc-timestamp", ""))
        except ValueError:
            raise ApiError("AuthFailure.InvalidAuthorization", "X-TC-Timestamp is missing or not a number") from None
        if abs(self._clock() - timestamp) > MAX_CLOCK_SKEW_S:
            raise ApiError("AuthFailure.SignatureExpire", "the request's timestamp is more than 5 minutes off")
        if service != SERVICE or terminator != "tc3_request" or date != _utc_date(timestamp):
            raise ApiError("AuthFailure.InvalidAuthorization", f"credential scope {fields['Credential']!r} is not "
                           f"'<SecretId>/{_utc_date(timestamp)}/{SERVICE}/tc3_request'")
        headers = {name.lower(): request.headers.get(name, "") for name in fields["SignedHeaders"].split(";")}
        expected = tc3_signature(credential.secret_key, method=request.method, path=request.url.path or "/",
                                 query=request.url.query, headers=headers, body=body, timestamp=timestamp,
                                 service=service)
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise ApiError("AuthFailure.SignatureFailure",
                           "the signature does not match: check the SecretKey and the signing steps")
        if credential.token and request.headers.get("x-tc-token") != credential.token:
            raise ApiError("AuthFailure.TokenFailure", "the temporary credential's token is missing or wrong")


def tc3_signature(secret_key: str, *, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                  timestamp: int, service: str) -> str:
    """TC3-HMAC-SHA256, as tencentcloud-sdk-python's AbstractClient signs (the canonical request over the
    signed headers, the body's SHA-256, then HMAC over date, service and 'tc3_request')."""
    canonical_headers = "".join(f"{name}:{value.strip()}\n" for name, value in headers.items())
    canonical_request = "\n".join([method.upper(), path, query, canonical_headers, ";".join(headers),
                                   hashlib.sha256(body).hexdigest()])
    date = _utc_date(timestamp)
    string_to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/{service}/tc3_request",
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def serve_scf_api(stack: LocalStack, host: str = "127.0.0.1", port: int = 0, instances: int = 2) -> ScfApiServer:
    """Start the SCF API for `stack`'s function (serverless.yml), running against `stack`'s stand-in and
    accepting the stand-in's keys. Stop it with .stop() or use it as a context manager."""
    function = ScfFunction(stack.spec, ContainerOptions(env=stack.function_env(), appid=stack.settings.appid),
                           region=stack.settings.region, instances=instances,
                           log_path=stack.options.data_dir / "function-log.jsonl", on_log=stack.options.on_log)
    return ScfApiServer([function], stack.settings.credentials, host=host, port=port).start()


def _parse_tc3(authorization: str) -> dict[str, str]:
    algorithm, _, rest = authorization.partition(" ")
    if algorithm != "TC3-HMAC-SHA256":
        raise ApiError("AuthFailure.InvalidAuthorization", "Authorization must use TC3-HMAC-SHA256")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise ApiError("AuthFailure.InvalidAuthorization",
                       "Authorization lacks Credential, SignedHeaders or Signature")
    return fields


def _utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


def _sync_result(outcome: InvokeResult, *, tail: bool) -> dict[str, object]:
    log_text = "\n".join(outcome.logs)
    if tail:
        log_text = log_text.encode()[-LOG_TAIL_BYTES:].decode("utf-8", "ignore")
    return _result(
        function_request_id=outcome.request_id,
        ret_msg=json.dumps(outcome.return_value) if outcome.ok else "",
        err_msg="" if outcome.ok else json.dumps(outcome.error),
        log=log_text if tail else "",
        mem_usage=outcome.memory_bytes,
        duration=round(outcome.duration_ms, 3),
        bill_duration=outcome.billed_ms,
        invoke_result=0 if outcome.ok else -1,
    )


def _result(*, function_request_id: str, ret_msg: str = "", err_msg: str = "", log: str = "", mem_usage: int = 0,
            duration: float = 0.0, bill_duration: int = 0, invoke_result: int = 0) -> dict[str, object]:
    return {"RetMsg": ret_msg, "ErrMsg": err_msg, "Log": log, "MemUsage": mem_usage, "Duration": duration,
            "BillDuration": bill_duration, "FunctionRequestId": function_request_id, "InvokeResult": invoke_result}
