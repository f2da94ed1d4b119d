"""Coming from the older library: the asyncio page's usages, run against the simulator.

Written in our own words after the reference page, the older library's README
and its streaming test-suite: scripts construct the client positionally, await
``change_handler``, pass handlers positionally, loop on ``handle_messages()``,
and so on. Only ``host=`` (the simulator's URL) is added.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

import polygon
from polygon import (
    AsyncStreamClient,
    AuthenticationError,
    InvalidSymbolError,
    StreamClosedError,
    StreamNotAvailableError,
)
from polygon.streaming import async_streaming
from polygon.streaming.simulator import MarketSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(40)]

KEY = "MIGRATION-KEY"
Event = dict[str, Any]


@pytest.fixture
async def live() -> AsyncIterator[MarketSimulator]:
    """A simulator generating data for whatever is subscribed.

    Market time runs 30 times the wall clock, so a minute bar (the indices step
    waits for one) closes every two seconds; the rate is per market second.
    """
    async with MarketSimulator(rate=10, batch_size=5, speed=30) as simulator:
        yield simulator


@pytest.fixture
async def quiet() -> AsyncIterator[MarketSimulator]:
    """A simulator that sends only what a test publishes."""
    async with MarketSimulator(rate=0) as simulator:
        yield simulator


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 - a condition with a deadline
            await asyncio.sleep(0.005)


class LastEvent:
    """The handler of the older suite: remembers the code of the last event."""

    def __init__(self) -> None:
        self.state: str | None = None
        self.seen: list[str] = []
        self.statuses: list[str] = []

    async def __call__(self, msg: Event) -> None:
        self.state = msg["ev"]
        self.seen.append(msg["ev"])
        if msg["ev"] == "status":
            self.statuses.append(str(msg.get("message")))


async def handle_forever(streamer: AsyncStreamClient) -> None:
    """The older suite's loop, run as a task with ``asyncio.ensure_future``."""
    while 1:
        await streamer.handle_messages()


# Per cluster, what the older suite subscribes to: (subscribe, unsubscribe, symbols, code).
SUITE_STEPS = {
    "stocks": [
        ("subscribe_stock_trades", "unsubscribe_stock_trades", ["AMD", "NVDA", "TSLA"], "T"),
        ("subscribe_stock_quotes", "unsubscribe_stock_quotes", ["AMD", "NVDA"], "Q"),
        ("subscribe_stock_second_aggregates", "unsubscribe_stock_second_aggregates", None, "A"),
    ],
    "options": [
        ("subscribe_option_trades", "unsubscribe_option_trades", None, "T"),
        ("subscribe_option_quotes", "unsubscribe_option_quotes", None, "Q"),
        ("subscribe_option_second_aggregates", "unsubscribe_option_second_aggregates", None, "A"),
    ],
    "forex": [
        ("subscribe_forex_quotes", "unsubscribe_forex_quotes", ["EUR/USD", "C:USD/JPY"], "C"),
    ],
    "crypto": [
        ("subscribe_crypto_trades", "unsubscribe_crypto_trades", ["BTC-USD", "X:ETH-USD"], "XT"),
        ("subscribe_crypto_quotes", "unsubscribe_crypto_quotes", ["BTC-USD", "X:ETH-USD"], "XQ"),
        ("subscribe_crypto_level2_book", "unsubscribe_crypto_level2_book", None, "XL2"),
    ],
    "indices": [
        ("subscribe_index_value", "unsubscribe_indices_value", ["SPX"], "V"),
        (
            "subscribe_indices_minute_aggregates",
            "unsubscribe_indices_minute_aggregates",
            None,
            "AM",
        ),
    ],
}


@pytest.mark.parametrize("cluster", list(SUITE_STEPS))
async def test_the_older_suite_flow_on_every_cluster(live: MarketSimulator, cluster: str) -> None:
    handler = LastEvent()
    streamer = polygon.AsyncStreamClient(KEY, cluster, live.url)
    await streamer.change_handler("status", handler)
    first = True
    task: asyncio.Future[None] | None = None
    for subscribe, unsubscribe, symbols, code in SUITE_STEPS[cluster]:
        # The handler goes second, positionally, as the page and the suite pass it.
        await getattr(streamer, subscribe)(symbols, handler)
        if first:
            task = asyncio.ensure_future(handle_forever(streamer))
            first = False
        await until(lambda code=code: handler.state == code)
        acks = len([s for s in handler.statuses if s.startswith("unsubscribed")])
        await getattr(streamer, unsubscribe)(symbols)
        # Once the acknowledgement is handled, no more events of that stream come.
        await until(lambda acks=acks: len([s for s in handler.statuses if "unsub" in s]) > acks)
        assert handler.state == "status"
    await streamer.close_stream()
    assert task is not None
    with anyio.fail_after(5):
        # The loop's next call raises StreamClosedError, which ends it.
        with pytest.raises(StreamClosedError):
            await task


async def test_change_handler_works_awaited_or_not_and_never_warns(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    first: list[Event] = []
    second: list[Event] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client.change_handler("T", first.append)  # not awaited: takes effect now
        assert client._handlers.get("T") == first.append
        result = await client.change_handler("T", second.append)
        assert result is None
        del result
        gc.collect()
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []
    await client.subscribe_stock_trades(["AAPL"])
    await quiet.wait_for(lambda: quiet.subscriptions("stocks") == {"T.AAPL"})
    await quiet.publish("stocks", [quiet.factory("stocks").make("T", "AAPL")])
    with anyio.fail_after(5):
        while not second:
            await client.handle_messages()
    assert first == []
    await client.close_stream()


async def test_readme_loop_with_a_handler_given_positionally(live: MarketSimulator) -> None:
    received: list[Event] = []

    async def stock_trades_handler(msg: Event) -> None:
        received.append(msg)

    stream_client = polygon.AsyncStreamClient(KEY, polygon.StreamCluster.STOCKS, live.url)
    await stream_client.subscribe_stock_trades(["AMD", "NVDA"], stock_trades_handler)
    with anyio.fail_after(10):
        while len(received) < 5:
            await stream_client.handle_messages()
    assert {e["sym"] for e in received} <= {"AMD", "NVDA"}
    await stream_client.close_stream()


async def test_the_default_handler_prints_what_arrives(
    quiet: MarketSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    await client.subscribe_stock_trades(["AMD"])  # no handler: the default prints
    await quiet.wait_for(lambda: quiet.subscriptions("stocks") == {"T.AMD"})
    trade = quiet.factory("stocks").make("T", "AMD")
    await quiet.publish("stocks", [trade])
    out: list[str] = []
    with anyio.fail_after(5):
        while repr(trade) not in "".join(out):
            await client.handle_messages()
            out.append(capsys.readouterr().out)
    assert "'status'" not in "".join(out)  # status events are logged, not printed
    await client.close_stream()


@pytest.mark.parametrize("unlimited", [False, None])
async def test_reconnect_loop_with_no_attempt_limit(live: MarketSimulator, unlimited: Any) -> None:
    handler = LastEvent()
    client = AsyncStreamClient(KEY, "crypto", live.url)
    await client.subscribe_crypto_trades(["BTC-USD"], handler)
    loop = asyncio.ensure_future(
        client.handle_messages(reconnect=True, max_reconnection_attempts=unlimited)
    )
    await until(lambda: handler.state == "XT")
    live.drop_connections()
    await live.wait_for(lambda: live.connections_accepted == 2, timeout=15)
    seen = len(handler.seen)
    await until(lambda: len(handler.seen) > seen + 3)
    await client.close_stream()
    with anyio.fail_after(5):
        assert await loop is None


async def test_a_reconnect_loop_closed_before_it_started_returns_none(
    quiet: MarketSimulator,
) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    await client.subscribe_stock_trades(["AAPL"])
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True))
    await client.close_stream()  # the task has not run a single step yet
    with anyio.fail_after(5):
        assert await loop is None


async def test_a_reconnect_loop_closed_while_running_returns_none(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    await client.subscribe_stock_trades(["AAPL"])
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True))
    await until(lambda: client._engine.supervised)
    await client.close_stream()
    with anyio.fail_after(5):
        assert await loop is None


@pytest.mark.parametrize("off", [0, None])
async def test_ping_interval_and_timeout_zero_or_none(quiet: MarketSimulator, off: Any) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url, ping_interval=off, ping_timeout=off)
    got: list[Event] = []
    await client.subscribe_stock_trades(["AAPL"], got.append)
    await quiet.wait_for(lambda: quiet.subscriptions("stocks") == {"T.AAPL"})
    await quiet.publish("stocks", [quiet.factory("stocks").make("T", "AAPL")])
    with anyio.fail_after(5):
        while not got:
            await client.handle_messages()
    await client.close_stream()


async def test_login_with_the_older_keyword(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient("FIRST-KEY", "stocks", quiet.url)
    await client.login(key="SECOND-KEY")
    assert client.is_connected
    keys = [msg["params"] for _, _, msg in quiet.actions if msg.get("action") == "auth"]
    assert keys == ["SECOND-KEY"]
    await client.close_stream()


def test_module_constants_and_ensure_prefix() -> None:
    assert async_streaming.HOST == "socket.polygon.io"
    assert async_streaming.DELAYED_HOST == "delayed.polygon.io"
    ensure_prefix = async_streaming.ensure_prefix
    assert ensure_prefix("tsla120110c00123000") == "O:TSLA120110C00123000"
    assert ensure_prefix("O:tSLa120110P00123000") == "O:TSLA120110P00123000"
    assert ensure_prefix("eur/usd", _prefix="C:") == "C:EUR/USD"
    assert ensure_prefix("C:EuR/uSD", _prefix="C:") == "C:EUR/USD"
    assert ensure_prefix("X:btc-usd", _prefix="X:") == "X:BTC-USD"
    assert ensure_prefix("*") == "*"


# -- async iteration ------------------------------------------------------------------------


async def test_async_for_starts_the_stream_and_ends_at_close(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    explicit: list[Event] = []
    await client.subscribe_stock_quotes(["AAPL"], explicit.append)
    await client.subscribe_stock_trades(["AAPL"])
    events: list[Event] = []

    async def consume() -> None:
        async for event in client.iter_messages(include_status=False):
            events.append(event)

    consumer = asyncio.ensure_future(consume())
    await quiet.wait_for(lambda: len(quiet.subscriptions("stocks")) == 2)
    factory = quiet.factory("stocks")
    frame = [factory.make("T", "AAPL"), factory.make("Q", "AAPL")]
    await quiet.publish("stocks", frame)
    await until(lambda: len(events) == 2)
    assert events == frame
    assert explicit == [frame[1]]  # handlers keep running beside the iterator
    await client.close_stream()
    with anyio.fail_after(5):
        await consumer  # ended, without an error


async def test_break_keeps_the_rest_of_the_frame_for_the_next_loop(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    await client.subscribe_stock_trades(["AAPL"])
    await quiet.wait_for(lambda: quiet.subscriptions("stocks") == {"T.AAPL"})
    frame = [quiet.factory("stocks").make("T", "AAPL") for _ in range(5)]
    await quiet.publish("stocks", frame)
    got: list[Event] = []
    with anyio.fail_after(5):
        async for event in client.iter_messages(include_status=False):
            got.append(event)
            if len(got) == 2:
                break
        async for event in client.iter_messages(include_status=False):
            got.append(event)
            if len(got) == 5:
                break
    assert got == frame
    await client.close_stream()


async def test_iter_batches_gives_whole_frames(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    await client.subscribe_stock_trades(["AAPL"])
    await quiet.wait_for(lambda: quiet.subscriptions("stocks") == {"T.AAPL"})
    frames = [[quiet.factory("stocks").make("T", "AAPL") for _ in range(n)] for n in (3, 1)]
    for frame in frames:
        await quiet.publish("stocks", frame)
    got: list[list[Event]] = []
    with anyio.fail_after(5):
        async for batch in client.iter_batches(include_status=False):
            got.append(list(batch))
            if len(got) == 2:
                break
    assert got == frames
    await client.close_stream()


async def test_async_iteration_raises_the_error_that_stopped_the_stream() -> None:
    async with MarketSimulator(rate=0, valid_keys={"GOOD"}) as sim:
        client = AsyncStreamClient("BAD", "stocks", sim.url)
        with anyio.fail_after(10), pytest.raises(AuthenticationError):
            async for _ in client.iter_messages():
                pass
        await client.close_stream()


async def test_one_task_at_a_time_reads_the_stream_directly(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    await client.subscribe_stock_trades(["AAPL"])
    first = client.iter_messages(include_status=False)
    reader = asyncio.ensure_future(first.__anext__())
    await until(lambda: client._buffer._consumer is not None)
    with pytest.raises(RuntimeError, match="one task only"):
        await client.iter_messages().__anext__()
    with pytest.raises(RuntimeError, match="one task only"):
        await client.handle_messages()
    await client.close_stream()
    with anyio.fail_after(5), pytest.raises(StopAsyncIteration):
        await reader


async def test_iterating_beside_the_reconnect_loop_gets_a_copy(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    handled: list[Event] = []
    await client.subscribe_stock_trades(["AAPL"], handled.append)
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True))
    await until(lambda: client._taps.active)
    copies: list[Event] = []

    async def consume() -> None:
        async for event in client.iter_messages(include_status=False):
            copies.append(event)

    consumer = asyncio.ensure_future(consume())
    await until(lambda: bool(client._taps))
    frame = [quiet.factory("stocks").make("T", "AAPL") for _ in range(3)]
    await quiet.publish("stocks", frame)
    await until(lambda: len(copies) == 3 and len(handled) == 3)
    assert copies == handled == frame
    await client.close_stream()
    with anyio.fail_after(5):
        assert await loop is None
        await consumer


# -- handler concurrency ---------------------------------------------------------------------


async def test_handler_concurrency_runs_n_at_once_and_keeps_order_per_symbol(
    quiet: MarketSimulator,
) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url, handler_concurrency=3)
    running = 0
    most = 0
    order: dict[str, list[int]] = {}
    release = asyncio.Event()

    async def slow(event: Event) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        order.setdefault(event["sym"], []).append(event["q"])
        running -= 1

    await client.subscribe_stock_trades(["AAPL", "MSFT", "NVDA", "AMD"], slow)
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True))
    await quiet.wait_for(lambda: len(quiet.subscriptions("stocks")) == 4)
    factory = quiet.factory("stocks")
    events = []
    for q in range(20):
        event = factory.make("T", ["AAPL", "MSFT", "NVDA", "AMD"][q % 4])
        event["q"] = q
        events.append(event)
    await quiet.publish("stocks", events)
    await until(lambda: running == 3)
    assert most == 3  # never more than N at once, though four symbols wait
    release.set()
    await until(lambda: sum(map(len, order.values())) == 20)
    assert most == 3
    for symbol, seen in order.items():
        assert seen == [e["q"] for e in events if e["sym"] == symbol]
    await client.close_stream()
    with anyio.fail_after(5):
        assert await loop is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_handler_concurrency_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(polygon.ConfigurationError, match="handler_concurrency"):
        AsyncStreamClient(KEY, "stocks", handler_concurrency=bad)


# -- deliberate differences (docs/migration.rst) -----------------------------------------------


async def test_deliberate_differences(quiet: MarketSimulator) -> None:
    client = AsyncStreamClient(KEY, "stocks", quiet.url)
    with pytest.raises(StreamNotAvailableError):
        await client.subscribe_crypto_trades(["BTC-USD"])
    with pytest.raises(InvalidSymbolError, match="'AAPL'"):
        await client.subscribe_stock_trades("AAPL")
    mine: list[Event] = []
    await client.subscribe_stock_trades(["AAPL"], mine.append)
    await client.subscribe_stock_trades(["MSFT"])  # no handler: the earlier one stays
    assert client._handlers.get("T") == mine.append
    await client.close_stream()
