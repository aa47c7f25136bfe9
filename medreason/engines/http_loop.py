"""One event loop on a daemon thread, holding one async HTTP client, that any thread can run coroutines on.

Why not ``asyncio.run`` per call: each call then builds a new loop and a new ``httpx.AsyncClient``
(connection pool, TLS context), and with 64 threads calling at once the per-call set-up, and the
import-lock contention of httpcore's per-loop async-library detection across threads, cost ~40% of
the throughput of a bare async client (``benchmarks/synth_concurrency.py``). One loop and one client
per engine make every call a cheap submission; the connection pool is reused across calls.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")


def _stop(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)


class LoopThread(Generic[C]):
    """An event loop on a daemon thread and a client built on it by ``make_client`` (on first use).

    Args:
        make_client: Builds the client (called on the loop thread); it is closed with ``aclose()``.
        name: The thread's name (shows in profiles and stack dumps).

    The loop starts on the first :meth:`run` and again after :meth:`close` or a ``fork`` (a child
    process inherits no threads, so it builds its own loop and client).

    >>> import asyncio
    >>> class Client:
    ...     async def aclose(self): pass
    >>> loop = LoopThread(Client)
    >>> async def double(client, x):
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> loop.run(lambda client: double(client, 21))
    42
    >>> loop.close()
    """

    def __init__(self, make_client: Callable[[], C], name: str = "http-loop"):
        self._make_client = make_client
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: C | None = None
        self._pid = -1

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name=self._name, daemon=True)
                thread.start()
                ready.wait()
                self._client = asyncio.run_coroutine_threadsafe(self._build(), loop).result()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                # an engine dropped without close() must not leave its loop thread running
                weakref.finalize(self, _stop, loop)
            return self._loop

    async def _build(self) -> C:
        return self._make_client()

    def run(self, work: Callable[[C], Awaitable[T]]) -> T:
        """Run ``work(client)`` on the loop and wait for its result (exceptions propagate)."""
        loop = self._start()
        client = self._client

        async def call() -> Any:
            return await work(client)

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    def close(self) -> None:
        """Close the client and stop the loop thread; safe to call twice."""
        with self._lock:
            loop, thread, client = self._loop, self._thread, self._client
            self._loop = self._thread = self._client = None
        if loop is None or self._pid != os.getpid() or not loop.is_running():
            return
        if client is not None:
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()
