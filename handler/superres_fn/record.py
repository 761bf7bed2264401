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
    CiOutcomeUnknown,
    CosCallError,
    DeadlineError,
    WorkInProgressError,
)
from .events import CosRecord
from .gateway import ObjectState
from .plan import ALREADY_DONE, decide, pic_operations_for
from .results import UploadResult, parse_upload_result
from .retry import Attempts, call_with_retry
from .staging import StagingFolder
from .targets import (
    CONTENT_TYPES,
    Target,
    claim_folder,
    claim_root,
    is_current,
    is_done,
    made_from_another,
    meta_of,
    source_folder,
    version_of,
    version_read,
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
        self.folder = source_folder(record.bucket, record.key)  # the upload: its staging folder, its results' stamp
        self._keep_claim = False
        self.staging: StagingFolder  # set once the record has work for CI

    def run(self, *, duplicate: bool) -> dict[str, object]:
        decision = decide(self.record, self.settings, duplicate=duplicate)
        fields: dict[str, object] = {"dest_bucket": decision.dest_bucket, "dest_key": decision.dest_key}
        if not decision.should_process:
            return {**fields, "outcome": "skipped", "reason": decision.reason, "detail": decision.detail}
        targets = list(decision.targets)
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
            create=lambda key, body, meta: self.retrying(
                lambda: gateway.create_if_absent(bucket, key, region, body, meta, self.left())),
            head=lambda key: self.retrying(lambda: gateway.head(bucket, key, region, self.left())),
            delete_once=lambda key: gateway.delete(bucket, key, region, self.left()),
        )

    def _acquire(self, targets: list[Target]) -> claims.Held | dict[str, object]:
        """Hold the upload's claim, waiting while another invocation holds it; an already_done outcome if that one
        stored every result for this very version meanwhile."""
        version = version_of(self.record.etag)
        body = json.dumps({"source": f"{self.record.bucket}/{self.record.key}", "version": version,
                           "request_id": self.line.get("request_id"), "nonce": os.urandom(8).hex()}).encode()
        ops = self._claim_ops(targets[0].bucket)
        root = claim_root(self.settings, claim_folder(self.settings, self.record.bucket, self.record.key))
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
                if all(is_done(meta_of(states[t]), t, version) for t in targets):
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
        shared_names = settings.result_names == "replace"
        states = self._looks(targets) if settings.skip_existing or shared_names else {}
        if (version and settings.skip_existing and states
                and all(is_done(meta_of(states[t]), t, version) for t in targets)):
            return self._already_done(targets, states, ALREADY_DONE)
        taken = [t.key for t in targets if made_from_another(meta_of(states.get(t)), self.folder)]
        if taken:
            return {"outcome": "skipped", "reason": "result_name_taken",
                    "detail": f"{', '.join(taken)} holds the result of another upload with the same result name "
                              "(under RESULT_NAMES=replace, one whose name differs only in its extension; or the "
                              "same key in another source bucket writing to this DEST_BUCKET); nothing was "
                              "overwritten. Delete that result to give the name to this upload, or use "
                              "RESULT_NAMES=append"}
        source = self.retrying(lambda: self.invocation.gateway.head(record.bucket, record.key, record.region,
                                                                       self.left()))
        if source is None:
            return {"outcome": "skipped", "reason": "source_gone",
                    "detail": "the upload was deleted before it was processed"}
        current = version_of(source.etag)
        if version and current and current != version:
            return {"outcome": "skipped", "reason": "outdated",
                    "detail": f"the source is now version {current}, not this event's {version}: the newer upload's "
                              "own event processes it"}
        version = current or version or f"unversioned-{source.size}-{source.last_modified}"
        done = {t: states[t] for t in targets
                if settings.skip_existing and is_current(states.get(t), t, version, source)}
        pending = [t for t in targets if t not in done]
        if not pending:
            return self._already_done(targets, states, ALREADY_DONE)
        return self._produce(targets, pending, done, version)

    def _produce(self, targets: list[Target], pending: list[Target], done: dict[Target, ObjectState | None],
                 version: str) -> dict[str, object]:
        """Super-resolve, convert and publish the pending targets, reusing what an earlier try staged."""
        record, settings = self.record, self.settings
        self.staging = staging = StagingFolder(self, pending, version)
        staged = staging.list()
        png = {t: t.staged(settings, self.folder, version, "png") for t in pending}
        final = {t: t.staged(settings, self.folder, version) for t in pending}
        if any((t.bucket, final[t]) not in staged for t in pending):
            staged = staging.await_landing(staged)
        from_staging = {t for t in pending if (t.bucket, final[t]) in staged}
        to_resolve = [t for t in pending if t not in from_staging and (t.bucket, png[t]) not in staged]
        results: dict[Target, dict[str, object]] = {}
        original = None
        stamp_version = version
        if to_resolve:
            upload = self._call_ci(record.bucket, record.key,
                                   [(t.bucket, png[t], t.sr_rule) for t in to_resolve], is_pic_info=1)
            original = upload.original.image if upload.original else None
            stamp_version = version_read(upload.original.etag if upload.original else None, version)
            for t in to_resolve:
                results[t] = _found(upload, png[t], single=len(to_resolve) == 1)
        for t in pending:
            if t.converts and t not in from_staging:
                upload = self._call_ci(t.bucket, png[t], [(t.bucket, final[t], t.convert_rule)], is_pic_info=0)
                results[t] = {**results.get(t, {}), **_found(upload, final[t], single=True)}
        for t in pending:
            # Made in this call: from what CI read; staged by an earlier try: from the version it was named for.
            made_from = stamp_version if t in to_resolve else version
            stamp = t.stamp(made_from, self.folder)
            etag = self.retrying(lambda t=t, stamp=stamp: self.invocation.gateway.publish(
                t.bucket, final[t], t.key, record.region, stamp, CONTENT_TYPES[t.format], self.left()))
            results[t] = {**results.get(t, {}), "key": t.key, "etag": etag or results.get(t, {}).get("etag"),
                          "location": f"{t.bucket}.cos.{record.region}.myqcloud.com/{t.key}"}
        staging.clean(set(staged), {(t.bucket, k) for t in pending for k in (png[t], final[t])})
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
        connection); an ambiguous failure ends the record (CiOutcomeUnknown) after writing the in-flight marker
        (or, if that fails, keeping the claim)."""
        operations = pic_operations_for(rules, record_bucket=bucket, is_pic_info=is_pic_info)
        needs = self.ci_needs_s

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
                    # No new call while this one may land: a marker every later try lists, else the claim kept
                    self._keep_claim = not self.staging.mark_in_flight()
                    raise CiOutcomeUnknown(exc) from None
                raise

        return self.retrying(attempt)

    # -- looks ----------------------------------------------------------------------------------------------------

    def _looks(self, targets: list[Target]) -> dict[Target, ObjectState | None]:
        gateway, region = self.invocation.gateway, self.record.region
        return {t: self.retrying(lambda t=t: gateway.head(t.bucket, t.key, region, self.left())) for t in targets}

    def _already_done(self, targets: list[Target], states: dict[Target, ObjectState | None],
                      detail: str) -> dict[str, object]:
        skipped: dict[str, object] = {"outcome": "skipped", "reason": "already_done", "detail": detail}
        if self.settings.output_specs:
            skipped["outputs"] = [_output_line(t, "already_done", _state_log(t.key, states.get(t))) for t in targets]
        return skipped

    # -- time -----------------------------------------------------------------------------------------------------

    def retrying(self, fn: Callable[[], T]) -> T:
        inv = self.invocation
        return call_with_retry(fn, deadline=self.deadline, attempts=Attempts(), policy=inv.policy, clock=inv.clock,
                               sleep=inv.sleep)

    @property
    def ci_needs_s(self) -> float:
        """The time a CI call needs to start: the policy's, or COS_TIMEOUT_S when shorter (it gets no more)."""
        return min(self.invocation.policy.min_ci_attempt_s, self.settings.cos_timeout_s)

    def left(self) -> float:
        """Seconds until the deadline: no single request may outlast the invocation."""
        return max(self.deadline - self.invocation.clock(), 0.001)


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

