"""SQLite's writer thread takes the intake's transactions before the others waiting."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from correlator.store.writer import PriorityWriter


def _blocked(writer: PriorityWriter) -> threading.Event:
    """Occupy the writer's thread until the returned event is set."""
    release, running = threading.Event(), threading.Event()

    def hold() -> None:
        running.set()
        release.wait(10)

    writer.submit(hold)
    assert running.wait(10)
    return release


def test_urgent_work_goes_first_and_the_rest_keeps_its_order() -> None:
    writer = PriorityWriter("test-writer")
    order: list[str] = []
    release = _blocked(writer)
    futures = [writer.submit(order.append, name) for name in ("claim", "report", "outbox")]
    futures.append(writer.submit_urgent(order.append, "intake-1"))
    futures.append(writer.submit_urgent(order.append, "intake-2"))
    release.set()
    for future in futures:
        future.result(10)
    writer.shutdown()
    assert order == ["intake-1", "intake-2", "claim", "report", "outbox"]


def test_an_error_reaches_the_caller_and_the_thread_goes_on() -> None:
    writer = PriorityWriter("test-writer")

    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        writer.submit_urgent(fail).result(10)
    assert writer.submit(lambda: 42).result(10) == 42
    writer.shutdown()


def test_shutdown_runs_what_was_submitted_then_refuses_more() -> None:
    writer = PriorityWriter("test-writer")
    done: list[int] = []
    release = _blocked(writer)
    pending = [writer.submit(done.append, n) for n in range(3)]
    stopper = threading.Thread(target=writer.shutdown)
    stopper.start()
    release.set()
    stopper.join(10)
    assert [f.result(0) for f in pending] == [None] * 3 and done == [0, 1, 2]
    with pytest.raises(RuntimeError):
        writer.submit(done.append, 4)


def test_shutdown_can_cancel_what_waits() -> None:
    writer = PriorityWriter("test-writer")
    release = _blocked(writer)
    waiting = writer.submit(lambda: "never")
    writer.shutdown(wait=False, cancel_futures=True)  # while the thread is still busy
    release.set()
    writer.shutdown()  # waits for the thread
    with pytest.raises(CancelledError):
        waiting.result(0)
