"""Shared helpers of the fault matrix and the soak: one adapter per client, one test body.

Both clients run against a :class:`MarketSimulator` on the test's own event loop:

- :class:`AsyncAdapter` runs ``AsyncStreamClient.handle_messages(reconnect=True)`` in a
  task on that loop;
- :class:`ThreadAdapter` runs ``StreamClient`` on its own threads and makes every blocking
  call on a worker thread of its own, so the loop (and the simulator on it) never waits
  for the client.

Handlers record what they are given; :meth:`Adapter.hold` makes the trade handler wait,
so a test can have events *received but not yet delivered* when it injects a fault.
Nothing here sleeps to let something happen: :func:`until` polls a condition against
a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from polygon import AsyncStreamClient, StreamClient
from polygon.streaming.simulator import MarketSimulator

KEY = "fault-matrix-key"
CLUSTER = "stocks"
CLIENT_KINDS = ("async", "thread")
CLIENT_THREADS = "polygon-stream"
CLOSED_BY_CLIENT = "closed by the client"

Event = dict[str, Any]


# -- waiting -------------------------------------------------------------------------------


async def until(predicate: Callable[[], object], within: float = 5.0, what: str = "") -> float:
    """Poll ``predicate`` until true; fail after ``within`` seconds. Returns the time it took.

    Client counters and threads have no event to wait on, so this polls every 5 ms,
    yielding to the loop between checks; the deadline is what makes it a test.
    """
    started = time.monotonic()
    deadline = started + within
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what or predicate}")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


# -- the process ---------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> dict[str, str]:
    """Each open fd of this process and what it refers to (for a leak's message)."""
    targets = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            targets[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return targets


def rss_bytes() -> int:
    """Resident memory of this process (``VmRSS``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def client_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith(CLIENT_THREADS))


@dataclass(frozen=True)
class Baseline:
    """What the process had before a client was made (the simulator already listening)."""

    fds: int
    threads: int
    tasks: frozenset[asyncio.Task[Any]]

    @classmethod
    def take(cls) -> Baseline:
        return cls(open_fds(), threading.active_count(), frozenset(asyncio.all_tasks()))


async def assert_no_leaks(sim: MarketSimulator, baseline: Baseline) -> None:
    """No live session on the server, no client thread or task, fds back to the baseline."""
    await sim.wait_for(lambda: not sim.sessions, what="the server to see no live session")
    await until(lambda: not client_threads(), what=f"client threads to end: {client_threads()}")
    current = asyncio.current_task()

    def extra_tasks() -> set[asyncio.Task[Any]]:
        return {t for t in asyncio.all_tasks() if t is not current and not t.done()} - set(
            baseline.tasks
        )

    await until(lambda: not extra_tasks(), what=f"tasks to end: {extra_tasks()}")
    await until(
        lambda: open_fds() <= baseline.fds,
        what=f"open fds back to {baseline.fds} (now {open_fds()})",
    )


# -- the server's side ---------------------------------------------------------------------


def trades(sim: MarketSimulator, first_q: int, count: int, symbol: str = "AAPL") -> list[Event]:
    """Stock trades with ``q`` set to ``first_q, first_q + 1, ...``."""
    make = sim.factory(CLUSTER).make
    events = []
    for q in range(first_q, first_q + count):
        event = make("T", symbol)
        event["q"] = q
        events.append(event)
    return events


async def publish_trades(
    sim: MarketSimulator, first_q: int, count: int, per_frame: int = 10
) -> None:
    """Publish ``count`` AAPL trades from ``q = first_q``, ``per_frame`` events a frame."""
    for start in range(first_q, first_q + count, per_frame):
        size = min(per_frame, first_q + count - start)
        assert await sim.publish(CLUSTER, trades(sim, start, size)) == 1


def live_sessions(sim: MarketSimulator) -> list[int]:
    return [s.id for s in sim.sessions if s.authenticated]


async def serving(sim: MarketSimulator, topics: Iterable[str], within: float = 5.0) -> int:
    """Wait until exactly one authenticated session has exactly ``topics``; its id."""
    wanted = set(topics)

    def ready() -> bool:
        sessions = [s for s in sim.sessions if s.authenticated]
        return len(sessions) == 1 and sessions[0].subscriptions == wanted

    await sim.wait_for(ready, within, f"one session subscribed to exactly {sorted(wanted)}")
    [session] = live_sessions(sim)
    return session


def subscribe_requests(sim: MarketSimulator) -> dict[int, list[tuple[str, str]]]:
    """Per session, every ``(action, topic)`` the client sent, in order."""
    sent: dict[int, list[tuple[str, str]]] = {}
    for session, _cluster, message in sim.actions:
        action = message.get("action")
        if action in ("subscribe", "unsubscribe"):
            topics = [t.strip() for t in str(message.get("params")).split(",") if t.strip()]
            sent.setdefault(session, []).extend((action, topic) for topic in topics)
    return sent


def duplicate_subscribes(sim: MarketSimulator) -> list[tuple[int, str]]:
    """``(session, topic)`` for every subscribe of a topic that session already had."""
    duplicates = []
    for session, requests in subscribe_requests(sim).items():
        active: set[str] = set()
        for action, topic in requests:
            if action == "subscribe":
                if topic in active:
                    duplicates.append((session, topic))
                active.add(topic)
            else:
                active.discard(topic)
    return duplicates


# -- the clients ---------------------------------------------------------------------------


@dataclass
class Options:
    """The client settings the tests vary, named once for both clients."""

    ping_interval: float | None = 20.0
    ping_timeout: float | None = 19.0
    open_timeout: float | None = 10.0
    max_message_size: int | None = 16 * 2**20
    reconnect_on_eviction: bool = False
    max_reconnection_attempts: int | None = 10
    reconnection_delay: float = 0.05
    max_buffered_events: int = 100_000


class Adapter:
    """One client behind one interface: start, call, record, stop, close."""

    kind = ""

    def __init__(self, sim: MarketSimulator, options: Options, key: str = KEY) -> None:
        self.sim = sim
        self.options = options
        self.key = key
        self.events: list[Event] = []
        self.statuses: list[Event] = []
        # What the client told the user went wrong (StreamClient: on_error; the
        # asyncio client raises only the error that stops handle_messages).
        self.errors: list[BaseException] = []
        self.stopped_with: BaseException | None = None
        # StreamClient's on_close calls: (code, message).
        self.close_calls: list[tuple[int | None, str]] = []
        self._lock = threading.Lock()

    # recording, from whichever thread runs the handlers

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def _record_status(self, event: Event) -> None:
        with self._lock:
            self.statuses.append(event)

    def qs(self) -> list[int]:
        with self._lock:
            return [event["q"] for event in self.events]

    def status_names(self) -> list[str]:
        with self._lock:
            return [str(event.get("status")) for event in self.statuses]

    # the interface

    @property
    def client(self) -> AsyncStreamClient | StreamClient:
        raise NotImplementedError

    @property
    def stats(self) -> Any:
        return self.client.stats

    @property
    def is_connected(self) -> bool:
        return self.client.is_connected

    async def start(self) -> None:
        raise NotImplementedError

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a public method of the client by name (awaited or on a worker thread)."""
        raise NotImplementedError

    async def subscribe_trades(self, symbols: list[str]) -> None:
        await self.call("subscribe_stock_trades", symbols, handler_function=self.trade_handler)

    async def unsubscribe_trades(self, symbols: list[str]) -> None:
        await self.call("unsubscribe_stock_trades", symbols)

    async def subscribe_quotes(self, symbols: list[str]) -> None:
        await self.call("subscribe_stock_quotes", symbols, handler_function=self.trade_handler)

    @property
    def trade_handler(self) -> Callable[[Event], Any]:
        raise NotImplementedError

    def closing_handler(self) -> Callable[[Event], Any]:
        """A handler that closes the client from inside itself."""
        raise NotImplementedError

    def hold(self) -> None:
        """Make the trade handler wait (events then pile up, received but not delivered)."""
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    async def stopped(self, within: float = 10.0) -> BaseException | None:
        """Wait for the stream to stop by itself; the error it stopped with."""
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class AsyncAdapter(Adapter):
    kind = "async"

    def __init__(self, sim: MarketSimulator, options: Options, key: str = KEY) -> None:
        super().__init__(sim, options, key)
        self._client = AsyncStreamClient(
            key,
            CLUSTER,
            host=sim.url,
            ping_interval=options.ping_interval,
            ping_timeout=options.ping_timeout,
            max_message_size=options.max_message_size,
            open_timeout=options.open_timeout,
            max_buffered_events=options.max_buffered_events,
            reconnect_on_eviction=options.reconnect_on_eviction,
        )
        self._client.change_handler("status", self._record_status)
        self._gate = asyncio.Event()
        self._gate.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def client(self) -> AsyncStreamClient:
        return self._client

    async def start(self) -> None:
        self._task = asyncio.create_task(
            self._client.handle_messages(
                reconnect=True,
                max_reconnection_attempts=self.options.max_reconnection_attempts,
                reconnection_delay=self.options.reconnection_delay,
            ),
            name="test-handle-messages",
        )
        self._task.add_done_callback(self._on_done)
        # Until the reconnect loop runs, a subscribe would connect by itself; once it
        # runs, one only records the change (which is what the tests want to exercise).
        engine = self._client._engine
        await until(lambda: engine.supervised or self._task.done(), what="the reconnect loop")

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.stopped_with = task.exception()
            self.errors.append(task.exception())  # type: ignore[arg-type]

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self._client, name)(*args, **kwargs)

    @property
    def trade_handler(self) -> Callable[[Event], Any]:
        return self._on_trade

    async def _on_trade(self, event: Event) -> None:
        if not self._gate.is_set():
            await self._gate.wait()
        self._record(event)

    def closing_handler(self) -> Callable[[Event], Any]:
        async def close_on_first(event: Event) -> None:
            self._record(event)
            await self._client.close_stream()

        return close_on_first

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stopped(self, within: float = 10.0) -> BaseException | None:
        assert self._task is not None, "not started"
        await asyncio.wait({self._task}, timeout=within)
        assert self._task.done(), f"handle_messages still running after {within:g} s"
        return self.stopped_with

    async def close(self) -> None:
        self.release()
        await self._client.close_stream()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5.0)
            assert self._task.done(), "handle_messages did not end after close_stream()"


class ThreadAdapter(Adapter):
    kind = "thread"

    def __init__(self, sim: MarketSimulator, options: Options, key: str = KEY) -> None:
        super().__init__(sim, options, key)
        self._client = StreamClient(
            key,
            CLUSTER,
            host=sim.url,
            on_error=self._on_error,
            on_close=self._on_close,
            reconnect=True,
            max_reconnection_attempts=options.max_reconnection_attempts,
            reconnection_delay=options.reconnection_delay,
            max_message_size=options.max_message_size,
            open_timeout=options.open_timeout,
            max_buffered_events=options.max_buffered_events,
            reconnect_on_eviction=options.reconnect_on_eviction,
        )
        self._client.change_handler("status", self._record_status)
        self._gate = threading.Event()
        self._gate.set()
        self._closed = threading.Event()

    @property
    def client(self) -> StreamClient:
        return self._client

    def _on_error(self, client: StreamClient, error: BaseException) -> None:
        with self._lock:
            self.errors.append(error)

    def _on_close(self, client: StreamClient, code: int | None, message: str) -> None:
        with self._lock:
            self.close_calls.append((code, message))
            if message != CLOSED_BY_CLIENT and self.errors:
                self.stopped_with = self.errors[-1]
        self._closed.set()

    async def _blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking call on a thread of its own, so the loop never waits for it.

        A thread per call, joined when it is done, so none outlives the test.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if not done.done():
                if error is not None:
                    done.set_exception(error)
                else:
                    done.set_result(result)

        def run() -> None:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                loop.call_soon_threadsafe(settle, None, exc)
            else:
                loop.call_soon_threadsafe(settle, result, None)

        caller = threading.Thread(target=run, name="fault-test-caller", daemon=True)
        caller.start()
        try:
            return await done
        finally:
            caller.join(5)

    async def start(self) -> None:
        await self._blocking(
            self._client.start_stream_thread,
            ping_interval=self.options.ping_interval,
            ping_timeout=self.options.ping_timeout,
        )

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return await self._blocking(getattr(self._client, name), *args, **kwargs)

    @property
    def trade_handler(self) -> Callable[[Event], Any]:
        return self._on_trade

    def _on_trade(self, event: Event) -> None:
        # Bounded, so a test that fails while holding cannot hang the dispatcher.
        self._gate.wait(20)
        self._record(event)

    def closing_handler(self) -> Callable[[Event], Any]:
        def close_on_first(event: Event) -> None:
            self._record(event)
            self._client.close_stream()

        return close_on_first

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    @property
    def running(self) -> bool:
        return not self._closed.is_set()

    async def stopped(self, within: float = 10.0) -> BaseException | None:
        await until(self._closed.is_set, within, "on_close")
        return self.stopped_with

    async def close(self) -> None:
        self.release()
        await self._blocking(self._client.close_stream)


def make_adapter(
    kind: str, sim: MarketSimulator, options: Options | None = None, key: str = KEY
) -> Adapter:
    adapter = {"async": AsyncAdapter, "thread": ThreadAdapter}[kind]
    return adapter(sim, options or Options(), key)


__all__ = [
    "CLIENT_KINDS",
    "KEY",
    "Adapter",
    "Baseline",
    "Options",
    "assert_no_leaks",
    "client_threads",
    "duplicate_subscribes",
    "fd_targets",
    "live_sessions",
    "make_adapter",
    "open_fds",
    "publish_trades",
    "rss_bytes",
    "serving",
    "subscribe_requests",
    "trades",
    "until",
]
