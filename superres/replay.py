"""Replay sample COS events: against the local stand-in (seeding the objects they name), or the deployed function.

Locally the event goes through a FunctionContainer exactly as the COS trigger would deliver it (the handler in
its own process, serverless.yml's environment, the stand-in's endpoint and keys). Remotely it goes through
SCF's `Invoke` API (superres.scf.client), synchronously with the log tail, or asynchronously like COS does.
"""

from __future__ import annotations

import json
import socket
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from qcloud_cos import CosS3Client
from qcloud_cos.cos_exception import CosServiceError
from superres_fn import (
    ConfigError,
    CosRecord,
    Endpoint,
    EventError,
    Settings,
    cos_config,
    load_settings,
    parse_endpoint,
    parse_record,
)
from tencentcloud.scf.v20180416.scf_client import ScfClient

from .errors import cos_service_error
from .photos import PHOTOS, photo_bytes
from .scf.client import InvokeOutcome, Target, invoke
from .scf.container import ContainerOptions, FunctionContainer, InvokeResult
from .scf.serverless import CosTrigger, load_function_spec
from .standin.settings import DEMO_SECRET_ID, DEMO_SECRET_KEY

# Seeds stay small: replay checks the wiring, not the model (AISuperResolution takes up to 1920x1080).
SEED_MAX_SIDE = 256
# Where a seed goes when the object's own key would fire a running stand-in's trigger (outside the trigger prefix).
SEED_PREFIX = "replay-seed/"
_IMAGE_SUFFIXES = frozenset({"jpg", "jpeg", "png", "webp", "bmp"})


class ReplayError(RuntimeError):
    """An event file that cannot be read, or a bucket that cannot be prepared."""


@dataclass(frozen=True)
class LocalTarget:
    """Where a local replay runs: COS clients for seeding (one per region) and a warm function instance."""

    container: FunctionContainer
    region: str  # the configured bucket's region: where --bucket aims the events
    endpoint: str
    client_for: Callable[[str], CosS3Client]
    settings: Settings  # the function's settings, as its cold start loads them
    # Triggers a seed upload would fire: a running `superres local` runs the function on its own uploads.
    live_triggers: tuple[CosTrigger, ...] = ()
    # A stand-in started for this replay creates the buckets sample events name (nothing else lives there).
    creates_event_buckets: bool = False

    @property
    def client(self) -> CosS3Client:
        return self.client_for(self.region)


def load_event(path: Path) -> dict:
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{path}: not a readable JSON event ({exc})") from exc
    if not isinstance(event, dict):
        raise ReplayError(f"{path}: the event must be a JSON object")
    return event


def rewrite_bucket(event: dict, bucket: str, *, region: str | None = None) -> dict:
    """The event aimed at `bucket` ("name-appid") instead, and at `region` when given: cosBucket, the
    /appid/name/ key prefix and the url."""
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
        aim_record(record, parsed, bucket=bucket, region=region)
    return out


def aim_record(raw: dict, record: CosRecord, *, bucket: str | None = None, region: str | None = None,
               key: str | None = None) -> None:
    """Point one raw COS record at another bucket, region or key, keeping every field consistent."""
    bucket, region, key = bucket or record.bucket, region or record.region, record.key if key is None else key
    name, _, appid = bucket.rpartition("-")
    cos = raw["cos"]
    cos["cosBucket"].update(name=name, appid=appid)
    if region != record.region:
        cos["cosBucket"].update(region=region, cosRegion=region, s3Region=region)
    cos["cosObject"]["key"] = f"/{appid}/{name}/{key}"
    if cos["cosObject"].get("url"):
        cos["cosObject"]["url"] = f"http://{bucket}.cos.{region}.myqcloud.com/{quote(key.encode(), safe='/-_.~')}"


def seed_objects(client: CosS3Client, event: dict, region: str) -> list[str]:
    """Upload what the event's upload records name, when missing (creating a missing bucket): a real photo
    encoded for the key's suffix. Returns the keys uploaded. (Tests seed a stand-in with it.)"""
    seeded: list[str] = []
    for raw in event.get("Records") or []:
        try:
            record = parse_record(raw, default_region=region)
        except EventError:
            continue
        if not record.is_object_created:
            continue
        _ensure_bucket(client, record.bucket, create=True, where="the stand-in")
        if not client.object_exists(Bucket=record.bucket, Key=record.key):
            _put_seed(client, record.bucket, record.key)
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
            options = StackOptions(data_dir=folder, serverless=serverless, settings=standin_settings(folder),
                                   engine=load_engine(engine), trigger=False)
            stack = LocalStack(options)
            cred = stack.settings.credentials[0]
            settings = load_settings({**stack.spec.environment, **stack.function_env(endpoint=False)})
            with stack, stack.container() as container:
                parsed = parse_endpoint(stack.standin.endpoint_url)
                yield LocalTarget(container, stack.settings.region, stack.standin.endpoint_url,
                                  _clients(parsed, cred.secret_id, cred.secret_key), settings,
                                  creates_event_buckets=True)
        return
    spec = load_function_spec(serverless)
    keys = (secret_id or DEMO_SECRET_ID, secret_key or DEMO_SECRET_KEY)
    try:
        parsed = parse_endpoint(endpoint, "--endpoint")
    except ConfigError as exc:
        raise ReplayError(str(exc)) from None
    assert parsed is not None
    _check_reachable(endpoint, parsed)
    region = spec.triggers[0].region if spec.triggers else spec.region or "ap-guangzhou"
    env = {"TENCENTCLOUD_SECRETID": keys[0], "TENCENTCLOUD_SECRETKEY": keys[1], "COS_ENDPOINT_URL": endpoint}
    settings = load_settings({**spec.environment, **env})
    appid = spec.triggers[0].bucket.rpartition("-")[2] if spec.triggers else "1250000000"
    with FunctionContainer(spec, ContainerOptions(env=env, appid=appid)) as container:
        yield LocalTarget(container, region, endpoint, _clients(parsed, *keys), settings,
                          live_triggers=spec.triggers)


def replay_local(target: LocalTarget, paths: Sequence[Path], *, bucket: str | None = None, seed: bool = True,
                 create_bucket: bool = False, echo: Callable[[str], None] = print) -> list[InvokeResult]:
    """Replay each event file through the function. Every file starts from the same state, so the outcome of
    one never depends on the files before it: what they need is seeded first, for all of them, and a result an
    earlier file of this run wrote for the same source is removed before the next file runs."""
    events = []
    for path in paths:
        event = load_event(path)
        if bucket:
            event = rewrite_bucket(event, bucket, region=target.region)
        events.append(event)
    notes: list[list[str]] = [[] for _ in events]
    if seed:
        ready: set[tuple[str, str]] = set()
        for index, event in enumerate(events):
            events[index], notes[index] = _seed_event(target, event, ready, create=create_bucket,
                                                      aimed=bucket is not None)
    written: dict[tuple[str, str], tuple[str, str]] = {}  # (bucket, key) -> the result this run wrote for it
    results = []
    for path, event, seeded in zip(paths, events, notes, strict=True):
        removed = _remove_earlier_results(target, event, written)
        echo(f"== {path}: {_count_records(event)} record(s)" + (f"; seeded {', '.join(seeded)}" if seeded else "")
             + (f"; removed this run's earlier result for {', '.join(removed)}" if removed else ""))
        result = target.container.invoke(event)
        written.update(_results_written(result.logs))
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


def _clients(endpoint: Endpoint, secret_id: str, secret_key: str) -> Callable[[str], CosS3Client]:
    """One SDK client per region (a bucket answers only in its own region), made on first use."""
    made: dict[str, CosS3Client] = {}

    def client_for(region: str) -> CosS3Client:
        if region not in made:
            made[region] = CosS3Client(cos_config(region, secret_id, secret_key, endpoint=endpoint), retry=0)
        return made[region]

    return client_for


def _check_reachable(url: str, endpoint: Endpoint) -> None:
    """Fail at once, naming the endpoint, when nothing listens there (the SDK would retry for seconds first)."""
    try:
        socket.create_connection((endpoint.host, endpoint.port), timeout=3).close()
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
        raise ReplayError(f"cannot reach the stand-in at {url} ({reason}): start it with `superres local --port "
                          f"{endpoint.port}`, or leave out --endpoint and replay starts its own") from None


def _seed_event(target: LocalTarget, event: dict, ready: set[tuple[str, str]], *, create: bool,
                aimed: bool) -> tuple[dict, list[str]]:
    """Upload what the event's upload records name and is missing; returns the event (re-aimed where a seed had
    to move, see below) and what was seeded."""
    records = event.get("Records")
    if not isinstance(records, list):
        return event, []
    out, seeded = json.loads(json.dumps(event)), []
    for raw in out["Records"]:
        try:
            record = parse_record(raw, default_region=target.region)
        except EventError:
            continue
        if not record.is_object_created or record.key.startswith(target.settings.dest_prefix):
            continue  # the function never reads these: a seed under DEST_PREFIX would only fake a result
        client = target.client_for(record.region)
        if (record.bucket, record.region) not in ready:
            # A sample event's bucket is created in a stand-in started for the replay; a bucket named on the
            # command line, or one on a running stand-in, must exist (a typo must not become a new bucket).
            may_create = create or (target.creates_event_buckets and not aimed)
            note = _ensure_bucket(client, record.bucket, create=may_create, where=target.endpoint)
            if note:
                seeded.append(note)
            ready.add((record.bucket, record.region))
        stored = _stored_etag(client, record.bucket, record.key)
        if stored is not None:
            _aim_version(raw, stored)
            continue
        key = record.key
        if any(t.matches(record.bucket, record.event_name, key) for t in target.live_triggers):
            # The running stand-in's trigger would run the function on this upload as well, and the object
            # would be processed twice. COS fires on every upload under the trigger, so the seed goes outside it
            # and the record is aimed there.
            key = SEED_PREFIX + record.key
            if any(t.matches(record.bucket, record.event_name, key) for t in target.live_triggers):
                raise ReplayError(f"{record.bucket}/{record.key} is missing and every key fires the running "
                                  "stand-in's trigger: upload it yourself (the trigger processes it) or use --no-seed")
            aim_record(raw, record, key=key)
            stored = _stored_etag(client, record.bucket, key)
            if stored is not None:
                _aim_version(raw, stored)
                seeded.append(f"{key} (already there) for {record.key}")
                continue
            seeded.append(f"{key} for {record.key} (outside the trigger, which a seed at {record.key} would fire)")
        else:
            seeded.append(key)
        _aim_version(raw, _put_seed(client, record.bucket, key))
    return out, seeded


def _stored_etag(client: CosS3Client, bucket: str, key: str) -> str | None:
    """The stored object's ETag, None when there is none."""
    try:
        return client.head_object(Bucket=bucket, Key=key).get("ETag") or ""
    except CosServiceError as exc:
        if exc.get_status_code() == 404:
            return None
        raise


def _aim_version(raw: dict, etag: str | None) -> None:
    """A sample's ETag names content that never existed here, and the function takes an event whose version is not
    the source's as outdated (an old event replayed after a newer upload): a local replay aims each upload record
    at the version stored in the stand-in."""
    meta = raw["cos"]["cosObject"].setdefault("meta", {})
    if isinstance(meta, dict) and etag:
        meta["ETag"] = etag


def _put_seed(client: CosS3Client, bucket: str, key: str) -> str | None:
    """Upload the seed; its ETag."""
    body, content_type = seed_body(key)
    return client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type).get("ETag")


def _results_written(logs: Sequence[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """(bucket, key) -> (dest bucket, dest key) for every record the function logged as processed."""
    written = {}
    for text in logs:
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("outcome") == "processed" and line.get("dest_key"):
            written[(str(line["bucket"]), str(line["key"]))] = (str(line["dest_bucket"]), str(line["dest_key"]))
    return written


def _remove_earlier_results(target: LocalTarget, event: dict,
                            written: dict[tuple[str, str], tuple[str, str]]) -> list[str]:
    """Delete the results an earlier file of this run wrote for this event's sources (the function logged them
    `processed`, so with SKIP_EXISTING they did not exist before this run): the event then sees what it would
    have seen first. Returns the source keys whose result was removed."""
    if not target.settings.skip_existing or not written:
        return []
    removed = []
    for raw in event.get("Records") or []:
        try:
            record = parse_record(raw, default_region=target.region)
        except EventError:
            continue
        dest = written.pop((record.bucket, record.key), None)
        if dest is not None:
            target.client_for(record.region).delete_object(Bucket=dest[0], Key=dest[1])
            removed.append(record.key)
    return removed


def _ensure_bucket(client: CosS3Client, bucket: str, *, create: bool, where: str) -> str | None:
    """Check that `bucket` exists (creating it when allowed); a refusal says COS's code and message.
    Returns a note when the bucket was created."""
    try:
        client.head_bucket(Bucket=bucket)
        return None
    except CosServiceError:
        pass
    try:
        # A HEAD answer has no body (the SDK reports "Unknown Unknown"): a listing carries COS's code and message.
        client.list_objects(Bucket=bucket, MaxKeys=1)
        return None
    except CosServiceError as exc:
        if exc.get_error_code() != "NoSuchBucket":
            raise ReplayError(f"bucket {bucket}: {cos_service_error(exc, bucket=bucket)}") from None
    if not create:
        raise ReplayError(f"bucket {bucket} does not exist at {where}: check the name (--bucket, or the bucket the "
                          "events name), or add --create-bucket to create it")
    try:
        client.create_bucket(Bucket=bucket)
    except CosServiceError as exc:
        # e.g. the bucket exists in another region: a record without cosRegion takes the function's region
        raise ReplayError(f"cannot create bucket {bucket}: {exc.get_error_code()}: {exc.get_error_msg()}; aim the "
                          "events at one bucket and region with --bucket, or replay them separately") from None
    return f"bucket {bucket} (created)"
