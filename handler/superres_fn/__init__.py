"""cos-superres function: COS upload -> Cloud Infinite AISuperResolution -> destination prefix."""

from __future__ import annotations

from .config import Endpoint, Settings, load_settings, parse_endpoint
from .errors import (
    CiMayStillLand,
    CiOutcomeUnknown,
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
from .gateway import CosGateway, Gateway, Listed, ObjectState, cos_config
from .log import emit_stdout
from .pipeline import Invocation, Report, handle_event, process_event
from .plan import Decision, decide, pic_operations_for
from .results import ImageInfo, OriginalInfo, ProcessedObject, UploadResult, parse_upload_result
from .retry import Attempts, RetryPolicy, call_with_retry
from .targets import Target, is_done, plan_targets, version_of

__all__ = [
    "Attempts",
    "CiMayStillLand",
    "CiOutcomeUnknown",
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
    "Listed",
    "ObjectState",
    "OriginalInfo",
    "ProcessedObject",
    "RecordSlot",
    "RecordsFailedError",
    "Report",
    "RetryPolicy",
    "Settings",
    "SuperresError",
    "Target",
    "UploadResult",
    "WorkInProgressError",
    "call_with_retry",
    "cos_config",
    "decide",
    "emit_stdout",
    "handle_event",
    "is_done",
    "is_retryable",
    "iter_records",
    "load_settings",
    "parse_endpoint",
    "parse_record",
    "parse_upload_result",
    "pic_operations_for",
    "plan_targets",
    "process_event",
    "version_of",
]
