"""One event loop on a daemon thread, holding async HTTP clients, that any thread can run coroutines on.

Why not ``asyncio.run`` per call: each call then builds a new loop and a new ``httpx.AsyncClient``
(connection pool, TLS context), and with 64 threads calling at once the per-call set-up, and the
import-lock contention of httpcore's per-loop async-library detection across threads, cost ~40% of
the throughput of a bare async client (``benchmarks/synth_concurrency.py``). One loop per engine
makes every call a cheap submission, and its connections are reused across calls.

Why several clients (:class:`ClientShards`) rather than one: httpcore's connection pool scans every
connection for every queued request each time a request starts or ends
(``AsyncConnectionPool._assign_requests_to_connections``), so its CPU cost per request grows with
the connections in the pool; a profile of one client at 64 in flight spends most of its time in
``is_idle`` checks. Spreading requests over pools of ~8 connections keeps that scan short.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
C = TypeVar("C")


class AsyncClosable(Protocol):
    """A client with an async ``aclose()`` (``httpx.AsyncClient``)."""

    async def aclose(self) -> None: ...


A = TypeVar("A", bound=AsyncClosable)


class ClientShards(Generic[A]):
    """Several clients used by one event loop; each request leases the one with the fewest in flight.

    Args:
        make_client: Builds one client (a pool of at most ~``per_shard`` busy connections).
        connections: Connections expected in flight at once; ``ceil(connections / per_shard)`` clients are built.
        per_shard: Target connections per client (8: short pool scans, few enough clients to build).

    >>> import asyncio
    >>> class Client:
    ...     async def aclose(self): pass
    >>> shards = ClientShards(Client, connections=20)
    >>> len(shards.clients)
    3
    >>> async def use():
    ...     async with shards.lease() as first, shards.lease() as second:
    ...         return first is not second
    >>> asyncio.run(use())
    True
    """

    def __init__(self, make_client: Callable[[], A], connections: int, per_shard: int = 8):
        self.clients = [make_client() for _ in range(max(1, math.ceil(connections / per_shard)))]
        self._busy = [0] * len(self.clients)

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[A]:
        """The least busy client, counted busy until the block ends (call on the loop thread only)."""
        index = min(range(len(self.clients)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            yield self.clients[index]
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        """Close every client."""
        for client in self.clients:
            await client.aclose()


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
