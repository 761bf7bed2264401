"""No call starts when the invocation's time is nearly up: the record is left to SCF's retry with its own log line,
instead of the function being killed mid-call at the time limit (losing the lines of every later record)."""

from __future__ import annotations

import pytest
from superres_fn import Attempts, DeadlineError, RecordsFailedError, RetryPolicy, call_with_retry, handle_event

from tests.conftest import load_event
from tests.unit.fakes import FakeClock, make_invocation


def test_no_first_attempt_when_less_than_an_attempt_is_left():
    clock, attempts, calls = FakeClock(), Attempts(), []
    with pytest.raises(DeadlineError) as info:
        call_with_retry(lambda: calls.append(1), deadline=clock() + 0.3, attempts=attempts, clock=clock,
                        sleep=clock.sleep)
    assert calls == [] and attempts.count == 0
    assert info.value.retryable is True and info.value.code == "DeadlineExceeded"


def test_records_after_a_slow_one_are_left_to_scf_retry_without_calls():
    invocation, lines, gateway, clock = make_invocation()
    invocation = invocation._replace(policy=RetryPolicy())  # a CI call starts only with 3 s left
    gateway.on_call = lambda: clock.sleep(2.0)  # each CI call takes 2 s
    with pytest.raises(RecordsFailedError):
        handle_event(load_event("three_records.json"), {"request_id": "r", "time_limit_in_ms": 5000}, invocation)
    assert [(line["outcome"], line["reason"]) for line in lines] == [
        ("processed", "processed"), ("failed", "DeadlineExceeded"), ("failed", "DeadlineExceeded"),
    ]
    assert all(line["retry"] is True for line in lines[1:])
    assert len(gateway.calls) == 1
