"""run_all: results in order, the first error re-raised, nothing left running or started after it."""
import threading
import time

import pytest

from lab.concurrency import run_all


def test_results_come_in_the_calls_order():
    assert run_all([lambda i=i: i * i for i in range(20)], workers=4) == [i * i for i in range(20)]
    assert run_all([]) == []


def test_calls_run_at_once():
    barrier = threading.Barrier(5, timeout=10)   # only passes if all five run together
    assert sorted(run_all([barrier.wait for _ in range(5)], workers=5)) == [0, 1, 2, 3, 4]


def test_first_error_is_raised_and_the_rest_cancelled_or_finished():
    started, finished = [], []
    release = threading.Event()

    def fails():
        started.append("fails")
        raise ValueError("first")

    def slow(i):
        started.append(i)
        release.wait(10)
        finished.append(i)

    def later_error():
        release.wait(10)
        raise RuntimeError("second")

    calls = [lambda: slow(0), fails, later_error] + [lambda i=i: slow(i) for i in range(1, 50)]
    with pytest.raises(ValueError, match="first"):
        run_all(calls, workers=3, abort=release.set)
    # abort() released the running calls, run_all waited for them, and what had not started never did.
    assert set(started) - {"fails"} == set(finished)
    assert len(started) < len(calls)
    assert release.is_set()


def test_abort_is_called_when_the_waiting_thread_is_interrupted(monkeypatch):
    import lab.concurrency as concurrency
    release = threading.Event()
    ran = []

    def interrupted_wait(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(concurrency, "wait", interrupted_wait)

    def blocked():
        release.wait(10)
        ran.append(1)

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_all([blocked, blocked], abort=release.set)
    assert release.is_set() and time.monotonic() - began < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("socketlab")]
