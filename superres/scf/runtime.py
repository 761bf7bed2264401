"""One warm SCF instance, run as a child process: `python [-I -S] runtime.py CODE_DIR [LAYER_DIR...]`.

Standard library only, so it can run with nothing but the code folder and a layer folder on sys.path
(SCF sets PYTHONPATH=/var/user:/opt). Invocations arrive as JSON lines on stdin; the handler's stdout and
stderr are the function's log; each result goes back as one JSON line on the file descriptor named by
SUPERRES_RESULT_FD, after a marker line on stdout that closes that invocation's log.

Logging is set up as Tencent's published Python bootstrap does it (tencentyun/scfcli, runtime/python3.6/
bootstrap.py, main()): the root logger at DEBUG with a StreamHandler on stdout, so every record any library logs
reaches the function's log, as it does in the cloud, and the tests see what SCF users see.
"""

import importlib
import json
import logging
import os
import resource
import sys
import time
import traceback

LOG_END = "\x1esuperres-invocation-end"
LOG_READY = "\x1esuperres-initialized"


def main() -> int:
    code_dir, *layer_dirs = sys.argv[1:]
    handler = os.environ.get("SUPERRES_HANDLER", "index.main_handler")
    results = os.fdopen(int(os.environ.pop("SUPERRES_RESULT_FD")), "w", encoding="utf-8")
    for path in reversed([code_dir, *layer_dirs]):
        sys.path.insert(0, path)
    os.chdir(code_dir)
    _bootstrap_logging()
    function, init_error = _load(handler)
    sys.stderr.flush()
    print(LOG_READY, flush=True)
    for line in sys.stdin:
        started = time.perf_counter()
        try:
            request = _decode(line)
            event, context = request["event"], request["context"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # An event SCF could not hand to the function (nested past what json can read, say): a failed
            # invocation, not a dead instance.
            response = {"ok": False, "error": _error("event could not be decoded", exc)}
        else:
            if init_error is not None:
                response = {"ok": False, "error": init_error}
            else:
                response = _invoke(function, event, context)
        sys.stdout.flush()
        sys.stderr.flush()
        print(LOG_END, flush=True)
        response["duration_ms"] = (time.perf_counter() - started) * 1000
        response["max_rss_bytes"] = _peak_rss_bytes()
        results.write(json.dumps(response, default=str) + "\n")
        results.flush()
    return 0


def _decode(line):
    """The request line. The container (superres/scf/container.py) writes events as deep as Python's json reads
    with its default limit, wrapped in one more level; json's C decoder counts against the recursion limit, so it is
    raised here as the container raises it."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))
    return json.loads(line)


def _bootstrap_logging():
    """What the SCF bootstrap does before loading the function: root logger DEBUG, a StreamHandler on stdout."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(logging.StreamHandler(sys.stdout))


def _peak_rss_bytes():
    """This process's own peak RSS. (ru_maxrss would do, but Linux carries it over from the parent across
    fork and exec, so a child of a big parent reports the parent's figure.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _load(handler):
    module_name, _, function_name = handler.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), function_name), None
    except BaseException as exc:  # noqa: BLE001 - SCF reports init failures as the invocation's error
        traceback.print_exc()
        return None, _error("function initialization failed", exc)


def _invoke(function, event, context):
    try:
        value = function(event, context)
    except BaseException as exc:  # noqa: BLE001
        traceback.print_exc()
        return {"ok": False, "error": _error("user code exception caught", exc)}
    try:
        json.dumps(value, ensure_ascii=False)  # as the bootstrap serialises the return value
    except (TypeError, ValueError, RecursionError) as exc:
        return {"ok": False, "error": _error("return value is not JSON serializable", exc)}
    return {"ok": True, "return": value}


def _error(summary, exc):
    return {"errorCode": -1, "errorMessage": summary, "errorType": type(exc).__name__, "message": str(exc)[:4000]}


if __name__ == "__main__":
    sys.exit(main())
