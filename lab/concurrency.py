"""Running independent calls at once (Docker API calls, mostly), and nothing more.

`run_all(calls)` runs each call on a bounded thread pool and returns their results in the
calls' order. The first call to fail stops the rest: calls not yet started are cancelled,
`abort()` (if given) is called so that calls blocked on something (a log stream) can end,
the calls already running are waited for, and that first error is raised. The same happens
when the waiting thread itself is interrupted (Ctrl-C, SIGTERM made KeyboardInterrupt): no
call is left running behind the caller's back, so the caller's cleanup sees everything the
calls made.
"""
from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Iterable, Optional, TypeVar

T = TypeVar("T")

# The engine serialises much of its work anyway; more threads than this only queue there.
MAX_WORKERS = 16


def run_all(calls: Iterable[Callable[[], T]], workers: int = MAX_WORKERS,
            abort: Optional[Callable[[], None]] = None) -> list[T]:
    calls = list(calls)
    if not calls:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls))), thread_name_prefix="socketlab")
    futures = [pool.submit(call) for call in calls]

    def stop() -> None:
        for future in futures:
            future.cancel()
        if abort is not None:
            abort()
        pool.shutdown(wait=True)

    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:
        stop()
        raise
    failed = [f for f in futures if f in done and f.exception() is not None]
    if failed:
        stop()
        raise failed[0].exception()
    pool.shutdown(wait=True)
    return [f.result() for f in futures]
