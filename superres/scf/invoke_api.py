"""Invoke and InvokeFunction (`superres replay --deployed`, `backfill --deployed`), and the async retry policy
(UpdateFunctionEventInvokeConfig / GetFunctionEventInvokeConfig), which governs the async deliveries here as it
does on SCF. Limits as SCF enforces them: ClientContext at most 128 KB for InvocationType=Event, 6 MB sync."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from .api import SCF, ApiError, action
from .container import InvokeResult
from .registry import FunctionRegistry

ASYNC_EVENT_MAX_BYTES = 128 * 1024
SYNC_EVENT_MAX_BYTES = 6 * 1024 * 1024
# LogType=Tail returns the last 4 KB of the invocation's log.
LOG_TAIL_BYTES = 4096


@dataclass(frozen=True)
class ReceivedCall:
    """What a test may want to check about an invocation that reached the API."""

    action: str
    function_name: str
    invocation_type: str
    client_context_bytes: int
    records: int


class InvokeApi:
    def __init__(self, registry: FunctionRegistry, calls: list[ReceivedCall] | None = None) -> None:
        self.registry = registry
        self.calls = calls if calls is not None else []  # what reached this API (tests read it)

    @action(SCF, "Invoke")
    async def invoke(self, params: dict) -> dict:
        return {"Result": await self._invoke("Invoke", params, event_field="ClientContext",
                                             invocation_type=params.get("InvocationType") or "RequestResponse")}

    @action(SCF, "InvokeFunction")
    async def invoke_function(self, params: dict) -> dict:
        return {"Result": await self._invoke("InvokeFunction", params, event_field="Event",
                                             invocation_type="RequestResponse")}

    @action(SCF, "GetFunctionEventInvokeConfig")
    def get_function_event_invoke_config(self, params: dict) -> dict:
        return {"AsyncTriggerConfig": self.registry.get(params).async_trigger_config()}

    @action(SCF, "UpdateFunctionEventInvokeConfig")
    def update_function_event_invoke_config(self, params: dict) -> dict:
        """AsyncTriggerConfig {RetryConfig: [{RetryNum}], MsgTTL}."""
        function = self.registry.get(params)
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

    async def _invoke(self, action_name: str, params: dict, *, event_field: str,
                      invocation_type: str) -> dict[str, object]:
        function = self.registry.get(params)
        if function.status != "Active":
            raise ApiError("FailedOperation.FunctionStatusError",
                           f"function {function.name!r} is {function.status}; invoke it once it is Active")
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
        self.calls.append(ReceivedCall(action_name, function.name, invocation_type, size,
                                                len(records) if isinstance(records, list) else 0))
        if invocation_type == "Event":
            return _result(function_request_id=await run_in_threadpool(function.invoke_async, event))
        outcome = await run_in_threadpool(function.invoke_sync, event)
        return _sync_result(outcome, tail=params.get("LogType") == "Tail")


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
