"""Small combinators on :class:`concurrent.futures.Future`: chain a function, gather several, wrap a call.

``asyncio`` has these for coroutines; ``concurrent.futures`` has none, and judge requests run on
threads (the OpenAI client's loop thread, a judge pool) while the trainer's main thread generates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
U = TypeVar("U")

__all__ = ["call_now", "gather", "then"]


def call_now(function: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """A finished future holding ``function(*args, **kwargs)`` or the exception it raised.

    >>> call_now(int, "12").result()
    12
    >>> call_now(int, "x").exception().__class__.__name__
    'ValueError'
    """
    future: Future[T] = Future()
    try:
        future.set_result(function(*args, **kwargs))
    except Exception as error:  # noqa: BLE001 - handed to whoever calls result()
        future.set_exception(error)
    return future


def then(future: Future[T], function: Callable[[T], U]) -> Future[U]:
    """A future of ``function(future.result())``, run by whichever thread finishes ``future``.

    >>> then(call_now(int, "20"), lambda x: x + 1).result()
    21
    """
    chained: Future[U] = Future()

    def finish(done: Future[T]) -> None:
        error = done.exception()
        if error is not None:
            chained.set_exception(error)
            return
        try:
            chained.set_result(function(done.result()))
        except Exception as failure:  # noqa: BLE001 - handed to whoever calls result()
            chained.set_exception(failure)

    future.add_done_callback(finish)
    return chained


def gather(futures: Sequence[Future[T]]) -> Future[list[T]]:
    """A future of every result, in order; the first exception (in order) if any failed.

    >>> gather([call_now(int, "1"), call_now(int, "2")]).result()
    [1, 2]
    """
    combined: Future[list[T]] = Future()
    remaining = [len(futures)]
    lock = threading.Lock()  # callbacks of different futures may run on different threads

    def finish(_: Future[T]) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            for future in futures:
                if future.exception() is not None:
                    combined.set_exception(future.exception())
                    return
            combined.set_result([future.result() for future in futures])

    if not futures:
        combined.set_result([])
    for future in futures:
        future.add_done_callback(finish)
    return combined
