"""Run a :class:`MarketSimulator` on its own event loop in a background thread.

For tests of the blocking client and for scripts: the simulator lives on a
loop that belongs to a named daemon thread, and every call into it crosses
threads through :func:`asyncio.run_coroutine_threadsafe` with a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar, overload

from typing_extensions import Self

from polygon.streaming.simulator._server import MarketSimulator

logger = logging.getLogger("polygon.streaming.simulator")

T = TypeVar("T")

START_TIMEOUT = 10.0
JOIN_TIMEOUT = 10.0


class SimulatorThread:
    """A :class:`MarketSimulator` served from a background thread.

    ``with SimulatorThread(rate=0) as sim:`` starts it and returns once it
    listens; leaving the block stops the server, the loop and the thread.
    Takes the same arguments as :class:`MarketSimulator`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        valid_keys: Iterable[str] | None = None,
        rate: float = 100.0,
        batch_size: int = 10,
        seed: int | None = None,
        speed: float = 1.0,
        start: str | float | None = None,
        max_connections_per_key: int = 1,
        auth_timeout: float | None = 10.0,
        ping_interval: float | None = None,
        ping_timeout: float | None = 20.0,
    ) -> None:
        # Built here, not on the thread, so bad arguments raise in the caller.
        self._simulator = MarketSimulator(
            host,
            port,
            valid_keys=valid_keys,
            rate=rate,
            batch_size=batch_size,
            seed=seed,
            speed=speed,
            start=start,
            max_connections_per_key=max_connections_per_key,
            auth_timeout=auth_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def simulator(self) -> MarketSimulator:
        """The simulator; touch its state only through :meth:`call`."""
        return self._simulator

    @property
    def url(self) -> str:
        return self._simulator.url

    @property
    def port(self) -> int:
        return self._simulator.port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start the thread and return once the simulator listens."""
        if self._thread is not None:
            raise RuntimeError("the simulator thread was already started")
        self._thread = threading.Thread(
            target=self._run, name="polygon-market-simulator", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the simulator did not start within {START_TIMEOUT:g} s")
        if self._startup_error is not None:
            self._thread.join(JOIN_TIMEOUT)
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Stop the server, then the loop, and join the thread. Idempotent."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        self._refuse_own_thread("stop()")
        loop, stop_requested = self._loop, self._stop_requested
        if loop is not None and stop_requested is not None:
            # The loop may close between the check and the call: then it is done.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop_requested.set)
        thread.join(JOIN_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"the simulator thread did not stop within {JOIN_TIMEOUT:g} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @overload
    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float = 10.0) -> T: ...

    @overload
    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10.0) -> T: ...

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(*args)`` on the simulator's loop and return its result.

        A coroutine function is awaited there. Raises :class:`TimeoutError`
        after ``timeout`` seconds, and :class:`RuntimeError` when called from
        the simulator's own thread, where waiting would deadlock.
        """
        loop = self._loop
        if loop is None or not self.running:
            raise RuntimeError("the simulator thread is not running")
        self._refuse_own_thread("call()")

        async def invoke() -> Any:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result

        future = asyncio.run_coroutine_threadsafe(invoke(), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            name = getattr(fn, "__qualname__", repr(fn))
            raise TimeoutError(f"{name} did not finish within {timeout:g} s") from None

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Block until ``predicate()`` (checked on the simulator's loop) is true."""
        # The extra second lets the simulator's own, more precise timeout fire first.
        self.call(self._simulator.wait_for, predicate, timeout, what, timeout=timeout + 1.0)

    def _refuse_own_thread(self, what: str) -> None:
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError(
                f"{what} called from the simulator's own thread would deadlock; "
                "await the MarketSimulator directly instead"
            )

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        try:
            await self._simulator.start()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            await self._simulator.stop()
            await _cancel_other_tasks()


async def _cancel_other_tasks() -> None:
    """Cancel what :meth:`SimulatorThread.call` left running, so the loop closes clean."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
