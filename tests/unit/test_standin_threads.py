"""The stand-in's hand-off of blocking work to threads: results and exceptions come back, and a cancelled caller
waits for its call to finish (so no staging file is discarded, no lock released, under a thread still using it)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from superres.standin.threads import in_thread


def test_results_and_keyword_arguments_come_back_from_another_thread() -> None:
    async def main() -> tuple[str, int]:
        name = await in_thread(lambda: threading.current_thread().name)
        return name, await in_thread(int, "ff", base=16)

    name, value = asyncio.run(main())
    assert name != threading.current_thread().name and name.startswith("superres-standin-io")
    assert value == 255


def test_the_calls_exception_is_raised_in_the_caller() -> None:
    async def main() -> None:
        await in_thread(int, "not a number")

    with pytest.raises(ValueError, match="not a number"):
        asyncio.run(main())


def test_a_cancelled_caller_moves_on_only_after_its_call_finished() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def blocking() -> None:
        started.set()
        release.wait(10)
        finished.append("call")

    async def main() -> None:
        task = asyncio.create_task(in_thread(blocking))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting for the thread, not abandoned
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished == ["call"]  # the cancellation arrived after the call's end

    asyncio.run(main())
