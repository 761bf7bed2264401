"""The one error type the SR package raises, with a stable code for callers to branch and log on."""

from __future__ import annotations


class EngineError(Exception):
    """A super-resolution engine could not be loaded or could not process an image.

    ``code`` is stable (``unknown_engine``, ``unknown_backend``, ``invalid_option``, ``backend_unavailable``,
    ``weights_not_found``, ``unsupported_model``, ``unsupported_scale``, ``unsupported_image``,
    ``inference_failed``); the message is for humans.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)  # both in args, so the error survives pickling across processes
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
