"""`superres local`: run the COS + CI stand-in with serverless.yml's function behind its COS trigger."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path

import click

from ..deploy.deployment import SelfTriggerError
from ..errors import is_address_in_use, port_in_use
from ..scf.api import serve_scf_api
from ..scf.event_queue import MAX_EVENT_AGE_S, QueueBusyError
from ..scf.trigger import StopSummary
from ..sr import ENGINE_NAMES
from ..stack import LocalStack, StackOptions, standin_settings
from ..standin.faults import FaultPlan, load_inject_file, parse_inject


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=9000, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".superres"),
              show_default=True, help="Folder for buckets, objects and the function's log.")
@click.option("--secret-id", envvar="TENCENTCLOUD_SECRETID", help="Accepted SecretId [env TENCENTCLOUD_SECRETID; "
              "default: the documented demo key].")
@click.option("--secret-key", envvar="TENCENTCLOUD_SECRETKEY", help="Its SecretKey [env TENCENTCLOUD_SECRETKEY].")
@click.option("--engine", type=click.Choice(ENGINE_NAMES), default="span", show_default=True,
              help="Super-resolution engine: the real SPAN model, or plain bicubic for load tests only.")
@click.option("--no-trigger", is_flag=True, help="Serve COS + CI only; do not run the function on uploads.")
@click.option("--retry-interval", type=click.FloatRange(0, 3600), default=1.0, show_default=True,
              help="Seconds between SCF's retries of a failed invocation (2 retries; 60 s in the cloud).")
@click.option("--drain", "drain_s", type=click.FloatRange(0, 86400), default=0.0, show_default=True,
              help="On Ctrl-C, keep delivering queued trigger events for up to this many seconds before stopping "
              "(a second Ctrl-C stops at once). 0: stop at once; queued events are kept in DATA/trigger.db and "
              "delivered on the next start.")
@click.option("--max-event-age", "max_event_age_s", type=click.FloatRange(min=0, min_open=True),
              default=MAX_EVENT_AGE_S, show_default=True,
              help="SCF's Maximum Event Age: a queued trigger event older than this is dropped (and logged).")
@click.option("--scf-api-port", type=click.IntRange(0, 65535), default=None,
              help="Also serve the SCF API on this port: Invoke for `replay --deployed` / `backfill --deployed`, "
                   "the deploy actions for `superres deploy --endpoint`, the reads of `check --cloud`.")
@click.option("--no-function", is_flag=True,
              help="Start with no function: serverless.yml's function is not run from the checkout; deploy one with "
                   "`superres deploy --endpoint HOST:PORT` (the SCF API is served on --scf-api-port, default 9001).")
@click.option("--serverless", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=Path("serverless.yml"), show_default=True, help="Deployment file whose COS trigger to run.")
@click.option("--fault-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of requests answered with an injected fault (testing retries).")
@click.option("--fault-kinds", default="slowdown,internal,reset,delay", show_default=True,
              help="Comma list: slowdown (503), internal (500), reset (connection dropped), delay (slow answer).")
@click.option("--fault-targets", default="", help="Comma list of ci, head, get, put, post, delete [default: all].")
@click.option("--fault-delay", type=click.FloatRange(min=0, min_open=True), default=65.0, show_default=True,
              help="Seconds a 'delay' fault holds a request before serving it.")
@click.option("--fault-seed", type=int, default=None, help="Make the fault draws repeatable.")
@click.option("--request-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append one JSON line per request served to this file: time, method, bucket, key, "
              "subresources, ci, status, duration_ms, request_id, injected (never a header or credential).")
@click.option("--inject", "injections", metavar="SPEC", multiple=True,
              help="Inject a fault (repeatable): comma-separated key=value among op=ci|head|get|put|post|delete|any, "
              "prefix=KEY_PREFIX, latency=SECONDS or LOW-HIGH, error=STATUS:CODE, late=SECONDS (op=ci: answer "
              "never, land the work that long after the client gave up), share=0..1, count=N, seed=N. "
              "E.g. --inject op=ci,latency=0.5-2 "
              "--inject op=delete,prefix=superres/.claims/,error=503:SlowDown,count=1")
@click.option("--inject-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Inject SPECs from this file, one per line (# comments); re-read whenever it changes.")
@click.option("--clock-skew", "clock_skew_s", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="Run the storage clock (Last-Modified of stored objects, Date headers) this many seconds ahead "
              "of real time (negative: behind). Trigger events' eventTime and signature checks keep real time.")
def local(port: int, host: str, data_dir: Path, secret_id: str | None, secret_key: str | None, engine: str,
          no_trigger: bool, retry_interval: float, drain_s: float, max_event_age_s: float,
          scf_api_port: int | None, no_function: bool, serverless: Path,
          fault_share: float, fault_kinds: str, fault_targets: str, fault_delay: float,
          fault_seed: int | None, request_log: Path | None, injections: tuple[str, ...], inject_file: Path | None,
          clock_skew_s: float) -> None:
    """Run the local COS + Cloud Infinite stand-in until Ctrl-C.

    Any cos-python-sdk-v5 script works against it with CosConfig(Region=..., SecretId=..., SecretKey=...,
    IP=HOST, Port=PORT, Scheme="http"); tencentcloud-sdk-python's sts client gets temporary keys
    (GetFederationToken, AssumeRole) from the same port with HttpProfile(protocol="http", endpoint="HOST:PORT").
    Uploads that match serverless.yml's COS trigger run the function, whose JSON log lines are printed here and
    appended to DATA/function-log.jsonl. Each trigger event is stored in DATA/trigger.db before the upload is
    acknowledged, so a stop or crash never loses it: the next start on the same --data delivers it.

    For adversary testing, --request-log records every request served, --inject / --inject-file make chosen
    requests slow, failing or answered late, and --clock-skew moves the storage clock (README, "Scripting the
    stand-in").
    """
    if bool(secret_id) != bool(secret_key):
        raise click.UsageError("give both --secret-id and --secret-key (or neither, for the demo keys)")
    settings = standin_settings(data_dir, secret_id=secret_id, secret_key=secret_key, engine_name=engine)
    try:
        faults = FaultPlan.parse(fault_share, fault_kinds, fault_targets, delay_s=fault_delay,
                                 seed=fault_seed) if fault_share > 0 else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault-kinds/--fault-targets") from None
    _check_adversary_options(request_log, injections, inject_file, clock_skew_s)
    options = StackOptions(data_dir=data_dir, serverless=serverless, host=host, port=port, settings=settings,
                           trigger=not no_trigger, function=not no_function,
                           on_log=lambda line: click.echo(line), faults=faults,
                           retry_interval_s=retry_interval, max_event_age_s=max_event_age_s,
                           request_log=request_log, injections=injections, inject_file=inject_file,
                           clock_skew_s=clock_skew_s)
    if no_function and scf_api_port is None:
        scf_api_port = 9001
    stack = LocalStack(options)
    stopped, cancel = threading.Event(), threading.Event()

    def on_signal(*_: object) -> None:
        # The first Ctrl-C/SIGTERM stops (draining with --drain), a second one cuts the drain short. The function's
        # instances run in their own sessions, so the terminal's Ctrl-C reaches only us; stop() ends them.
        (cancel if stopped.is_set() else stopped).set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except (QueueBusyError, SelfTriggerError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        if is_address_in_use(exc):
            raise click.ClickException(port_in_use(host, port)) from None
        raise
    try:
        with contextlib.ExitStack() as extras:
            if scf_api_port is not None:
                try:
                    api = extras.enter_context(serve_scf_api(stack, host=host, port=scf_api_port))
                except OSError as exc:
                    if is_address_in_use(exc):
                        raise click.ClickException(port_in_use(host, scf_api_port, "--scf-api-port")) from None
                    raise
                click.echo(f"SCF API on {api.endpoint}: superres deploy --endpoint {api.endpoint} --cos-endpoint "
                           f"{stack.standin.endpoint_url}; replay --deployed {stack.spec.name} --scf-endpoint "
                           f"{api.endpoint}", err=True)
            cred = settings.credentials[0]
            key_note = "(the demo key, see README)" if not secret_key else "(yours)"
            routes = ", ".join(f"{t.bucket}/{t.prefix}*" for t in stack.spec.triggers)
            click.echo(
                f"cos-superres stand-in on {stack.standin.endpoint_url}  appid {stack.settings.appid}  "
                f"region {stack.settings.region}\n"
                f"  SecretId {cred.secret_id}  SecretKey {key_note}\n"
                f"  {_sts_line(stack.standin.sts_endpoint)}\n"
                f"  buckets: {', '.join(t.bucket for t in stack.spec.triggers) or '-'}  engine: {engine}\n"
                f"  trigger: {'off' if no_trigger else routes if not no_function else 'the deployed functions'}"
                + (f"\n  {_backlog(stack)}" if stack.trigger is not None else "")
                + (f"\n  faults: {faults}" if faults else "")
                + _adversary_banner(request_log, injections, inject_file, clock_skew_s)
                + "\nCtrl-C to stop.",
                err=True,
            )
            while not stopped.is_set():  # polled: the signal handler may set it at any moment (no lock here)
                time.sleep(0.2)
            if stack.trigger is not None and drain_s > 0 and len(stack.trigger.queue):
                click.echo(f"stopping: delivering {len(stack.trigger.queue)} queued trigger events for up to "
                           f"{drain_s:g} s (Ctrl-C again to stop now and keep them)", err=True)
    finally:
        summary = stack.stop(drain_s=drain_s, cancel=cancel)
    if summary is not None:
        click.echo(_stop_message(summary), err=True)
    else:
        click.echo("stopped", err=True)
    sys.exit(0)


def _check_adversary_options(request_log: Path | None, injections: tuple[str, ...], inject_file: Path | None,
                             clock_skew_s: float) -> None:
    """Refuse a bad spec, inject file or request log path in one line (exit 1) before anything starts."""
    try:
        for spec in injections:
            parse_inject(spec)
        if inject_file is not None:
            load_inject_file(inject_file)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if not math.isfinite(clock_skew_s):
        raise click.ClickException(f"--clock-skew must be a number of seconds, got {clock_skew_s}")
    if request_log is not None:
        try:
            request_log.parent.mkdir(parents=True, exist_ok=True)
            request_log.open("a").close()
        except OSError as exc:
            raise click.ClickException(f"--request-log {request_log}: {exc.strerror or exc}") from None


def _adversary_banner(request_log: Path | None, injections: tuple[str, ...], inject_file: Path | None,
                      clock_skew_s: float) -> str:
    lines = [f"request log: {request_log}"] if request_log else []
    lines += [f"inject: {spec}" for spec in injections]
    lines += [f"inject file: {inject_file} (re-read when it changes)"] if inject_file else []
    lines += [f"storage clock: real time {clock_skew_s:+g} s"] if clock_skew_s else []
    return "".join(f"\n  {line}" for line in lines)


def _sts_line(endpoint: str) -> str:
    """Where to point tencentcloud-sdk-python's sts client: the stand-in's own port, plain HTTP."""
    return (f"STS (GetFederationToken, AssumeRole) on {endpoint}: tencentcloud-sdk-python's sts_client with "
            f'HttpProfile(protocol="http", endpoint="{endpoint}"), signed with the keys above')


def _backlog(stack: LocalStack) -> str:
    queue = stack.trigger.queue  # type: ignore[union-attr]
    text = f"trigger queue: {queue.path}"
    if queue.pending_at_open:
        text += f" ({queue.pending_at_open} events from the last run"
        if queue.interrupted_at_open:
            text += f", {queue.interrupted_at_open} of them cut off mid-delivery and delivered again"
        text += ")"
    return text


def _stop_message(summary: StopSummary) -> str:
    if summary.kept == 0:
        return "stopped: the trigger queue is empty" + (" (drained: every event delivered)" if summary.drained else "")
    mid = f", {summary.interrupted} of them cut off mid-delivery (delivered again)" if summary.interrupted else ""
    return (f"stopped: {summary.kept} queued trigger events kept in {summary.path}{mid}; "
            f"the next `superres local --data {summary.path.parent if summary.path else '?'}` delivers them")
