"""Client-side CPU per record: the real pipeline (parse event, plan, HEAD when SKIP_EXISTING, sign, call, parse the
XML answer, log) vs a bare `CosS3Client.ci_image_process` call, against the same stand-in in another process so
only this process's CPU (time.process_time) is counted."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable

from superres_fn import CosGateway, Invocation, handle_event, load_settings

from superres.scf.trigger import build_cos_event
from superres.standin.events import EVENT_PUT, ObjectCreated

from .measure import interleaved, median, progress
from .report import Goal, Row
from .standin_proc import APPID, BUCKET, REGION, StandinProcess

_RULE = "ci-process=AISuperResolution&magnify=2"


def run(quick: bool) -> list[Row]:
    rounds, per_round = (3, 15) if quick else (8, 25)
    with StandinProcess() as standin:
        objects = standin.upload("uploads/", per_round)
        events = [{"Records": [build_cos_event(_created(key, size, etag), appid=APPID, region=REGION)]}
                  for key, size, etag in objects]
        client = standin.client()
        handler_arm = _handler_arm(standin, events)
        arms: dict[str, Callable[[int], float]] = {
            "bare": lambda r: _cpu_per_record(lambda: _bare_calls(client, objects, f"bare-r{r + 9}/")),
            "default": lambda r: _cpu_per_record(lambda: handler_arm(f"default-r{r + 9}/", True)),
            "no_skip": lambda r: _cpu_per_record(lambda: handler_arm(f"noskip-r{r + 9}/", False)),
        }
        progress(f"client CPU: {rounds} interleaved rounds x {per_round} records of {', '.join(arms)}")
        cpu = interleaved({name: (lambda r, f=fn: f(r) / per_round) for name, fn in arms.items()}, rounds, warmup=1)
    bare = median(cpu["bare"])
    # Ratios are taken within a round (the arms ran back to back there), then the median across rounds.
    ratio = {arm: median([a / b for a, b in zip(cpu[arm], cpu["bare"], strict=True)])
             for arm in ("default", "no_skip")}
    how = (f"median of per-round ratios over {rounds} interleaved rounds of {per_round} records "
           "(time.process_time of this process; the stand-in runs in its own)")
    return [
        Row("client CPU/record: handler (SKIP_EXISTING=true, default) / bare ci_image_process",
            ratio["default"], "x", Goal("<=", 1.3),
            f"{how}. The default also HEADs the destination before the CI call: a second signed HTTP request per "
            "record, so about twice the SDK work of the bare call; it buys skipping work already done"),
        Row("client CPU/record: handler (SKIP_EXISTING=false) / bare ci_image_process",
            ratio["no_skip"], "x", Goal("<=", 1.3), how),
        Row("client CPU/record: bare ci_image_process", bare * 1000, "ms"),
        Row("client CPU/record: handler, SKIP_EXISTING=true", median(cpu["default"]) * 1000, "ms"),
        Row("client CPU/record: handler, SKIP_EXISTING=false", median(cpu["no_skip"]) * 1000, "ms"),
    ]


def _cpu_per_record(block: Callable[[], object]) -> float:
    started = time.process_time()
    block()
    return time.process_time() - started


def _created(key: str, size: int, etag: str) -> ObjectCreated:
    return ObjectCreated(bucket=BUCKET, key=key, size=size, etag=etag, content_type="image/jpeg", meta={},
                         event_name=EVENT_PUT, request_id="bench", source_ip="127.0.0.1",
                         authorization="q-sign-algorithm=sha1&q-signature=redacted")


def _handler_arm(standin: StandinProcess, events: list[dict]) -> Callable[[str, bool], None]:
    """A warm function: settings and one gateway per SKIP_EXISTING value built once, as at cold start."""
    env = {**standin.function_env(), "DEST_PREFIX": "superres/"}
    gateways = {skip: CosGateway(load_settings(env, skip_existing=skip), environ=env) for skip in (True, False)}
    def handle(dest_prefix: str, skip_existing: bool) -> None:
        settings = load_settings(env, skip_existing=skip_existing, dest_prefix=dest_prefix)
        invocation = Invocation(settings=settings, gateway=gateways[skip_existing])
        # The log lines are really serialised and written, to /dev/null rather than over the table.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            for i, event in enumerate(events):
                summary = handle_event(event, {"request_id": f"bench-{i}", "time_limit_in_ms": 60_000}, invocation)
                if summary.get("processed") != 1:
                    raise RuntimeError(f"the handler did not process a benchmark record: {summary}")

    return handle


def _bare_calls(client, objects: list[tuple[str, int, str]], dest_prefix: str) -> None:  # type: ignore[no-untyped-def]
    operations = [json.dumps({"is_pic_info": 1, "rules": [{"fileid": f"/{dest_prefix}{key}", "rule": _RULE}]})
                  for key, _size, _etag in objects]
    for (key, _size, _etag), pic_operations in zip(objects, operations, strict=True):
        client.ci_image_process(Bucket=BUCKET, Key=key, PicOperations=pic_operations)
