"""Client-side CPU per record: the real pipeline (parse event, plan, claim, HEAD, sign, call, parse the XML answer,
release the claim, log) vs the same requests made bare with `CosS3Client`, against the same stand-in in another
process so only this process's CPU (time.process_time) is counted.

Two pairs: the default (CLAIM_WORK=true: PUT claim + HEAD + image_process + DELETE claim) against those four bare
calls, and CLAIM_WORK=false (HEAD + image_process) against those two; the claim's own cost is the default over the
CLAIM_WORK=false figure."""

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
            "bare4": lambda r: _cpu_per_record(lambda: _bare_calls(client, objects, f"bare4-r{r + 9}/", True)),
            "bare2": lambda r: _cpu_per_record(lambda: _bare_calls(client, objects, f"bare2-r{r + 9}/", False)),
            "default": lambda r: _cpu_per_record(lambda: handler_arm(f"default-r{r + 9}/", True)),
            "no_claim": lambda r: _cpu_per_record(lambda: handler_arm(f"noclaim-r{r + 9}/", False)),
        }
        progress(f"client CPU: {rounds} interleaved rounds x {per_round} records of {', '.join(arms)}")
        cpu = interleaved({name: (lambda r, f=fn: f(r) / per_round) for name, fn in arms.items()}, rounds, warmup=1)
    # Ratios are taken within a round (the arms ran back to back there), then the median across rounds.
    def ratio(arm: str, bare: str) -> float:
        return median([a / b for a, b in zip(cpu[arm], cpu[bare], strict=True)])

    how = (f"median of per-round ratios over {rounds} interleaved rounds of {per_round} records "
           "(time.process_time of this process; the stand-in runs in its own)")
    return [
        Row("client CPU/record: handler (default, CLAIM_WORK=true) / bare PUT claim + HEAD + image_process + DELETE",
            ratio("default", "bare4"), "x", Goal("<=", 1.15),
            f"{how}; the same four signed requests made bare with CosS3Client"),
        Row("client CPU/record: handler (CLAIM_WORK=false) / bare HEAD + image_process",
            ratio("no_claim", "bare2"), "x", Goal("<=", 1.15), how),
        Row("client CPU/record: claim cost, CLAIM_WORK=true / CLAIM_WORK=false", ratio("default", "no_claim"), "x",
            note="the claim: two more signed requests (PUT with x-cos-forbid-overwrite, DELETE) per processed record"),
        Row("client CPU/record: bare HEAD + image_process", median(cpu["bare2"]) * 1000, "ms"),
        Row("client CPU/record: bare PUT + HEAD + image_process + DELETE", median(cpu["bare4"]) * 1000, "ms"),
        Row("client CPU/record: handler, CLAIM_WORK=true (default)", median(cpu["default"]) * 1000, "ms"),
        Row("client CPU/record: handler, CLAIM_WORK=false", median(cpu["no_claim"]) * 1000, "ms"),
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
    """A warm function: the gateway built once, as at cold start."""
    env = {**standin.function_env(), "DEST_PREFIX": "superres/"}
    gateway = CosGateway(load_settings(env), environ=env)

    def handle(dest_prefix: str, claim_work: bool) -> None:
        settings = load_settings(env, claim_work=claim_work, dest_prefix=dest_prefix)
        invocation = Invocation(settings=settings, gateway=gateway)
        # The log lines are really serialised and written, to /dev/null rather than over the table.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            for i, event in enumerate(events):
                summary = handle_event(event, {"request_id": f"bench-{i}", "time_limit_in_ms": 60_000}, invocation)
                if summary.get("processed") != 1:
                    raise RuntimeError(f"the handler did not process a benchmark record: {summary}")

    return handle


def _bare_calls(client, objects: list[tuple[str, int, str]], dest_prefix: str,  # type: ignore[no-untyped-def]
                claim: bool) -> None:
    operations = [json.dumps({"is_pic_info": 1, "rules": [{"fileid": f"/{dest_prefix}{key}", "rule": _RULE}]})
                  for key, _size, _etag in objects]
    for (key, _size, _etag), pic_operations in zip(objects, operations, strict=True):
        claim_key = f"{dest_prefix}.claims/{key}"
        if claim:
            client.put_object(Bucket=BUCKET, Key=claim_key, Body=b"{}", Metadata={"x-cos-forbid-overwrite": "true"})
        client.object_exists(Bucket=BUCKET, Key=dest_prefix + key)
        client.ci_image_process(Bucket=BUCKET, Key=key, PicOperations=pic_operations)
        if claim:
            client.delete_object(Bucket=BUCKET, Key=claim_key)
