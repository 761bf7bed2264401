"""Typed errors with a stable code, a human message and a retry decision made in one place."""

from __future__ import annotations

# Codes that mean "the service is busy or broke for a moment": retrying may succeed. COS documents SlowDown (503)
# and RequestTimeout (408, the upload was too slow) as the ones to retry; TooManyRequests is CI's 429.
_RETRYABLE_CODES = frozenset(
    {"SlowDown", "TooManyRequests", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"}
)


class SuperresError(Exception):
    """Base class: every error this function raises or logs carries a stable `code`."""

    code = "SuperresError"
    retryable = False
    # Whether trying again within this invocation may help (else only a later delivery: SCF's retry).
    retry_now = True

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_log(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class ConfigError(SuperresError):
    """An environment variable is missing or invalid; raised at cold start."""

    code = "InvalidSetting"

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class EventError(SuperresError):
    """The invocation event (or one record of it) is not a COS event this function understands."""

    code = "InvalidEvent"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def as_log(self) -> dict[str, object]:
        return {**super().as_log(), "field": self.field}


class CredentialsError(SuperresError):
    """TENCENTCLOUD_SECRETID/SECRETKEY are absent: the function has no execution role."""

    code = "MissingCredentials"
    # Retrying cannot conjure keys, but raising sends the event through SCF's retries to the
    # dead-letter queue instead of dropping it while the role is being fixed.
    retryable = True


class CosCallError(SuperresError):
    """A COS or CI request failed. `retryable` follows the HTTP status and the COS error code unless the caller
    knows better (an SDK refusal has no status and is permanent; a transport failure has none and is transient).

    `ambiguous`: the request may have reached the service and done its work although no success came back (a
    timeout or a reset after the request was sent, a 5xx, an unreadable 2xx). A CI call failing this way may have
    written its result, so it must be checked for before being sent again.
    """

    code = "CosError"

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None = None,
        cos_request_id: str | None = None,
        retryable: bool | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, code=code)
        self.status = status
        self.cos_request_id = cos_request_id
        self.retryable = is_retryable(status, code) if retryable is None else retryable
        self.ambiguous = ambiguous

    def as_log(self) -> dict[str, object]:
        return {**super().as_log(), "status": self.status, "cos_request_id": self.cos_request_id}


class WorkInProgressError(SuperresError):
    """Another invocation holds the claim on this upload (a concurrent duplicate delivery): retried later by SCF,
    when the result is there (then skipped as already done) or the claim has expired."""

    code = "WorkInProgress"
    retryable = True


class DeadlineError(SuperresError):
    """Too little of the invocation's time is left to start another call: leave the record to SCF's retry rather
    than be killed mid-call at the time limit (which would lose the log lines of the records after it)."""

    code = "DeadlineExceeded"
    retryable = True
    retry_now = False


class CiMayStillLand(SuperresError):
    """An earlier CI call for this source version failed without an answer and may still write its result: no new
    call until CI_LANDING_BOUND_S has passed since; SCF's retry looks again."""

    code = "CiMayStillLand"
    retryable = True
    retry_now = False


class CiOutcomeUnknown(SuperresError):
    """A CI call failed in a way that leaves it unknown whether CI did the work (a timeout, a reset after sending, a
    5xx, an unreadable 2xx): its result may still land. No second call is made for the source version until the
    first can no longer land (an in-flight marker in the staging folder says since when); SCF's retry publishes
    what landed."""

    code = "CiOutcomeUnknown"
    retryable = True
    retry_now = False

    def __init__(self, cause: CosCallError) -> None:
        super().__init__(f"{cause.code}: {cause.message} (the result may still land; SCF's retry will look for it "
                         "before calling CI again)")
        self.cause = cause

    def as_log(self) -> dict[str, object]:
        return {**super().as_log(), "status": self.cause.status, "cos_request_id": self.cause.cos_request_id}


class RecordsFailedError(SuperresError):
    """Raised at the end of an invocation whose records still failed transiently, so SCF retries it."""

    code = "RecordsFailed"
    retryable = True


def is_retryable(status: int | None, code: str) -> bool:
    """5xx, 429 and the documented throttling codes are worth retrying; every other 4xx is permanent. Without a
    status (no answer came back) the caller decides; by default such a failure is treated as transient."""
    if code in _RETRYABLE_CODES:
        return True
    if status is None:
        return True
    return status >= 500 or status == 429
