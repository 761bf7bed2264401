"""cos-superres function: COS upload -> Cloud Infinite AISuperResolution -> destination prefix."""

from __future__ import annotations

from .config import Endpoint, Settings, load_settings, parse_endpoint
from .errors import (
    ConfigError,
    CosCallError,
    CredentialsError,
    DeadlineError,
    EventError,
    RecordsFailedError,
    SuperresError,
    WorkInProgressError,
    is_retryable,
)
from .events import CosRecord, RecordSlot, iter_records, parse_record
from .gateway import CosGateway, Gateway, ObjectState, cos_config
from .log import emit_stdout
from .pipeline import Invocation, handle_event
from .plan import Decision, claim_key, decide, destination, is_fresh, pic_operations_for
from .results import ImageInfo, OriginalInfo, ProcessedObject, UploadResult, parse_upload_result
from .retry import Attempts, RetryPolicy, call_with_retry

__all__ = [
    "Attempts",
    "ConfigError",
    "CosCallError",
    "CosGateway",
    "CosRecord",
    "CredentialsError",
    "DeadlineError",
    "Decision",
    "Endpoint",
    "EventError",
    "Gateway",
    "ImageInfo",
    "Invocation",
    "ObjectState",
    "OriginalInfo",
    "ProcessedObject",
    "RecordSlot",
    "RecordsFailedError",
    "RetryPolicy",
    "Settings",
    "SuperresError",
    "UploadResult",
    "WorkInProgressError",
    "call_with_retry",
    "claim_key",
    "cos_config",
    "decide",
    "destination",
    "emit_stdout",
    "handle_event",
    "is_fresh",
    "is_retryable",
    "iter_records",
    "load_settings",
    "parse_endpoint",
    "parse_record",
    "parse_upload_result",
    "pic_operations_for",
]
