from __future__ import annotations

import pytest
from superres_fn import Attempts, CosCallError, RetryPolicy, call_with_retry

from tests.unit.fakes import FakeClock


def _failing(errors, result="ok"):
    def fn():
        if errors:
            raise errors.pop(0)
        return result

    return fn


def _transient():
    return CosCallError("slow down", code="SlowDown", status=503)


def test_transient_errors_are_retried_with_growing_jittered_backoff():
    clock, attempts = FakeClock(), Attempts()
    fn = _failing([_transient(), _transient(), _transient()])
    assert call_with_retry(fn, deadline=clock() + 60, attempts=attempts, clock=clock, sleep=clock.sleep,
                           jitter=lambda: 1.0) == "ok"
    assert attempts.count == 4
    assert clock.sleeps == [0.2, 0.4, 0.8]


def test_permanent_error_is_not_retried():
    clock, attempts = FakeClock(), Attempts()
    with pytest.raises(CosCallError) as info:
        call_with_retry(_failing([CosCallError("bad", code="InvalidArgument", status=400)]),
                        deadline=clock() + 60, attempts=attempts, clock=clock, sleep=clock.sleep)
    assert info.value.code == "InvalidArgument"
    assert attempts.count == 1 and clock.sleeps == []


def test_retry_stops_when_next_attempt_would_pass_the_deadline():
    clock, attempts = FakeClock(), Attempts()
    errors = [_transient() for _ in range(50)]
    policy = RetryPolicy(base_s=1.0, cap_s=4.0, max_attempts=100, min_attempt_s=0.5)
    with pytest.raises(CosCallError):
        call_with_retry(_failing(errors), deadline=clock() + 10, attempts=attempts, policy=policy, clock=clock,
                        sleep=clock.sleep, jitter=lambda: 1.0)
    assert clock.now <= 1000.0 + 10
    assert attempts.count == 4  # sleeps 1, 2, 4 then the next 4 s wait would leave < 0.5 s


def test_max_attempts_bounds_the_loop():
    clock, attempts = FakeClock(), Attempts()
    with pytest.raises(CosCallError):
        call_with_retry(_failing([_transient() for _ in range(20)]), deadline=clock() + 1e9, attempts=attempts,
                        policy=RetryPolicy(max_attempts=3), clock=clock, sleep=clock.sleep)
    assert attempts.count == 3


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(503, "SlowDown", True), (500, "InternalError", True), (None, "ClientError", True), (429, "X", True),
     (400, "InvalidArgument", False), (403, "AccessDenied", False), (404, "NoSuchKey", False),
     (400, "ImageTooLarge", False)],
)
def test_retry_decision_by_status_and_code(status, code, retryable):
    assert CosCallError("m", code=code, status=status).retryable is retryable
