"""The blocking StreamClient against the market simulator, over real sockets on 127.0.0.1.

The simulator runs on its own thread (``SimulatorThread``) with ``rate=0`` unless a
live feed is the point, so every event a test expects is one it published itself.
Nothing here sleeps to let something happen: tests wait on events, conditions or
the simulator's state, always with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from polygon.streaming import (
    AuthenticationError,
    ConnectionLostError,
    InvalidSymbolError,
    MaxConnectionsError,
    StreamClient,
    StreamClosedError,
    StreamConnectionError,
)
from polygon.streaming.errors import SlowConsumerWarning
from polygon.streaming.simulator import SimulatorThread

Event = dict[str, Any]

CLIENT_THREADS = "polygon-stream"
SIMULATOR_THREAD = "polygon-market-simulator"
KEY = "test-key"


# -- helpers -------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or predicate!r}")
        time.sleep(0.005)


def thread_names(part: str) -> list[str]:
    return sorted(t.name for t in threading.enumerate() if part in t.name and t.is_alive())


class Recorder:
    """A callback that records its arguments; tests wait on it with a deadline."""

    def __init__(self, action: Callable[..., object] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.threads: list[str] = []
        self._cond = threading.Condition()
        self._action = action

    def __call__(self, *args: Any) -> None:
        with self._cond:
            self.calls.append(args)
            self.threads.append(threading.current_thread().name)
            self._cond.notify_all()
        if self._action is not None:
            self._action(*args)

    def wait_for(
        self, predicate: Callable[[list[tuple[Any, ...]]], object], timeout: float = 5.0
    ) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.calls), timeout):
                pytest.fail(f"timed out after {timeout:g} s; calls so far: {self.calls!r:.2000}")

    def wait_count(self, count: int, timeout: float = 5.0) -> None:
        self.wait_for(lambda calls: len(calls) >= count, timeout)

    def snapshot(self) -> list[tuple[Any, ...]]:
        with self._cond:
            return list(self.calls)


class EventLog(Recorder):
    """A handler_function: records the events it is called with."""

    def events(self) -> list[Event]:
        return [call[0] for call in self.snapshot()]

    def sequence(self) -> list[int]:
        return [event["q"] for event in self.events()]


def make_client(sim: SimulatorThread, key: str = KEY, **kwargs: Any) -> StreamClient:
    kwargs.setdefault("reconnection_delay", 0.05)
    return StreamClient(key, "stocks", host=sim.url, **kwargs)


def trade(sim: SimulatorThread, symbol: str, q: int) -> Event:
    event = sim.simulator.factory("stocks").make("T", symbol)
    event["q"] = q
    return event


def quote(sim: SimulatorThread, symbol: str, q: int) -> Event:
    event = sim.simulator.factory("stocks").make("Q", symbol)
    event["q"] = q
    return event


def publish(sim: SimulatorThread, events: list[Event]) -> int:
    """Send ``events`` as one frame to each subscribed session; how many got it."""
    return sim.call(sim.simulator.publish, "stocks", events)


def publish_frames(sim: SimulatorThread, frames: list[list[Event]]) -> None:
    """Publish many frames, in order, in one round trip to the simulator's loop."""

    async def publish_all() -> None:
        for frame in frames:
            assert await sim.simulator.publish("stocks", frame) == 1

    sim.call(publish_all)


def server_topics(sim: SimulatorThread) -> set[str]:
    return sim.call(sim.simulator.subscriptions, "stocks")


def wait_server_topics(sim: SimulatorThread, topics: set[str], timeout: float = 5.0) -> None:
    """Wait until exactly one authenticated session exists and it has ``topics``."""

    def ready() -> bool:
        sessions = [s for s in sim.simulator.sessions if s.authenticated]
        return len(sessions) == 1 and sim.simulator.subscriptions("stocks") == topics

    sim.wait_for(ready, timeout, f"one session subscribed to {sorted(topics)}")


def is_status(event: Event, status: str | None = None) -> bool:
    return event.get("ev") == "status" and (status is None or event.get("status") == status)


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = thread_names(CLIENT_THREADS) + thread_names(SIMULATOR_THREAD)
    yield
    after = thread_names(CLIENT_THREADS) + thread_names(SIMULATOR_THREAD)
    assert after == before, f"threads left behind: {sorted(set(after) - set(before))}"


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(rate=0, auth_timeout=5.0) as simulator:
        yield simulator


# -- callbacks -----------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_on_message_gets_every_raw_frame_with_the_client_first(sim: SimulatorThread) -> None:
    on_message = Recorder()
    with make_client(sim, on_message=on_message) as client:
        client.subscribe_stock_trades(["AAPL"])
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})
        frames = [[trade(sim, "AAPL", q) for q in range(n, n + 3)] for n in range(0, 30, 3)]
        publish_frames(sim, frames)
        sent = [orjson.dumps(frame).decode() for frame in frames]
        on_message.wait_for(lambda calls: calls[-1][1] == sent[-1])
        calls = on_message.snapshot()
        assert all(call[0] is client for call in calls)
        raw = [call[1] for call in calls]
        assert all(isinstance(text, str) for text in raw)
        # The login frames come first, then the acknowledgement, then the data, unchanged.
        decoded = [orjson.loads(text) for text in raw]
        assert decoded[0] == [
            {"ev": "status", "status": "connected", "message": "Connected Successfully"}
        ]
        assert decoded[1][0]["status"] == "auth_success"
        assert decoded[2] == [
            {"ev": "status", "status": "success", "message": "subscribed to: T.AAPL"}
        ]
        assert raw[3:] == sent
        assert set(on_message.threads) == {"polygon-stream-dispatch"}


@pytest.mark.timeout(20)
def test_handlers_get_decoded_events_of_their_subscription_in_order(sim: SimulatorThread) -> None:
    trades, quotes = EventLog(), EventLog()
    with make_client(sim) as client:
        client.start_stream_thread()
        client.subscribe_stock_trades(["AAPL"], handler_function=trades)
        client.subscribe_stock_quotes(["MSFT"], handler_function=quotes)
        wait_server_topics(sim, {"T.AAPL", "Q.MSFT"})
        frames = [
            [
                event
                for q in range(n, n + 10)
                for event in (trade(sim, "AAPL", q), quote(sim, "MSFT", q))
            ]
            for n in range(0, 2000, 10)
        ]
        publish_frames(sim, frames)
        trades.wait_count(2000)
        quotes.wait_count(2000)
        assert trades.sequence() == list(range(2000))
        assert quotes.sequence() == list(range(2000))
        assert {e["ev"] for e in trades.events()} == {"T"}
        assert {e["sym"] for e in quotes.events()} == {"MSFT"}
        assert set(trades.threads) == {"polygon-stream-dispatch"}
        stats = client.stats
        assert stats.events_dropped == 0
        assert stats.events_received == stats.events_delivered + stats.backlog


@pytest.mark.timeout(20)
def test_handler_exception_goes_to_on_error_and_the_stream_goes_on(sim: SimulatorThread) -> None:
    def explode(event: Event) -> None:
        if event["q"] == 1:
            raise ValueError("handler failed on q=1")

    trades, on_error = EventLog(explode), Recorder()
    with make_client(sim, on_error=on_error) as client:
        client.subscribe_stock_trades(["AAPL"], handler_function=trades)
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})
        publish(sim, [trade(sim, "AAPL", 1), trade(sim, "AAPL", 2)])
        publish(sim, [trade(sim, "AAPL", 3)])
        trades.wait_count(3)
        assert trades.sequence() == [1, 2, 3]
        on_error.wait_count(1)
        [(source, error)] = on_error.snapshot()
        assert source is client
        assert isinstance(error, ValueError)
        assert str(error) == "handler failed on q=1"
        assert client.stats.handler_errors == 1
        assert client.is_connected
        assert sim.simulator.connections_accepted == 1


@pytest.mark.timeout(20)
def test_on_message_exception_goes_to_on_error_and_handlers_still_run(
    sim: SimulatorThread,
) -> None:
    def explode(client: StreamClient, raw: str) -> None:
        if '"q":1' in raw:
            raise RuntimeError("on_message failed")

    trades, on_error = EventLog(), Recorder()
    with make_client(sim, on_message=explode, on_error=on_error) as client:
        client.subscribe_stock_trades(["AAPL"], handler_function=trades)
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})
        publish(sim, [trade(sim, "AAPL", 1)])
        publish(sim, [trade(sim, "AAPL", 2)])
        trades.wait_count(2)
        assert trades.sequence() == [1, 2]
        on_error.wait_count(1)
        assert [str(call[1]) for call in on_error.snapshot()] == ["on_message failed"]


@pytest.mark.timeout(20)
def test_handler_exception_without_on_error_is_logged(
    sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(event: Event) -> None:
        raise KeyError("no such field")

    after = EventLog()
    caplog.set_level(logging.ERROR, logger="polygon.streaming")
    with make_client(sim) as client:
        client.subscribe_stock_trades(["AAPL"], handler_function=explode)
        client.subscribe_stock_quotes(["AAPL"], handler_function=after)
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL", "Q.AAPL"})
        publish(sim, [trade(sim, "AAPL", 1), quote(sim, "AAPL", 2)])
        after.wait_count(1)
        assert client.stats.handler_errors == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in errors), errors


# -- subscriptions -------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_subscriptions_recorded_before_start_are_sent_on_start(sim: SimulatorThread) -> None:
    with make_client(sim) as client:
        client.subscribe_stock_trades(["AAPL", "msft"])
        client.subscribe_stock_quotes(["NVDA"])
        client.unsubscribe_stock_trades(["MSFT"])
        assert client.subscriptions == ["T.AAPL", "Q.NVDA"]
        assert sim.simulator.connections_accepted == 0
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL", "Q.NVDA"})
        sent = [m for _, _, m in sim.call(lambda: list(sim.simulator.actions))]
        assert [m["action"] for m in sent] == ["auth", "subscribe"]
        assert sent[1]["params"] == "T.AAPL,Q.NVDA"
        wait_until(lambda: client.is_connected, what="client.is_connected")


@pytest.mark.timeout(20)
def test_unsubscribe_while_running_removes_the_topic_on_the_server(sim: SimulatorThread) -> None:
    trades = EventLog()
    with make_client(sim) as client:
        client.start_stream_thread()
        client.subscribe_stock_trades(["AAPL", "MSFT"], handler_function=trades)
        wait_server_topics(sim, {"T.AAPL", "T.MSFT"})
        client.unsubscribe_stock_trades(["AAPL"])
        assert client.subscriptions == ["T.MSFT"]
        wait_server_topics(sim, {"T.MSFT"})
        assert publish(sim, [trade(sim, "AAPL", 1)]) == 0
        publish(sim, [trade(sim, "MSFT", 2)])
        trades.wait_count(1)
        assert [(e["sym"], e["q"]) for e in trades.events()] == [("MSFT", 2)]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("symbols", "named"),
    [
        (["AAPL", "BAD SYMBOL"], "'BAD SYMBOL'"),
        (["MSFT", "A,B"], "'A,B'"),
        (["NVDA", ""], "''"),
        (["AMD", 123], "123"),
        (42, "42"),
    ],
)
def test_bad_symbols_raise_and_leave_the_subscriptions_unchanged(
    sim: SimulatorThread, symbols: Any, named: str
) -> None:
    with make_client(sim) as client:
        client.subscribe_stock_trades(["SPY"])
        with pytest.raises(InvalidSymbolError) as before_start:
            client.subscribe_stock_trades(symbols)
        assert isinstance(before_start.value, ValueError)
        assert named in str(before_start.value)
        assert client.subscriptions == ["T.SPY"]

        client.start_stream_thread()
        wait_server_topics(sim, {"T.SPY"})
        with pytest.raises(InvalidSymbolError, match=re.escape(named)):
            client.subscribe_stock_quotes(symbols)
        with pytest.raises(InvalidSymbolError, match=re.escape(named)):
            client.unsubscribe_stock_trades(symbols)
        assert client.subscriptions == ["T.SPY"]
        # A later, valid request is answered: the bad ones were never sent.
        client.subscribe_stock_quotes(["SPY"])
        wait_server_topics(sim, {"T.SPY", "Q.SPY"})
        messages = [m for _, _, m in sim.call(lambda: list(sim.simulator.actions))]
        assert [m.get("params") for m in messages[1:]] == ["T.SPY", "Q.SPY"]


@pytest.mark.timeout(20)
def test_coroutine_handler_function_raises_type_error(sim: SimulatorThread) -> None:
    async def coroutine_handler(event: Event) -> None:
        pass

    class AsyncCallable:
        async def __call__(self, event: Event) -> None:
            pass

    with make_client(sim) as client:
        for handler in (coroutine_handler, AsyncCallable()):
            with pytest.raises(TypeError, match="coroutine"):
                client.subscribe_stock_trades(["AAPL"], handler_function=handler)  # type: ignore[arg-type]
        assert client.subscriptions == []
        client.start_stream_thread()
        wait_until(lambda: client.is_connected, what="client.is_connected")
        with pytest.raises(TypeError, match="coroutine"):
            client.subscribe_stock_trades(["AAPL"], handler_function=coroutine_handler)
        with pytest.raises(TypeError, match="coroutine"):
            client.change_handler("T", coroutine_handler)  # type: ignore[arg-type]
        assert client.subscriptions == []
        assert server_topics(sim) == set()


@pytest.mark.timeout(30)
def test_forty_threads_subscribe_at_once(sim: SimulatorThread) -> None:
    symbols = [f"SYM{i:02d}" for i in range(40)]
    barrier = threading.Barrier(len(symbols))
    errors: list[BaseException] = []
    trades = EventLog()

    with make_client(sim) as client:
        client.start_stream_thread()
        wait_until(lambda: client.is_connected, what="client.is_connected")

        def subscribe(symbol: str) -> None:
            try:
                barrier.wait(5)
                client.subscribe_stock_trades([symbol], handler_function=trades)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=subscribe, args=(s,), name=f"subscriber-{s}") for s in symbols
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(t.is_alive() for t in threads), "a subscribe call did not return"
        assert errors == []
        assert sorted(client.subscriptions) == sorted(f"T.{s}" for s in symbols)
        wait_server_topics(sim, {f"T.{s}" for s in symbols})
        publish(sim, [trade(sim, s, i) for i, s in enumerate(symbols)])
        trades.wait_count(len(symbols))
        assert trades.sequence() == list(range(len(symbols)))


@pytest.mark.timeout(20)
def test_subscribe_and_unsubscribe_from_inside_a_callback(sim: SimulatorThread) -> None:
    errors: list[BaseException] = []
    quotes = EventLog()

    def on_trade(event: Event) -> None:
        try:
            if event["q"] == 1:
                client.subscribe_stock_quotes([event["sym"]], handler_function=quotes)
            elif event["q"] == 2:
                client.unsubscribe_stock_trades([event["sym"]])
        except BaseException as exc:
            errors.append(exc)

    trades = EventLog(on_trade)
    with make_client(sim) as client:
        client.subscribe_stock_trades(["AAPL"], handler_function=trades)
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})
        publish(sim, [trade(sim, "AAPL", 1)])
        wait_server_topics(sim, {"T.AAPL", "Q.AAPL"})
        publish(sim, [quote(sim, "AAPL", 10)])
        quotes.wait_count(1)
        publish(sim, [trade(sim, "AAPL", 2)])
        wait_server_topics(sim, {"Q.AAPL"})
        assert errors == []
        assert client.subscriptions == ["Q.AAPL"]
        assert trades.sequence() == [1, 2]
        assert quotes.sequence() == [10]


@pytest.mark.timeout(20)
def test_usable_from_a_thread_running_an_asyncio_loop(sim: SimulatorThread) -> None:
    trades = EventLog()
    results: dict[str, Any] = {}

    async def main() -> None:
        with make_client(sim) as client:
            client.subscribe_stock_trades(["AAPL"], handler_function=trades)
            client.start_stream_thread()
            client.subscribe_stock_quotes(["AAPL"])
            await asyncio.sleep(0)
            wait_server_topics(sim, {"T.AAPL", "Q.AAPL"})
            client.unsubscribe_stock_quotes(["AAPL"])
            wait_server_topics(sim, {"T.AAPL"})
            publish(sim, [trade(sim, "AAPL", 7)])
            trades.wait_count(1)
        # A second client consumed by iteration, still inside the running loop.
        with make_client(sim) as client:
            client.subscribe_stock_trades(["MSFT"])
            for event in client.iter_messages(include_status=False):
                results["iterated"] = event
                break
            results["stats"] = client.stats
        results["loop_alive"] = await asyncio.sleep(0, "yes")

    def publish_when_subscribed() -> None:
        wait_server_topics(sim, {"T.MSFT"}, timeout=10)
        publish(sim, [trade(sim, "MSFT", 8)])

    publisher = threading.Thread(target=publish_when_subscribed, name="publisher")
    publisher.start()
    try:
        asyncio.run(main())
    finally:
        publisher.join(10)
    assert trades.sequence() == [7]
    assert results["iterated"]["q"] == 8
    assert results["loop_alive"] == "yes"


@pytest.mark.timeout(20)
def test_every_frame_arrives_when_the_event_loop_policy_is_uvloops(
    sim: SimulatorThread,
) -> None:
    # The client's thread makes its loop with asyncio.new_event_loop(), so an
    # application that called uvloop.install() gets a uvloop loop there, whose
    # transports hand data over through data_received, not buffer_updated.
    uvloop = pytest.importorskip("uvloop")
    trades, batches = EventLog(), Recorder()
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        with make_client(sim) as client:
            client.add_batch_handler(batches)
            client.subscribe_stock_trades(["AAPL"], handler_function=trades)
            client.start_stream_thread()
            loop = client._loop_thread.loop
            wait_server_topics(sim, {"T.AAPL"})
            publish_frames(sim, [[trade(sim, "AAPL", q)] for q in range(500)])
            trades.wait_count(500)
    finally:
        asyncio.set_event_loop_policy(previous)
    assert type(loop).__module__.startswith("uvloop")
    assert trades.sequence() == list(range(500))
    assert len([b for (b,) in batches.snapshot() if b[0]["ev"] == "T"]) == 500


# -- iter_messages -------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_iter_messages_yields_every_event_in_order(sim: SimulatorThread) -> None:
    frames = [[trade(sim, "AAPL", q) for q in range(n, n + 20)] for n in range(0, 2000, 20)]
    failures: list[BaseException] = []

    with make_client(sim) as client:

        def publisher() -> None:
            try:
                wait_server_topics(sim, {"T.AAPL"}, timeout=10)
                publish_frames(sim, frames)
            except BaseException as exc:
                failures.append(exc)
                client.close_stream()

        client.subscribe_stock_trades(["AAPL"])
        thread = threading.Thread(target=publisher, name="publisher")
        thread.start()
        received: list[Event] = []
        statuses: list[str] = []
        for event in client.iter_messages():
            if is_status(event):
                statuses.append(event["status"])
                continue
            received.append(event)
            if len(received) == 2000:
                break
        thread.join(10)
        assert failures == []
        assert [e["q"] for e in received] == list(range(2000))
        assert received == [event for frame in frames for event in frame]
        assert statuses == ["connected", "auth_success", "success"]
        assert client.stats.events_dropped == 0


def publish_when_subscribed(sim: SimulatorThread, topics: set[str], frame: list[Event]) -> None:
    """On another thread (the stream starts with the iterator's first next()):
    wait for ``topics``, then publish ``frame``."""

    def publish_it() -> None:
        wait_server_topics(sim, topics, timeout=10)
        publish_frames(sim, [frame])

    threading.Thread(target=publish_it, name="publisher", daemon=True).start()


@pytest.mark.timeout(20)
def test_iterating_directly_runs_the_callbacks_set_before_and_during_the_loop(
    sim: SimulatorThread,
) -> None:
    # The iterator skips the per-frame delivery while there is nothing to run:
    # on_message, a batch handler or a handler set meanwhile must still run,
    # each from the next frame on.
    raw: list[str] = []
    batches: list[list[int]] = []
    quotes: list[int] = []
    with make_client(sim, on_message=lambda _client, text: raw.append(text)) as client:
        client.subscribe_stock_trades(["AAPL"])
        client.subscribe_stock_quotes(["AAPL"])
        iterator = client.iter_messages(include_status=False)
        publish_when_subscribed(sim, {"T.AAPL", "Q.AAPL"}, [trade(sim, "AAPL", 0)])
        assert next(iterator)["q"] == 0  # starts the stream
        # on_message ran (for the statuses too) before the frame's events were yielded.
        assert '"q":0' in raw[-1]
        client.change_handler("Q", lambda event: quotes.append(event["q"]))
        client.add_batch_handler(lambda events: batches.append([e["q"] for e in events]))
        publish_frames(sim, [[quote(sim, "AAPL", 1)]])
        assert next(iterator)["q"] == 1
        assert (quotes, batches) == ([1], [[1]])
        assert '"q":1' in raw[-1]
        iterator.close()


@pytest.mark.timeout(20)
def test_the_callbacks_run_while_iterating_directly_without_on_message(
    sim: SimulatorThread,
) -> None:
    quotes: list[int] = []
    with make_client(sim) as client:
        client.subscribe_stock_quotes(["AAPL"])
        iterator = client.iter_messages(include_status=False)
        publish_when_subscribed(sim, {"Q.AAPL"}, [quote(sim, "AAPL", 0)])
        assert next(iterator)["q"] == 0  # starts the stream
        assert quotes == []  # no handler of its own yet: the iterator shows it
        client.change_handler("Q", lambda event: quotes.append(event["q"]))
        publish_frames(sim, [[quote(sim, "AAPL", 1)]])
        assert next(iterator)["q"] == 1
        assert quotes == [1]
        iterator.close()


@pytest.mark.timeout(20)
def test_iter_messages_can_leave_out_status_events_and_resume_after_break(
    sim: SimulatorThread,
) -> None:
    with make_client(sim) as client:
        client.subscribe_stock_trades(["AAPL"])
        iterator = client.iter_messages(include_status=False)

        def publish_one_frame() -> None:
            wait_server_topics(sim, {"T.AAPL"}, timeout=10)
            publish(sim, [trade(sim, "AAPL", q) for q in range(5)])

        publisher = threading.Thread(target=publish_one_frame, name="publisher")
        publisher.start()
        first = [next(iterator)["q"], next(iterator)["q"]]
        iterator.close()  # what a `break` does
        publisher.join(10)
        rest = []
        for event in client.iter_messages():
            assert not is_status(event), event
            rest.append(event["q"])
            if len(rest) == 3:
                break
        assert first + rest == [0, 1, 2, 3, 4]


@pytest.mark.timeout(20)
def test_close_stream_from_another_thread_ends_a_blocked_iter_messages(
    sim: SimulatorThread,
) -> None:
    on_close = Recorder()
    subscribed = threading.Event()
    with make_client(sim, on_close=on_close) as client:

        def closer() -> None:
            subscribed.wait(10)
            # The iterating thread is blocked waiting for the next event.
            wait_until(lambda: client._buffer._waiting > 0, what="the iterator to block")
            client.close_stream()

        thread = threading.Thread(target=closer, name="closer")
        thread.start()
        client.subscribe_stock_trades(["AAPL"])
        events = []
        for event in client.iter_messages():
            events.append(event)
            if is_status(event, "success"):
                subscribed.set()
        thread.join(10)
        assert not thread.is_alive()
        assert [e["status"] for e in events] == ["connected", "auth_success", "success"]
        assert thread_names(CLIENT_THREADS) == []
        assert on_close.snapshot() == [(client, 1000, "closed by the client")]
        sim.wait_for(lambda: not sim.simulator.sessions, 5, "the session to end")
        with pytest.raises(StreamClosedError):
            next(client.iter_messages())


@pytest.mark.timeout(20)
def test_close_stream_ends_iter_messages_beside_the_callback_thread(
    sim: SimulatorThread,
) -> None:
    trades = EventLog()
    with make_client(sim) as client:
        client.subscribe_stock_trades(["AAPL"], handler_function=trades)
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})
        got: list[int] = []

        def publish_then_close() -> None:
            # The iterator sees events from when it starts: once it is a tap of
            # the dispatcher (private state: there is no public sign of it).
            wait_until(lambda: bool(client._taps), what="the iterator to start")
            publish(sim, [trade(sim, "AAPL", 1)])
            trades.wait_count(1)
            wait_until(lambda: got == [1], what="the iterator to get q=1")
            client.close_stream()

        thread = threading.Thread(target=publish_then_close, name="closer")
        iterator = client.iter_messages(include_status=False)
        thread.start()
        for event in iterator:
            got.append(event["q"])
        thread.join(10)
        assert got == [1]
        assert trades.sequence() == [1]
        assert thread_names(CLIENT_THREADS) == []


@pytest.mark.timeout(30)
def test_reconnect_while_iterating_restores_the_subscriptions(sim: SimulatorThread) -> None:
    on_error = Recorder()
    first_event = threading.Event()
    failures: list[BaseException] = []

    with make_client(sim, on_error=on_error) as client:

        def driver() -> None:
            try:
                first_event.wait(10)
                sim.call(sim.simulator.refuse_connections, True)
                assert sim.call(sim.simulator.drop_connections) == 1
                wait_until(lambda: not client.is_connected, what="the client to notice")
                # While reconnecting: recorded at once, sent on the next connection.
                client.subscribe_stock_quotes(["MSFT"])
                sim.call(sim.simulator.refuse_connections, False)
                wait_server_topics(sim, {"T.AAPL", "Q.MSFT"}, timeout=10)
                publish(sim, [trade(sim, "AAPL", 2), quote(sim, "MSFT", 3)])
            except BaseException as exc:
                failures.append(exc)
                client.close_stream()

        client.subscribe_stock_trades(["AAPL"])
        thread = threading.Thread(target=driver, name="driver")
        thread.start()
        data: list[tuple[str, int]] = []
        for event in client.iter_messages():
            if is_status(event, "success") and not data:
                publish(sim, [trade(sim, "AAPL", 1)])
            elif not is_status(event):
                data.append((event["ev"], event["q"]))
                first_event.set()
                if len(data) == 3:
                    break
        thread.join(10)
        assert failures == []
        assert data == [("T", 1), ("T", 2), ("Q", 3)]
        assert sim.simulator.connections_accepted == 2
        assert client.stats.connections == 2
        assert client.stats.reconnects == 1
        assert client.subscriptions == ["T.AAPL", "Q.MSFT"]
        errors = [call[1] for call in on_error.snapshot()]
        assert len(errors) >= 1
        assert isinstance(errors[0], ConnectionLostError)


# -- failures that stop the stream -------------------------------------------------------


@pytest.mark.timeout(20)
def test_eviction_stops_the_first_client_which_does_not_reconnect(
    sim: SimulatorThread,
) -> None:
    first_error, first_close = Recorder(), Recorder()
    second_error, second_trades = Recorder(), EventLog()
    with (
        make_client(sim, on_error=first_error, on_close=first_close) as first,
        make_client(sim, on_error=second_error) as second,
    ):
        first.subscribe_stock_trades(["AAPL"])
        first.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})

        second.subscribe_stock_trades(["MSFT"], handler_function=second_trades)
        second.start_stream_thread()
        first_close.wait_count(1, timeout=10)

        [(source, code, message)] = first_close.snapshot()
        assert source is first
        assert code in (None, 1008)
        assert "max_connections" in message
        # The first client's threads are gone, so it cannot come back and evict the second.
        assert not first.is_connected
        assert thread_names("polygon-stream-loop") == ["polygon-stream-loop"]
        with pytest.raises(StreamClosedError):
            first.subscribe_stock_trades(["NVDA"])

        wait_server_topics(sim, {"T.MSFT"})
        assert sim.simulator.connections_accepted == 2
        assert second.is_connected
        publish(sim, [trade(sim, "MSFT", 5)])
        second_trades.wait_count(1)
        assert second_error.snapshot() == []
        assert second.stats.reconnects == 0

        errors = first_error.snapshot()
        assert all(source is first for source, _ in errors)
        assert all(isinstance(error, MaxConnectionsError) for _, error in errors)
        assert errors[0][1].status == "max_connections"
        # One eviction, one report: not once as a lost connection and again as the end.
        assert len(errors) == 1, f"on_error got the eviction {len(errors)} times: {errors}"
    assert sim.simulator.connections_accepted == 2


@pytest.mark.timeout(20)
def test_auth_failure_stops_the_stream_without_retrying() -> None:
    on_error, on_close = Recorder(), Recorder()
    with SimulatorThread(rate=0, valid_keys={"good"}) as sim:
        with make_client(sim, key="bad", on_error=on_error, on_close=on_close) as client:
            client.subscribe_stock_trades(["AAPL"])
            client.start_stream_thread()
            on_close.wait_count(1)
            [(source, error)] = on_error.snapshot()
            assert source is client
            assert isinstance(error, AuthenticationError)
            assert error.status == "auth_failed"
            [(source, _code, message)] = on_close.snapshot()
            assert source is client
            assert "auth_failed" in message
            assert thread_names("polygon-stream-loop") == []
            assert sim.simulator.connections_accepted == 1
            assert client.stats.failed_attempts == 0
            with pytest.raises(StreamClosedError):
                client.subscribe_stock_quotes(["AAPL"])
        assert sim.simulator.connections_accepted == 1


@pytest.mark.timeout(20)
def test_auth_failure_is_raised_from_iter_messages() -> None:
    on_error = Recorder()
    with (
        SimulatorThread(rate=0, valid_keys={"good"}) as sim,
        make_client(sim, key="bad", on_error=on_error) as client,
    ):
        seen = []
        with pytest.raises(AuthenticationError) as raised:
            for event in client.iter_messages():
                seen.append(event)
        assert raised.value.status == "auth_failed"
        # The refusal is yielded too, before the error is raised.
        assert [e.get("status") for e in seen] == ["connected", "auth_failed"]
        assert [type(call[1]) for call in on_error.snapshot()] == [AuthenticationError]
        assert thread_names(CLIENT_THREADS) == []
        assert sim.simulator.connections_accepted == 1


# -- closing -------------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_close_stream_before_start() -> None:
    on_close = Recorder()
    client = StreamClient(KEY, "stocks", host="ws://127.0.0.1:9", on_close=on_close)
    client.subscribe_stock_trades(["AAPL"])
    client.close_stream()
    client.close_stream()
    assert on_close.snapshot() == [(client, 1000, "closed by the client")]
    assert thread_names(CLIENT_THREADS) == []
    with pytest.raises(StreamClosedError):
        client.start_stream_thread()
    with pytest.raises(StreamClosedError):
        client.subscribe_stock_quotes(["AAPL"])
    with pytest.raises(StreamClosedError):
        next(client.iter_messages())
    assert thread_names(CLIENT_THREADS) == []


@pytest.mark.timeout(20)
def test_close_stream_twice_while_running(sim: SimulatorThread) -> None:
    on_close = Recorder()
    client = make_client(sim, on_close=on_close)
    client.subscribe_stock_trades(["AAPL"])
    client.start_stream_thread()
    wait_server_topics(sim, {"T.AAPL"})
    assert thread_names(CLIENT_THREADS) == ["polygon-stream-dispatch", "polygon-stream-loop"]
    client.close_stream()
    assert thread_names(CLIENT_THREADS) == []
    client.close_stream()
    with client:
        pass
    assert on_close.snapshot() == [(client, 1000, "closed by the client")]
    sim.wait_for(lambda: not sim.simulator.sessions, 5, "the session to end")


@pytest.mark.timeout(20)
def test_close_stream_from_inside_a_callback(sim: SimulatorThread) -> None:
    on_close = Recorder()
    errors: list[BaseException] = []

    def close_on_first(event: Event) -> None:
        try:
            client.close_stream()
        except BaseException as exc:
            errors.append(exc)

    trades = EventLog(close_on_first)
    client = make_client(sim, on_close=on_close)
    client.subscribe_stock_trades(["AAPL"], handler_function=trades)
    client.start_stream_thread()
    wait_server_topics(sim, {"T.AAPL"})
    publish(sim, [trade(sim, "AAPL", q) for q in range(5)])
    on_close.wait_count(1)
    # The dispatcher cannot join itself: it ends once the callback returns.
    wait_until(lambda: thread_names(CLIENT_THREADS) == [], what="the client's threads to end")
    assert errors == []
    assert on_close.snapshot() == [(client, 1000, "closed by the client")]
    assert on_close.threads == ["polygon-stream-dispatch"]
    sim.wait_for(lambda: not sim.simulator.sessions, 5, "the session to end")
    client.close_stream()
    # Closed from the first event's handler: none of the later events is delivered.
    assert trades.sequence() == [0]


@pytest.mark.timeout(30)
def test_close_stream_does_not_wait_for_events_already_taken_by_the_dispatcher(
    sim: SimulatorThread,
) -> None:
    started = threading.Event()
    work = threading.Event()  # never set: each call takes its full 0.3 s

    def slow(event: Event) -> None:
        started.set()
        work.wait(0.3)

    trades = EventLog(slow)
    client = make_client(sim, call_timeout=2.0)
    client.subscribe_stock_trades(["AAPL"], handler_function=trades)
    client.start_stream_thread()
    wait_server_topics(sim, {"T.AAPL"})
    publish(sim, [trade(sim, "AAPL", q) for q in range(20)])
    assert started.wait(5)
    begun = time.monotonic()
    client.close_stream()
    took = time.monotonic() - begun
    leftover = thread_names(CLIENT_THREADS)
    calls = len(trades.snapshot())
    # Let a leaked dispatcher finish before the thread check of the fixture.
    work.set()
    wait_until(lambda: thread_names(CLIENT_THREADS) == [], timeout=10)
    assert leftover == [], f"close_stream returned after {took:.1f} s leaving {leftover}"
    assert calls == 1, f"{calls} events were handled after close_stream() was called"
    assert took < 1.5


# -- keepalive under a slow consumer -----------------------------------------------------


@pytest.mark.timeout(20)
def test_slow_callback_does_not_stall_keepalive_pings() -> None:
    """A callback far slower than the feed, while the server pings every 0.3 s."""
    slow_seconds = 0.8  # each callback outlasts a ping interval plus its timeout
    release = threading.Event()
    on_message, on_error = Recorder(lambda *_: release.wait(slow_seconds)), Recorder()
    with (
        SimulatorThread(rate=100, batch_size=5, ping_interval=0.3, ping_timeout=0.4) as sim,
        make_client(
            sim, on_message=on_message, on_error=on_error, max_buffered_events=20
        ) as client,
        contextlib.ExitStack() as stack,
    ):
        # Leaving the block sets release first, so close_stream() is not kept waiting.
        stack.callback(release.set)
        client.subscribe_stock_trades(["AAPL", "MSFT"])
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL", "T.MSFT"})
        [session] = sim.call(lambda: sim.simulator.sessions)
        # About 2 s of feed: a few slow callbacks, many server pings.
        wait_until(lambda: client.stats.events_received >= 200, timeout=10)
        on_message.wait_count(3, timeout=10)

        assert sim.call(lambda: [s.id for s in sim.simulator.sessions]) == [session.id]
        assert sim.call(lambda: session.connection.latency) > 0, "no ping was answered"
        assert sim.simulator.connections_accepted == 1
        # The buffer overflows (that is the point): on_error hears of the drops
        # (SlowConsumerWarning), and of nothing else.
        reports = [args[-1] for args in on_error.snapshot()]
        assert all(isinstance(r, SlowConsumerWarning) for r in reports), reports
        assert client.is_connected
        stats = client.stats
        assert stats.connections == 1
        assert stats.reconnects == 0
        assert stats.events_dropped > 0
        assert stats.backlog <= 20 + 5
        assert set(on_message.threads) == {"polygon-stream-dispatch"}


@pytest.mark.timeout(20)
def test_a_subscribe_that_times_out_is_still_recorded_and_sent(sim: SimulatorThread) -> None:
    client = StreamClient(KEY, "stocks", host=sim.url, call_timeout=0.1)
    client.subscribe_stock_trades(["AAPL"])
    client.start_stream_thread()
    wait_until(lambda: client.is_connected, what="connected")
    # Hold the client's event loop hostage so the blocking call times out.
    release = threading.Event()
    client._loop_thread.loop.call_soon_threadsafe(release.wait, 10)
    with pytest.raises(StreamConnectionError, match="recorded"):
        client.subscribe_stock_quotes(["MSFT"])
    release.set()
    sim.wait_for(lambda: "Q.MSFT" in sim.simulator.subscriptions("stocks"), timeout=5)
    assert client.subscriptions == ["T.AAPL", "Q.MSFT"]
    client.close_stream()


@pytest.mark.timeout(20)
def test_a_subscribe_made_on_the_clients_own_loop_thread_is_scheduled(
    sim: SimulatorThread,
) -> None:
    client = StreamClient(KEY, "stocks", host=sim.url)
    client.start_stream_thread()
    wait_until(lambda: client.is_connected, what="connected")
    returned = threading.Event()

    def on_the_loop_thread() -> None:
        # Waiting here for the loop would wait forever: the call must be scheduled.
        client.subscribe_stock_quotes(["MSFT"])
        returned.set()

    client._loop_thread.loop.call_soon_threadsafe(on_the_loop_thread)
    assert returned.wait(5)
    sim.wait_for(lambda: "Q.MSFT" in sim.simulator.subscriptions("stocks"), timeout=5)
    client.close_stream()


@pytest.mark.timeout(20)
def test_with_on_message_or_an_iterator_only_explicit_handlers_run(
    sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    # on_message and iterators already show every event: the logging default
    # handler would only cost time per event.
    caplog.set_level(logging.INFO, logger="polygon.streaming.messages")
    frames: list[str] = []
    quotes: list[Any] = []
    done = threading.Event()

    def on_message(client: StreamClient, message: str) -> None:
        frames.append(message)
        if '"ev":"Q"' in message:
            done.set()

    with StreamClient(KEY, "stocks", host=sim.url, on_message=on_message) as client:
        client.subscribe_stock_trades(["AAPL"])  # no handler of its own
        client.subscribe_stock_quotes(["AAPL"], handler_function=quotes.append)
        client.start_stream_thread()
        sim.wait_for(lambda: len(sim.simulator.subscriptions("stocks")) == 2, timeout=5)
        factory = sim.simulator.factory("stocks")
        sim.call(sim.simulator.publish, "stocks", [factory.make("T", "AAPL")])
        sim.call(sim.simulator.publish, "stocks", [factory.make("Q", "AAPL")])
        assert done.wait(5)
        wait_until(lambda: len(quotes) == 1, what="the explicit quote handler")
    assert "T event" not in caplog.text


def test_backpressure_keeps_the_buffer_within_its_limit_and_loses_nothing(
    sim: SimulatorThread,
) -> None:
    release = threading.Event()
    got: list[int] = []
    backlogs: list[int] = []
    with make_client(sim, max_buffered_events=5, overflow="backpressure") as client:

        def held(event: Event) -> None:
            got.append(event["q"])
            backlogs.append(client.stats.backlog)
            release.wait(10)

        client.subscribe_stock_trades(["AAPL"], handler_function=held)
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})
        publish_frames(sim, [[trade(sim, "AAPL", q)] for q in range(50)])
        wait_until(lambda: client.stats.backlog >= 5, what="a full buffer")
        assert client.stats.backlog == 5  # not one frame more
        release.set()
        wait_until(lambda: len(got) == 50, what="all 50 trades")
        assert got == list(range(50))
        assert max(backlogs) <= 5
        assert client.stats.events_dropped == 0


def test_a_status_between_data_frames_of_one_read_keeps_its_place(sim: SimulatorThread) -> None:
    # Plain data frames of a read are handed over together; a status frame in
    # between hands over those before it first.
    seen: list[object] = []
    with make_client(sim) as client:
        client.change_handler("status", lambda event: seen.append(event["status"]))
        client.subscribe_stock_trades(["AAPL"], handler_function=lambda e: seen.append(e["q"]))
        client.start_stream_thread()
        wait_server_topics(sim, {"T.AAPL"})
        wait_until(lambda: "success" in seen, what="the subscription's acknowledgement")
        seen.clear()

        async def in_one_go() -> None:
            simulator = sim.simulator
            await simulator.publish("stocks", [trade(sim, "AAPL", 1), trade(sim, "AAPL", 2)])
            await simulator.send_status("note", "between")
            await simulator.publish("stocks", [trade(sim, "AAPL", 3)])

        sim.call(in_one_go)
        wait_until(lambda: len(seen) == 4, what="three trades and a status")
        assert seen == [1, 2, "note", 3]
