"""Claims: at most one invocation works on an upload at a time, so concurrent deliveries call CI once.

A claim is a small object created with `x-cos-forbid-overwrite: true`: whoever creates it holds it. It carries the
source version its holder works on and its time to live (x-cos-meta-superres-version, -ttl), a duration: the
holder's whole time budget plus the longest a CI call may still land after its client gave up, so that once a claim
has expired nothing its holder sent can still change anything.

Expiry is judged on COS's clock alone: the age of a claim is the Date of the answer that shows it minus its
Last-Modified, both written by COS. No two clocks are compared.

Taking over an expired claim is one atomic create, never delete-then-create: the taker creates the key named by the
dead claim's ETag (`<root>.<etag>`, bodies carry a nonce so every claim's ETag differs), and of several takers of
the same dead claim exactly one succeeds. The chain from the root to the live claim is followed by HEADs (one per
dead holder). Release deletes the chain, root first, each key once and never retried: a retried DELETE could land
after a newcomer created the key again and remove its live claim. A release that fails leaves a claim that expires.

The protocol is written against `ClaimOps`, three operations on one bucket; tests run it on an in-memory store, the
function on COS.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping

from .errors import SuperresError
from .gateway import ObjectState

META_TTL = "superres-ttl"
META_VERSION = "superres-version"
# A chain longer than this (that many holders died in a row) is treated as busy rather than followed further.
_MAX_CHAIN = 16
# Last-Modified and Date are whole seconds: a claim is alive one second longer than its TTL.
_GRANULARITY_S = 1


# Plain classes with __slots__ rather than NamedTuples: each NamedTuple costs SCF's cold start its class creation.
class ClaimOps:
    """The three operations claims need, bound to one bucket (retries and timeouts are the caller's)."""

    __slots__ = ("create", "delete_once", "head")

    def __init__(self, create: Callable[[str, bytes, Mapping[str, str]], bool],
                 head: Callable[[str], ObjectState | None], delete_once: Callable[[str], None]) -> None:
        self.create = create  # atomic create; False if the key exists
        self.head = head
        self.delete_once = delete_once  # one DELETE, never retried


class Held:
    """A claim this invocation holds: the keys from the root to its own (dead predecessors first)."""

    __slots__ = ("chain",)

    def __init__(self, chain: tuple[str, ...]) -> None:
        self.chain = chain

    @property
    def key(self) -> str:
        return self.chain[-1]


class Busy:
    """A live claim of another invocation, and the source version it works on."""

    __slots__ = ("key", "version")

    def __init__(self, key: str, version: str | None) -> None:
        self.key = key
        self.version = version


def claim_meta(ttl_s: float, version: str | None) -> dict[str, str]:
    meta = {f"x-cos-meta-{META_TTL}": str(int(ttl_s + 0.999))}
    if version:
        meta[f"x-cos-meta-{META_VERSION}"] = version
    return meta


def try_acquire(ops: ClaimOps, root: str, body: bytes, meta: Mapping[str, str], default_ttl_s: float,
                wall: Callable[[], float] = time.time) -> Held | Busy:
    """Create the claim, or take over the expired one; Busy when another invocation holds a live claim."""
    chain: list[str] = []
    key = root
    ours = hashlib.md5(body).hexdigest()  # the body carries a nonce: this ETag is our claim's alone
    for _ in range(_MAX_CHAIN * 2):
        if ops.create(key, body, meta):
            return Held((*chain, key))
        state = ops.head(key)
        if state is not None and (state.etag or "").strip('"') == ours:
            # Our own create landed although its answer was lost (a retried PUT then met 409): we hold it.
            return Held((*chain, key))
        if state is None:
            # Released between our create and our HEAD: start again from the root (its holder deleted it first).
            chain, key = [], root
            continue
        if is_live(state, default_ttl_s, wall):
            return Busy(key, state.meta.get(META_VERSION))
        if len(chain) >= _MAX_CHAIN:
            break
        chain.append(key)
        key = f"{root}.{(state.etag or '').strip(chr(34)) or 'none'}"
    return Busy(key, None)


def is_live(state: ObjectState, default_ttl_s: float, wall: Callable[[], float] = time.time) -> bool:
    """Within its TTL by COS's clock. A claim without a TTL (not written by this function) lives `default_ttl_s`.
    Only if COS sent no Date is this machine's clock used, against the claim's Last-Modified."""
    raw = state.meta.get(META_TTL, "")
    ttl = int(raw) if raw.isdigit() else default_ttl_s
    age = state.age_s
    if age is None:
        if state.last_modified is None:
            return True
        age = int(wall()) - state.last_modified
    return age <= ttl + _GRANULARITY_S


def release(ops: ClaimOps, held: Held) -> list[tuple[str, str]]:
    """Delete the chain, root first, each key once; (key, error code) of those not deleted (they expire)."""
    failed: list[tuple[str, str]] = []
    for key in held.chain:
        try:
            ops.delete_once(key)
        except SuperresError as exc:  # a claim left behind expires; the caller reports it
            failed.append((key, exc.code))
    return failed
