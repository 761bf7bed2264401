"""SCF entry point: handler string `index.main_handler`. Settings load once, at cold start."""

from __future__ import annotations

from superres_fn import ConfigError, CosGateway, Invocation, emit_stdout, handle_event, load_settings

try:
    _SETTINGS = load_settings()
except ConfigError as _exc:
    emit_stdout({"level": "ERROR", "logger": "superres", "outcome": "config_error", "error": _exc.as_log(),
                 "variable": _exc.variable})
    raise

_INVOCATION = Invocation(settings=_SETTINGS, gateway=CosGateway(_SETTINGS))


def main_handler(event: dict, context: dict) -> dict:
    return handle_event(event, context, _INVOCATION)
