"""A warm function instance: the handler running in its own process with SCF's environment and context."""

from __future__ import annotations

import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .runtime import LOG_END, LOG_READY
from .serverless import FunctionSpec

_RUNTIME = Path(__file__).with_name("runtime.py")
# What SCF itself puts in a Python function's environment, besides the role's keys.
_BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "TMPDIR")


@dataclass(frozen=True)
class InvokeResult:
    request_id: str
    ok: bool
    return_value: object
    error: Mapping[str, object] | None
    logs: tuple[str, ...]
    duration_ms: float
    memory_bytes: int
    timed_out: bool = False

    @property
    def billed_ms(self) -> int:
        """SCF bills in 1 ms steps with a 1 ms minimum (kept simple locally)."""
        return max(1, math.ceil(self.duration_ms))

    @property
    def log_records(self) -> list[dict[str, object]]:
        """The log lines that are JSON objects (the function's one-line-per-record logs)."""
        records = []
        for line in self.logs:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
        return records


@dataclass
class ContainerOptions:
    env: Mapping[str, str] = field(default_factory=dict)  # role keys, COS_ENDPOINT_URL, overrides
    python: str = sys.executable
    layer_dirs: Sequence[Path] = ()
    isolated: bool = False  # python -I -S: only the code folder and layer folders are importable
    appid: str = "1250000000"
    uin: str = "100000000001"
    namespace: str = "default"


class FunctionContainer:
    """One SCF instance. It handles one invocation at a time and stays warm between them."""

    def __init__(self, spec: FunctionSpec, options: ContainerOptions | None = None) -> None:
        self.spec = spec
        self.options = options or ContainerOptions()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._results = None
        self._init_logs: list[str] = []  # the cold start's output, shown with the first invocation's log

    @property
    def cold(self) -> bool:
        return self._proc is None or self._proc.poll() is not None

    def invoke(self, event: object, *, request_id: str | None = None) -> InvokeResult:
        request_id = request_id or str(uuid.uuid4())
        with self._lock:
            if self.cold:
                started = time.monotonic()
                state = self._start()
                if state != "done":
                    init_logs, self._init_logs = self._init_logs, []
                    return self._failed(request_id, init_logs, started, timed_out=state == "timeout",
                                        phase="initialization")
            assert self._proc is not None and self._proc.stdin is not None
            request = {"event": event, "context": self._context(request_id)}
            started = time.monotonic()
            try:
                # Any event Python's json reads (default recursion limit: about 990 levels) is written, wrapped in
                # the request, even from a deep call stack: json's C encoder counts against the recursion limit.
                sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))
                payload = json.dumps(request) + "\n"
            except (TypeError, ValueError, RecursionError) as exc:
                # Nested past what json can write, say: this invocation fails, the instance lives on.
                return InvokeResult(request_id=request_id, ok=False, return_value=None, logs=(), duration_ms=0.0,
                                    memory_bytes=0, error={"errorCode": -1, "errorMessage": "event is not valid JSON",
                                                           "errorType": type(exc).__name__, "message": str(exc)[:500]})
            try:
                self._proc.stdin.write(payload)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # the instance died at start-up; its log says why
            logs, state = self._collect_logs(started + self.spec.timeout_s, LOG_END)
            logs, self._init_logs = self._init_logs + logs, []
            if state != "done":
                return self._failed(request_id, logs, started, timed_out=state == "timeout")
            response = json.loads(self._results.readline() or "{}")  # type: ignore[union-attr]
            return InvokeResult(
                request_id=request_id,
                ok=bool(response.get("ok")),
                return_value=response.get("return"),
                error=response.get("error"),
                logs=tuple(logs),
                duration_ms=float(response.get("duration_ms", 0.0)),
                memory_bytes=int(response.get("max_rss_bytes", 0)),
            )

    def close(self) -> None:
        with self._lock:
            self._stop()

    def kill(self) -> None:
        """End the instance now, even mid-invocation (that invocation then reports the process exited); for a
        parent that is stopping. Its process has its own session, so a terminal's Ctrl-C never reaches it."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def __enter__(self) -> FunctionContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> str:
        """Start a cold instance and wait for its handler import (SCF's initTimeout): "done", "timeout" or
        "exited"."""
        self._stop()
        read_fd, write_fd = os.pipe()
        args = [self.options.python, *(["-I", "-S"] if self.options.isolated else []), str(_RUNTIME),
                str(self.spec.src), *map(str, self.options.layer_dirs)]
        env = {**self._environment(), "SUPERRES_RESULT_FD": str(write_fd)}
        self._proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            encoding="utf-8", errors="replace", env=env, pass_fds=(write_fd,), cwd=str(self.spec.src),
            start_new_session=True,  # Ctrl-C in the terminal goes to the parent, which stops its instances itself
        )
        os.close(write_fd)
        self._results = os.fdopen(read_fd, "r", encoding="utf-8")
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True).start()
        self._init_logs, state = self._collect_logs(time.monotonic() + self.spec.init_timeout_s, LOG_READY)
        return state

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def _collect_logs(self, deadline: float, marker: str) -> tuple[list[str], str]:
        """The invocation's log lines, and how it ended: "done", "timeout" or "exited"."""
        logs: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._lines.get_nowait()
            except queue.Empty:
                return logs, "timeout"
            if line is None:
                return logs, "exited"
            if line == marker:
                return logs, "done"
            logs.append(line)

    def _failed(self, request_id: str, logs: list[str], started: float, *, timed_out: bool,
                phase: str = "invocation") -> InvokeResult:
        # SCF ends an instance that timed out or crashed; the next invocation starts cold.
        self._stop()
        limit = self.spec.init_timeout_s if phase == "initialization" else self.spec.timeout_s
        message = (f"{phase.capitalize()} timed out after {limit} seconds" if timed_out
                   else f"the function's process exited during the {phase}")
        return InvokeResult(
            request_id=request_id, ok=False, return_value=None,
            error={"errorCode": -1, "errorMessage": message, "errorType": "TimeoutError" if timed_out else "Crash"},
            logs=tuple(logs), duration_ms=(time.monotonic() - started) * 1000, memory_bytes=0, timed_out=timed_out,
        )

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream:
                    stream.close()
            self._proc = None
        if self._results is not None:
            self._results.close()
            self._results = None

    def _environment(self) -> dict[str, str]:
        spec, opts = self.spec, self.options
        env = {k: os.environ[k] for k in _BASE_ENV_KEYS if k in os.environ}
        env.update(spec.environment)
        env.update(
            SCF_FUNCTIONNAME=spec.name, SCF_FUNCTIONVERSION="$LATEST", SCF_RUNTIME=spec.runtime,
            SCF_NAMESPACE=opts.namespace, TENCENTCLOUD_RUNENV="SCF", TENCENTCLOUD_REGION=spec.region,
            TENCENTCLOUD_APPID=opts.appid, TENCENTCLOUD_UIN=opts.uin, USER_CODE_ROOT=str(spec.src),
            PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="x", SUPERRES_HANDLER=spec.handler,
        )
        env.update(opts.env)
        return env

    def _context(self, request_id: str) -> dict[str, object]:
        spec, opts = self.spec, self.options
        return {
            "memory_limit_in_mb": spec.memory_mb,
            "time_limit_in_ms": spec.timeout_s * 1000,
            "request_id": request_id,
            "environment": json.dumps({"SCF_NAMESPACE": opts.namespace}),
            "environ": f"SCF_NAMESPACE={opts.namespace};SCF_NAMESPACE={opts.namespace}",
            "function_version": "$LATEST",
            "function_name": spec.name,
            "namespace": opts.namespace,
            "tencentcloud_region": spec.region,
            "tencentcloud_appid": opts.appid,
            "tencentcloud_uin": opts.uin,
        }
