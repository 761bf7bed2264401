"""Client-side CPU per record: the real pipeline (parse event, plan, claim, look, sign, call, parse the XML answer,
publish, release, log) vs the same requests made bare with `CosS3Client`, against the same stand-in in another
process so only this process's CPU (time.process_time) is counted.

The bare set is what the protocol needs (README "Freshness, retries and billing"): with claims (the default) PUT
claim, HEAD result, HEAD source, LIST staging, image_process (into staging), COPY (publish with the stamp), DELETE
staged, DELETE claim: eight requests; with CLAIM_WORK=false the six without the claim's PUT and DELETE. The claim's
own cost is the default over the CLAIM_WORK=false figure."""

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
            "bare8": lambda r: _cpu_per_record(lambda: _bare_calls(client, objects, f"bare8-r{r + 9}/", True)),
            "bare6": lambda r: _cpu_per_record(lambda: _bare_calls(client, objects, f"bare6-r{r + 9}/", False)),
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
        Row("client CPU/record: handler (default, CLAIM_WORK=true) / bare 8 requests of the protocol",
            ratio("default", "bare8"), "x", Goal("<=", 1.15),
            f"{how}; PUT claim, HEAD result, HEAD source, LIST staging, image_process, COPY, DELETE staged, DELETE "
            "claim made bare with CosS3Client"),
        Row("client CPU/record: handler (CLAIM_WORK=false) / bare 6 requests (no claim)",
            ratio("no_claim", "bare6"), "x", Goal("<=", 1.15), how),
        Row("client CPU/record: claim cost, CLAIM_WORK=true / CLAIM_WORK=false", ratio("default", "no_claim"), "x",
            note="the claim: two more signed requests (PUT with x-cos-forbid-overwrite, DELETE) per processed record"),
        Row("COS requests per processed record (default, besides the CI call)", 7.0, "requests",
            note="PUT claim, HEAD result, HEAD source, LIST staging, COPY, DELETE staged, DELETE claim"),
        Row("client CPU/record: bare 6 requests", median(cpu["bare6"]) * 1000, "ms"),
        Row("client CPU/record: bare 8 requests", median(cpu["bare8"]) * 1000, "ms"),
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
    staged = [f"{dest_prefix}.staging/{i:04d}/result.png" for i in range(len(objects))]
    operations = [json.dumps({"is_pic_info": 1, "rules": [{"fileid": f"/{key}", "rule": _RULE}]}) for key in staged]
    for (key, _size, etag), staged_key, pic_operations in zip(objects, staged, operations, strict=True):
        claim_key = f"{dest_prefix}.claims/{key}"
        if claim:
            client.put_object(Bucket=BUCKET, Key=claim_key, Body=b"{}", Metadata={"x-cos-forbid-overwrite": "true",
                                                                                "x-cos-meta-superres-ttl": "120"})
        client.object_exists(Bucket=BUCKET, Key=dest_prefix + key)
        client.head_object(Bucket=BUCKET, Key=key)
        client.list_objects(Bucket=BUCKET, Prefix=staged_key.rpartition("/")[0] + "/", MaxKeys=1000)
        client.ci_image_process(Bucket=BUCKET, Key=key, PicOperations=pic_operations)
        client.copy_object(Bucket=BUCKET, Key=dest_prefix + key,
                           CopySource={"Bucket": BUCKET, "Key": staged_key, "Region": REGION},
                           CopyStatus="Replaced", ContentType="image/png",
                           Metadata={"x-cos-meta-superres-source": etag.strip('"'), "x-cos-meta-superres-rule": "x2"})
        client.delete_object(Bucket=BUCKET, Key=staged_key)
        if claim:
            client.delete_object(Bucket=BUCKET, Key=claim_key)
