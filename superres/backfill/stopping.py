"""Ctrl-C during a backfill: the first stops taking objects and finishes those in flight, the second abandons them.

"In flight" means an object whose call (a CI request in this process, or its record in an Invoke request) has
begun: an object still waiting for the rate limiter when Ctrl-C comes is not begun and never will be. The counts
here are what the screen says ("finishing N in-flight objects") and what the summary says (finished_in_flight,
abandoned_in_flight), so they are one number. Abandoned objects may still be billed (their request may already be
on the wire), so the run charges them to its CI calls and thus to the --max-calls cap.

The signal handler never raises in the middle of recording a result: the second Ctrl-C sets `forced`, and the
run's wait loop raises ForcedStop at its next turn (within its 0.2 s poll); only while the run is blocked in a
listing (`interruptible()`) does the handler raise at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ForcedStop(KeyboardInterrupt):
    """The second Ctrl-C."""


class Stopping:
    def __init__(self) -> None:
        self.requested = threading.Event()
        self.forced = threading.Event()
        self._lock = threading.Lock()
        self._begun = 0  # objects whose call began in this run
        self._ended = 0  # of those, how many the run has recorded
        self.in_flight_at_stop: int | None = None  # announced when the first Ctrl-C was seen
        self.finished_after_stop = 0
        self._interruptible = False

    def request(self) -> None:
        """What the first Ctrl-C does: take no new objects, finish those in flight."""
        self.requested.set()

    def begin(self, objects: int = 1) -> bool:
        """Called by a job right before its call: False (do not call) once a stop was requested."""
        with self._lock:
            if self.requested.is_set():
                return False
            self._begun += objects
            return True

    def ended(self, objects: int = 1) -> None:
        """The run recorded the result of `objects` begun objects."""
        with self._lock:
            self._ended += objects
            if self.in_flight_at_stop is not None:
                self.finished_after_stop += objects

    def in_flight(self) -> int:
        with self._lock:
            return self._begun - self._ended

    def announce(self) -> int | None:
        """Once, after a stop was requested: how many objects are in flight (fixed from then on: none begins)."""
        if not self.requested.is_set() or self.in_flight_at_stop is not None:
            return None
        with self._lock:
            self.in_flight_at_stop = self._begun - self._ended
            return self.in_flight_at_stop

    def raise_if_forced(self) -> None:
        if self.forced.is_set():
            raise ForcedStop

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stretch (a listing) where the second Ctrl-C may raise at once: nothing is half recorded there."""
        self._interruptible = True
        try:
            self.raise_if_forced()
            yield
        finally:
            self._interruptible = False

    # -- the handler ---------------------------------------------------------------------------------------------

    def install(self) -> object:
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_sigint(signum: int, frame: object) -> None:
            if not self.requested.is_set():
                self.request()
                return
            self.forced.set()
            if self._interruptible:
                raise ForcedStop

        return signal.signal(signal.SIGINT, on_sigint)

    @staticmethod
    def restore(previous: object) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)  # type: ignore[arg-type]
