"""Exponential backoff with full jitter, bounded by the invocation's remaining time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from .errors import DeadlineError, SuperresError

T = TypeVar("T")


class RetryPolicy(NamedTuple):
    base_s: float = 0.2
    cap_s: float = 5.0
    max_attempts: int = 8
    # Time one more attempt is expected to need; no attempt starts unless this much is left.
    min_attempt_s: float = 0.5
    # A CI call (super-resolution takes seconds) starts only with this much left.
    min_ci_attempt_s: float = 3.0


DEFAULT_POLICY = RetryPolicy()


class Attempts:
    """How many calls were made; shared by the retry loop and the record's log line."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def call_with_retry(
    fn: Callable[[], T],
    *,
    deadline: float,
    attempts: Attempts,
    policy: RetryPolicy = DEFAULT_POLICY,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> T:
    """Call `fn` until it succeeds, fails permanently, or the next try would not fit before `deadline`.

    Only SuperresError subclasses with `retryable` set are retried; the last error is re-raised. No first attempt
    starts either when less than `policy.min_attempt_s` is left: DeadlineError (retryable) instead.
    """
    if clock() + policy.min_attempt_s > deadline:
        raise DeadlineError(
            f"{max(deadline - clock(), 0.0):.1f} s of the invocation's time left, under the "
            f"{policy.min_attempt_s:g} s an attempt needs; leaving this record to SCF's retry"
        )
    while True:
        attempts.count += 1
        try:
            return fn()
        except SuperresError as exc:
            if not (exc.retryable and exc.retry_now) or attempts.count >= policy.max_attempts:
                raise
            delay = jitter() * min(policy.cap_s, policy.base_s * 2 ** (attempts.count - 1))
            if clock() + delay + policy.min_attempt_s > deadline:
                raise
            sleep(delay)
