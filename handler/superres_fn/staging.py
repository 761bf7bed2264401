"""An upload's staging folder (DEST_PREFIX.staging/<sha256 of the source>/): where CI writes, what a later try
finds there, and the in-flight marker of a CI call that may still land.

Every try lists the folder once (a LIST of one small folder): a result CI wrote for this version and rule is
published without calling CI again; an in-flight marker younger than CI_LANDING_BOUND_S, by COS's clock (the
listing's Date minus the marker's LastModified), holds off any new call for the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import CiMayStillLand, SuperresError
from .targets import Target, in_flight_key, staging_folder

if TYPE_CHECKING:
    from .record import RecordRun

Listing = dict[tuple[str, str], "int | None"]  # (bucket, key) -> age in seconds by COS's clock (None: unknown)


class StagingFolder:
    """The staging folder of one record's upload, for the source version `version`, in each bucket `pending` uses."""

    def __init__(self, run: RecordRun, pending: list[Target], version: str) -> None:
        self.run = run
        self.buckets = list(dict.fromkeys(t.bucket for t in pending))
        self.prefix = staging_folder(run.settings, run.folder)
        self.in_flight = (pending[0].bucket, in_flight_key(run.settings, run.folder, version))

    def list(self) -> Listing:
        run = self.run
        gateway, region = run.invocation.gateway, run.record.region
        found: Listing = {}
        for bucket in self.buckets:
            listed = run.retrying(lambda b=bucket: gateway.list_prefix(b, self.prefix, region, run.left()))
            found.update(((bucket, key), None if listed.date is None or modified is None else listed.date - modified)
                         for key, modified in listed.keys.items())
        return found

    def await_landing(self, staged: Listing) -> Listing:
        """While an earlier CI call for this version may still land, no new call: wait for the bound to pass if the
        invocation has the time, else leave the record to SCF's retry (CiMayStillLand). What the folder holds then."""
        run = self.run
        bound = run.settings.ci_landing_bound_s
        while self.in_flight in staged:
            age = staged[self.in_flight]
            wait = bound + 1 - (age if age is not None else 0)
            if wait <= 0:
                return staged  # it can no longer land: what landed is in the listing
            if run.invocation.clock() + wait + run.ci_needs_s > run.deadline:
                raise CiMayStillLand(f"an earlier CI call for this version failed without an answer {age} s ago and "
                                     f"may land for {wait:.0f} s more (CI_LANDING_BOUND_S); SCF's retry looks again")
            run.invocation.sleep(wait)
            staged = self.list()
        return staged

    def mark_in_flight(self) -> bool:
        """Record that a CI call may still land; False if the marker could not be written."""
        bucket, key = self.in_flight
        run = self.run
        try:
            run.invocation.gateway.create_if_absent(bucket, key, run.record.region, b"{}", {}, run.left())
        except SuperresError:
            return False
        return True

    def clean(self, listed: set[tuple[str, str]], ours: set[tuple[str, str]]) -> None:
        """Delete this run's staged objects and a marker that no longer holds anything off; with claims (no one
        else works on the upload) also what older versions or rules left behind. Best effort: a leftover costs
        storage, not correctness."""
        run = self.run
        ours = ours | ({self.in_flight} & listed)
        leftovers = listed - ours if run.settings.claim_work else set()
        gateway, region = run.invocation.gateway, run.record.region
        for bucket, key in sorted(ours | leftovers):
            try:
                gateway.delete(bucket, key, region, run.left())
            except SuperresError as exc:
                run.line["warning"] = f"staging object {key!r} not deleted ({exc.code})"
