"""Replay sample COS events: against the local stand-in (seeding the objects they name), or the deployed function.

Locally the event goes through a FunctionContainer exactly as the COS trigger would deliver it (the handler in
its own process, serverless.yml's environment, the stand-in's endpoint and keys). Remotely it goes through
SCF's `Invoke` API (superres.scf.client), synchronously with the log tail, or asynchronously like COS does.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosServiceError
from superres_fn import ConfigError, EventError, cos_config, parse_endpoint, parse_record
from tencentcloud.scf.v20180416.scf_client import ScfClient

from .photos import PHOTOS, photo_bytes
from .scf.client import InvokeOutcome, Target, invoke
from .scf.container import ContainerOptions, FunctionContainer, InvokeResult
from .scf.serverless import load_function_spec
from .standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

# Seeds stay small: replay checks the wiring, not the model (AISuperResolution takes up to 1920x1080).
SEED_MAX_SIDE = 256
_IMAGE_SUFFIXES = frozenset({"jpg", "jpeg", "png", "webp", "bmp"})


class ReplayError(RuntimeError):
    """An event file that cannot be read, or a bucket that cannot be prepared."""


@dataclass(frozen=True)
class LocalTarget:
    """Where a local replay runs: a COS client for seeding and a warm function instance."""

    client: CosS3Client
    container: FunctionContainer
    region: str


def load_event(path: Path) -> dict:
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{path}: not a readable JSON event ({exc})") from exc
    if not isinstance(event, dict):
        raise ReplayError(f"{path}: the event must be a JSON object")
    return event


def rewrite_bucket(event: dict, bucket: str) -> dict:
    """The event aimed at `bucket` ("name-appid") instead: cosBucket, the /appid/name/ key prefix and the url."""
    name, _, appid = bucket.rpartition("-")
    if not name or not appid.isdigit():
        raise ReplayError(f"--bucket must be '<name>-<appid>', e.g. photos-1250000000; got {bucket!r}")
    records = event.get("Records")
    if not isinstance(records, list):
        return event
    out = json.loads(json.dumps(event))
    for record in out["Records"]:
        try:
            parsed = parse_record(record, default_region="ap-guangzhou")
        except EventError:
            continue  # an invalid record stays as it is: replaying it shows how the function reports it
        cos = record["cos"]
        cos["cosBucket"].update(name=name, appid=appid)
        cos["cosObject"]["key"] = f"/{appid}/{name}/{parsed.key}"
        if cos["cosObject"].get("url"):
            cos["cosObject"]["url"] = (f"http://{bucket}.cos.{parsed.region}.myqcloud.com/"
                                       f"{quote(parsed.key.encode(), safe='/-_.~')}")
    return out


def seed_objects(client: CosS3Client, event: dict, region: str) -> list[str]:
    """Upload what the event's upload records name, when missing: a real photo encoded for the key's suffix
    (empty for a folder marker, a line of text for other suffixes). Returns the keys uploaded."""
    seeded: list[str] = []
    buckets: set[str] = set()
    for raw in event.get("Records") or []:
        try:
            record = parse_record(raw, default_region=region)
        except EventError:
            continue
        if not record.is_object_created:
            continue
        if record.bucket not in buckets:
            _ensure_bucket(client, record.bucket)
            buckets.add(record.bucket)
        if client.object_exists(Bucket=record.bucket, Key=record.key):
            continue
        body, content_type = seed_body(record.key)
        client.put_object(Bucket=record.bucket, Key=record.key, Body=body, ContentType=content_type)
        seeded.append(record.key)
    return seeded


def seed_body(key: str) -> tuple[bytes, str]:
    if key.endswith("/"):
        return b"", "application/x-directory"
    suffix = key.rpartition(".")[2].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if suffix not in _IMAGE_SUFFIXES:
        return f"cos-superres replay seed for {key}\n".encode(), "text/plain"
    stem = key.rsplit("/", 1)[-1].rpartition(".")[0].lower()
    # The photo the key names (astronaut.jpg -> astronaut.png), else one picked stably from the key.
    photo = next((p for p in PHOTOS if p.rpartition(".")[0] == stem), PHOTOS[zlib.crc32(key.encode()) % len(PHOTOS)])
    return photo_bytes(key, photo, max_side=SEED_MAX_SIDE)


@contextmanager
def local_target(*, endpoint: str | None, data_dir: Path | None, engine: str, serverless: Path,
                 secret_id: str | None = None, secret_key: str | None = None) -> Iterator[LocalTarget]:
    """A target on a running `superres local` (endpoint) or on a stand-in started for the replay (no trigger:
    seeding must not run the function behind our back)."""
    if endpoint is None:
        import tempfile

        from .sr import load_engine
        from .stack import LocalStack, StackOptions, standin_settings

        with tempfile.TemporaryDirectory(prefix="superres-replay-") as tmp:
            folder = data_dir or Path(tmp)
            settings = standin_settings(folder, engine_name=engine)
            options = StackOptions(data_dir=folder, serverless=serverless, settings=settings,
                                   engine=load_engine(engine), trigger=False)
            with LocalStack(options) as stack, stack.container() as container:
                yield LocalTarget(stack.client(), container, stack.settings.region)
        return
    spec = load_function_spec(serverless)
    keys = (secret_id or DEMO_SECRET_ID, secret_key or DEMO_SECRET_KEY)
    try:
        parsed = parse_endpoint(endpoint, "--endpoint")
    except ConfigError as exc:
        raise ReplayError(str(exc)) from None
    region = spec.region or "ap-guangzhou"
    client = CosS3Client(cos_config(region, keys[0], keys[1], endpoint=parsed))
    env = {"TENCENTCLOUD_SECRETID": keys[0], "TENCENTCLOUD_SECRETKEY": keys[1], "COS_ENDPOINT_URL": endpoint}
    with FunctionContainer(spec, ContainerOptions(env=env)) as container:
        yield LocalTarget(client, container, region)


def replay_local(target: LocalTarget, paths: Sequence[Path], *, bucket: str | None = None, seed: bool = True,
                 echo: Callable[[str], None] = print) -> list[InvokeResult]:
    results = []
    for path in paths:
        event = load_event(path)
        if bucket:
            event = rewrite_bucket(event, bucket)
        seeded = seed_objects(target.client, event, target.region) if seed else []
        echo(f"== {path}: {_count_records(event)} record(s)" + (f"; seeded {', '.join(seeded)}" if seeded else ""))
        result = target.container.invoke(event)
        for line in result.logs:
            echo(line)
        if result.ok:
            echo("return: " + json.dumps(result.return_value, ensure_ascii=False))
        else:
            echo("error: " + json.dumps(result.error, ensure_ascii=False))
        echo(f"request {result.request_id}: {'ok' if result.ok else 'FAILED'}, {result.duration_ms:.1f} ms "
             f"(billed {result.billed_ms} ms), memory {result.memory_bytes / 1048576:.1f} MB")
        results.append(result)
    return results


def replay_deployed(client: ScfClient, target: Target, paths: Sequence[Path], *, bucket: str | None = None,
                    asynchronous: bool = False, echo: Callable[[str], None] = print) -> list[InvokeOutcome]:
    """Invoke the deployed function once per event file; print what the API returns (never the keys)."""
    outcomes = []
    for path in paths:
        event = load_event(path)
        if bucket:
            event = rewrite_bucket(event, bucket)
        kind = "Event" if asynchronous else "RequestResponse"
        outcome = invoke(client, target, event, invocation_type=kind)
        echo(f"== {path}: {_count_records(event)} record(s) -> {target.function} (namespace {target.namespace}, "
             f"{target.qualifier or '$LATEST'}, {kind}); RequestId {outcome.request_id}")
        echo(f"FunctionRequestId: {outcome.function_request_id}")
        if asynchronous:
            echo("queued: the function runs asynchronously; its log is in the SCF console / CLS")
        else:
            echo(f"RetMsg: {outcome.ret_msg}")
            if outcome.err_msg:
                echo(f"ErrMsg: {outcome.err_msg}")
            echo("Log:")
            for line in outcome.log.splitlines():
                echo(line)
            echo(f"Duration: {outcome.duration_ms} ms  BillDuration: {outcome.bill_duration_ms} ms  "
                 f"MemUsage: {(outcome.mem_usage_bytes or 0) / 1048576:.1f} MB")
        outcomes.append(outcome)
    return outcomes


def _count_records(event: dict) -> int:
    records = event.get("Records")
    return len(records) if isinstance(records, list) else 0


def _ensure_bucket(client: CosS3Client, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except CosServiceError as exc:
        if exc.get_status_code() != 404:
            raise ReplayError(f"bucket {bucket}: {exc.get_error_code()} {exc.get_error_msg()}") from None
        client.create_bucket(Bucket=bucket)
