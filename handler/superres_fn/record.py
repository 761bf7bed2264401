"""One record's run: decide, claim, look, call CI, publish, release; the fields of the record's log line.

The order of a run that calls CI (CLAIM_WORK and SKIP_EXISTING on, the defaults):
1. claim the upload (claims.py): concurrent deliveries wait, then find the work done;
2. HEAD each target: done if its result carries the event's source version and the target's rule;
3. HEAD the source: an event whose version is no longer the source's is `outdated` (the newer upload's own event
   does the work); with no ETag in the event, this is where the version comes from;
4. LIST the upload's staging folder: what an earlier try left there (CI answered, the publish did not happen) is
   published without calling CI again;
5. one CI call super-resolves every target still missing (one rule each, into staging), one more per target
   converted to a format;
6. publish: a server-side copy from staging to the target's key that stamps the source version and the rule;
7. delete the staged objects, release the claim.
After an ambiguous CI failure an in-flight marker goes into the staging folder and the record ends retryable: SCF's
retry publishes what landed in staging, and calls CI only once the first call can no longer land (the marker is
older than CI_LANDING_BOUND_S by COS's clock).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from . import claims
from .errors import (
    CiMayStillLand,
    CiOutcomeUnknown,
    CosCallError,
    DeadlineError,
    SuperresError,
    WorkInProgressError,
)
from .events import CosRecord
from .gateway import ObjectState
from .plan import ALREADY_DONE, decide, pic_operations_for
from .results import UploadResult, parse_upload_result
from .retry import Attempts, call_with_retry
from .targets import (
    CONTENT_TYPES,
    Target,
    claim_root,
    in_flight_key,
    is_done,
    is_unstamped,
    plan_targets,
    source_folder,
    staging_folder,
    version_of,
)

if TYPE_CHECKING:
    from .pipeline import Invocation

T = TypeVar("T")

# A duplicate waiting for a claim gives up (WorkInProgress) when less than this is left of its invocation.
_CLAIM_WAIT_RESERVE_S = 5.0
# No release is attempted with less time than this left: the claim expires instead, and the line is written.
_RELEASE_MIN_S = 0.2


class RecordRun:
    """The run of one parsed record within an invocation whose budget ends at `deadline` (invocation's clock)."""

    def __init__(self, record: CosRecord, invocation: Invocation, deadline: float, claim_ttl_s: float,
                 line: dict[str, object]) -> None:
        self.record = record
        self.invocation = invocation
        self.settings = invocation.settings
        self.deadline = deadline
        self.claim_ttl_s = claim_ttl_s
        self.line = line
        self.attempts = Attempts()  # CI calls made for this record (each one may be billed)
        self.folder = source_folder(record.bucket, record.key)
        self._keep_claim = False
        self._in_flight = ("", "")  # (bucket, key) of the marker of a CI call that may still land

    def run(self, *, duplicate: bool) -> dict[str, object]:
        decision = decide(self.record, self.settings, duplicate=duplicate)
        fields: dict[str, object] = {"dest_bucket": decision.dest_bucket, "dest_key": decision.dest_key}
        if not decision.should_process:
            return {**fields, "outcome": "skipped", "reason": decision.reason, "detail": decision.detail}
        targets = plan_targets(self.record.bucket, self.record.key, self.settings)
        if not self.settings.claim_work:
            return {**fields, **self._work(targets)}
        held = self._acquire(targets)
        if isinstance(held, dict):
            return {**fields, **held}
        try:
            return {**fields, **self._work(targets)}
        finally:
            self._release(targets[0].bucket, held)

    # -- claims ---------------------------------------------------------------------------------------------------

    def _claim_ops(self, bucket: str) -> claims.ClaimOps:
        gateway, region = self.invocation.gateway, self.record.region
        return claims.ClaimOps(
            create=lambda key, body, meta: self._retrying(
                lambda: gateway.create_if_absent(bucket, key, region, body, meta, self._left())),
            head=lambda key: self._retrying(lambda: gateway.head(bucket, key, region, self._left())),
            delete_once=lambda key: gateway.delete(bucket, key, region, self._left()),
        )

    def _acquire(self, targets: list[Target]) -> claims.Held | dict[str, object]:
        """Hold the upload's claim, waiting while another invocation holds it; an already_done outcome if that one
        stored every result for this very version meanwhile."""
        version = version_of(self.record.etag)
        body = json.dumps({"source": f"{self.record.bucket}/{self.record.key}", "version": version,
                           "request_id": self.line.get("request_id"), "nonce": os.urandom(8).hex()}).encode()
        ops = self._claim_ops(targets[0].bucket)
        root = claim_root(self.settings, self.folder)
        meta = claims.claim_meta(self.claim_ttl_s, version)
        pause = 0.5
        while True:
            got = claims.try_acquire(ops, root, body, meta, self.claim_ttl_s, self.invocation.wall)
            if isinstance(got, claims.Held):
                if len(got.chain) > 1:
                    self.line["warning"] = (f"took over the expired claim {got.chain[-2]!r} of an invocation that did "
                                            "not finish")
                return got
            if version and self.settings.skip_existing:
                states = self._looks(targets)
                if all(is_done(_meta(states[t]), t, version) for t in targets):
                    return self._already_done(targets, states, "another invocation, holding the claim, stored the "
                                              "results for this version")
            if self.invocation.clock() + pause + _CLAIM_WAIT_RESERVE_S > self.deadline:
                raise WorkInProgressError(f"another invocation is processing this upload (claim {got.key!r}, "
                                          f"version {got.version or 'unknown'}); SCF's retry will look again")
            self.invocation.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _release(self, bucket: str, held: claims.Held) -> None:
        if self._keep_claim:
            self.line["claim"] = "kept: a CI call may still land; the claim expires when it no longer can"
            return
        if self.deadline - self.invocation.clock() < _RELEASE_MIN_S:
            self.line["warning"] = f"claim {held.key!r} not released (no time left); it expires"
            return
        failed = claims.release(self._claim_ops(bucket), held)
        if failed:
            key, code = failed[0]
            self.line["warning"] = f"claim {key!r} not released ({code}); it expires"

    # -- the work -------------------------------------------------------------------------------------------------

    def _work(self, targets: list[Target]) -> dict[str, object]:
        record, settings = self.record, self.settings
        version = version_of(record.etag)
        states = self._looks(targets) if settings.skip_existing else {}
        if version and states and all(is_done(_meta(states[t]), t, version) for t in targets):
            return self._already_done(targets, states, ALREADY_DONE)
        source = self._retrying(lambda: self.invocation.gateway.head(record.bucket, record.key, record.region,
                                                                       self._left()))
        if source is None:
            return {"outcome": "skipped", "reason": "source_gone",
                    "detail": "the upload was deleted before it was processed"}
        current = version_of(source.etag)
        if version and current and current != version:
            return {"outcome": "skipped", "reason": "outdated",
                    "detail": f"the source is now version {current}, not this event's {version}: the newer upload's "
                              "own event processes it"}
        version = current or version or f"unversioned-{source.size}-{source.last_modified}"
        done = {t: states[t] for t in targets if settings.skip_existing and _fresh(states.get(t), t, version, source)}
        pending = [t for t in targets if t not in done]
        if not pending:
            return self._already_done(targets, states, ALREADY_DONE)
        return self._produce(targets, pending, done, version)

    def _produce(self, targets: list[Target], pending: list[Target], done: dict[Target, ObjectState | None],
                 version: str) -> dict[str, object]:
        """Super-resolve, convert and publish the pending targets, reusing what an earlier try staged."""
        record, settings = self.record, self.settings
        staged = self._staged(pending)
        png = {t: t.staged(settings, self.folder, version, "png") for t in pending}
        final = {t: t.staged(settings, self.folder, version) for t in pending}
        from_staging = {t for t in pending if (t.bucket, final[t]) in staged}
        to_resolve = [t for t in pending if t not in from_staging and (t.bucket, png[t]) not in staged]
        self._in_flight = (pending[0].bucket, in_flight_key(settings, self.folder, version))
        if any(t not in from_staging for t in pending):
            staged = self._await_landing(pending, staged)
            from_staging = {t for t in pending if (t.bucket, final[t]) in staged}
            to_resolve = [t for t in pending if t not in from_staging and (t.bucket, png[t]) not in staged]
        results: dict[Target, dict[str, object]] = {}
        original = None
        stamp_version = version
        if to_resolve:
            upload = self._call_ci(record.bucket, record.key,
                                   [(t.bucket, png[t], t.sr_rule) for t in to_resolve], is_pic_info=1)
            original = upload.original.image if upload.original else None
            stamp_version = _read_version(upload, version)
            for t in to_resolve:
                results[t] = _found(upload, png[t], single=len(to_resolve) == 1)
        for t in pending:
            if t.converts and t not in from_staging:
                upload = self._call_ci(t.bucket, png[t], [(t.bucket, final[t], t.convert_rule)], is_pic_info=0)
                results[t] = {**results.get(t, {}), **_found(upload, final[t], single=True)}
        for t in pending:
            etag = self._retrying(lambda t=t: self.invocation.gateway.publish(
                t.bucket, final[t], t.key, record.region, t.stamp(stamp_version), CONTENT_TYPES[t.format],
                self._left()))
            results[t] = {**results.get(t, {}), "key": t.key, "etag": etag or results.get(t, {}).get("etag"),
                          "location": f"{t.bucket}.cos.{record.region}.myqcloud.com/{t.key}"}
        marker = {self._in_flight} & staged.keys()  # a call that could have landed no longer can
        self._clean_staging(set(staged), {(t.bucket, k) for t in pending for k in (png[t], final[t])} | marker)
        first = targets[0]
        outcome: dict[str, object] = {
            "outcome": "processed", "reason": "processed", "source_version": stamp_version,
            "result": results.get(first) or _state_log(first.key, done.get(first)),
            "original": {"width": original.width, "height": original.height, "format": original.format}
            if original else None,
        }
        if from_staging and from_staging == set(pending):
            outcome["confirmed_by"] = "staging"
        if settings.output_specs:
            outcome["outputs"] = [
                _output_line(t, "already_done", _state_log(t.key, done[t])) if t in done
                else _output_line(t, "processed", results.get(t), confirmed=t in from_staging)
                for t in targets
            ]
        return outcome

    def _call_ci(self, bucket: str, key: str, rules: list[tuple[str, str, str]], *, is_pic_info: int
                 ) -> UploadResult:
        """One image_process call, retried only after failures that prove CI did nothing (a SlowDown, a refused
        connection); an ambiguous failure ends the record (CiOutcomeUnknown) and keeps the claim."""
        operations = pic_operations_for(rules, record_bucket=bucket, is_pic_info=is_pic_info)

        # A call gets COS_TIMEOUT_S at most, so it never needs more than that.
        needs = min(self.invocation.policy.min_ci_attempt_s, self.settings.cos_timeout_s)

        def attempt() -> UploadResult:
            left = self.deadline - self.invocation.clock()
            if left < needs:
                raise DeadlineError(f"{max(left, 0.0):.1f} s left, under the {needs:g} s a CI call needs; leaving "
                                    "this record to SCF's retry")
            self.attempts.count += 1
            try:
                data = self.invocation.gateway.image_process(bucket, key, self.record.region, operations, left)
                return parse_upload_result(data)
            except CosCallError as exc:
                if exc.ambiguous:
                    self._mark_in_flight()
                    raise CiOutcomeUnknown(exc) from None
                raise

        return self._retrying(attempt)

    # -- looks ----------------------------------------------------------------------------------------------------

    def _looks(self, targets: list[Target]) -> dict[Target, ObjectState | None]:
        gateway, region = self.invocation.gateway, self.record.region
        return {t: self._retrying(lambda t=t: gateway.head(t.bucket, t.key, region, self._left())) for t in targets}

    def _staged(self, pending: list[Target]) -> dict[tuple[str, str], int | None]:
        """(bucket, key) -> age in seconds (COS's clock) of every object in the upload's staging folder, in each
        bucket the pending targets use."""
        gateway, region = self.invocation.gateway, self.record.region
        prefix = staging_folder(self.settings, self.folder)
        found: dict[tuple[str, str], int | None] = {}
        for bucket in dict.fromkeys(t.bucket for t in pending):
            listed = self._retrying(lambda b=bucket: gateway.list_prefix(b, prefix, region, self._left()))
            found.update(((bucket, key), None if listed.date is None or modified is None else listed.date - modified)
                         for key, modified in listed.keys.items())
        return found

    def _await_landing(self, pending: list[Target], staged: dict[tuple[str, str], int | None]
                       ) -> dict[tuple[str, str], int | None]:
        """While an earlier CI call for this version may still land (its in-flight marker is younger than
        CI_LANDING_BOUND_S by COS's clock), no new call: wait for the bound to pass if this invocation has the time,
        else leave the record to SCF's retry. What the staging folder holds then."""
        bound = self.settings.ci_landing_bound_s
        while self._in_flight in staged:
            age = staged[self._in_flight]
            wait = bound + 1 - (age if age is not None else 0)
            if wait <= 0:
                return staged  # it can no longer land: what landed is in the listing
            needs = min(self.invocation.policy.min_ci_attempt_s, self.settings.cos_timeout_s)
            if self.invocation.clock() + wait + needs > self.deadline:
                raise CiMayStillLand(f"an earlier CI call for this version failed without an answer {age} s ago and "
                                     f"may land for {wait:.0f} s more (CI_LANDING_BOUND_S); SCF's retry looks again")
            self.invocation.sleep(wait)
            staged = self._staged(pending)
        return staged

    def _mark_in_flight(self) -> None:
        """Record that a CI call may still land (an object in the staging folder, which every later try lists); if
        that fails, keep the claim instead: it expires only when nothing sent can land any more."""
        bucket, key = self._in_flight
        try:
            self.invocation.gateway.create_if_absent(bucket, key, self.record.region, b"{}", {}, self._left())
        except SuperresError:
            self._keep_claim = True

    def _clean_staging(self, listed: set[tuple[str, str]], ours: set[tuple[str, str]]) -> None:
        """Delete this run's staged objects; with claims (no one else works on the upload) also what older versions
        or rules left behind. Best effort: a leftover costs storage, not correctness."""
        leftovers = listed - ours if self.settings.claim_work else set()
        gateway, region = self.invocation.gateway, self.record.region
        for bucket, key in sorted(ours | leftovers):
            try:
                gateway.delete(bucket, key, region, self._left())
            except SuperresError as exc:
                self.line["warning"] = f"staging object {key!r} not deleted ({exc.code})"

    def _already_done(self, targets: list[Target], states: dict[Target, ObjectState | None],
                      detail: str) -> dict[str, object]:
        skipped: dict[str, object] = {"outcome": "skipped", "reason": "already_done", "detail": detail}
        if self.settings.output_specs:
            skipped["outputs"] = [_output_line(t, "already_done", _state_log(t.key, states.get(t))) for t in targets]
        return skipped

    # -- time -----------------------------------------------------------------------------------------------------

    def _retrying(self, fn: Callable[[], T]) -> T:
        inv = self.invocation
        return call_with_retry(fn, deadline=self.deadline, attempts=Attempts(), policy=inv.policy, clock=inv.clock,
                               sleep=inv.sleep)

    def _left(self) -> float:
        """Seconds until the deadline: no single request may outlast the invocation."""
        return max(self.deadline - self.invocation.clock(), 0.001)


def _meta(state: ObjectState | None) -> dict[str, str] | None:
    return dict(state.meta) if state is not None else None


def _fresh(state: ObjectState | None, target: Target, version: str, source: ObjectState) -> bool:
    """Done for this version: stamped with it and the target's rule. A result made before provenance was recorded
    counts as done only when COS wrote it strictly after the source (one clock, COS's; the same second is not
    enough, so a re-upload within the second of an old result is processed)."""
    if state is None:
        return False
    if is_done(_meta(state), target, version):
        return True
    return (is_unstamped(_meta(state)) and state.last_modified is not None and source.last_modified is not None
            and state.last_modified > source.last_modified)


def _read_version(upload: UploadResult, version: str) -> str:
    """The version CI says it read (OriginalInfo/ETag) when it is a COS ETag of another version: the source changed
    between our HEAD and CI's read, and the result answers the newer upload. Otherwise the version we checked."""
    read = version_of(upload.original.etag if upload.original else None)
    if read and read != version and _looks_like_cos_etag(read):
        return read
    return version


def _looks_like_cos_etag(value: str) -> bool:
    head, _, parts = value.partition("-")
    return len(head) == 32 and all(c in "0123456789abcdef" for c in head) and (not parts or parts.isdigit())


def _found(upload: UploadResult, key: str, *, single: bool) -> dict[str, object]:
    stored = upload.find(key) or (upload.objects[0] if single and len(upload.objects) == 1 else None)
    return stored.as_log() if stored else {}


def _state_log(key: str, state: ObjectState | None) -> dict[str, object] | None:
    return {"key": key, "size": state.size, "etag": state.etag} if state is not None else None


def _output_line(target: Target, status: str, result: dict[str, object] | None, *, confirmed: bool = False
                 ) -> dict[str, object]:
    item: dict[str, object] = {"dest_bucket": target.bucket, "dest_key": target.key, "magnify": target.magnify,
                               "format": target.output.format, "quality": target.output.quality, "status": status,
                               "result": result}
    if confirmed:
        item["confirmed_by"] = "staging"
    return item

