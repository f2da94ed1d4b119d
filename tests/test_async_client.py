"""AsyncStreamClient against the local simulator: real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from polygon import (
    AsyncStreamClient,
    AuthenticationError,
    ConnectionLostError,
    InvalidSymbolError,
    MaxConnectionsError,
    ReconnectFailedError,
    StreamClosedError,
    StreamCluster,
    StreamConnectionError,
    StreamNotAvailableError,
    StreamServicePrefix,
)
from polygon.streaming._channels import STREAMS, STREAMS_BY_NAME
from polygon.streaming.simulator import MarketSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

KEY = "TEST-KEY-3f9c2a71"
Event = dict[str, Any]


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(rate=0) as simulator:
        yield simulator


def client_for(sim: MarketSimulator, cluster: str = "stocks", **options: Any) -> AsyncStreamClient:
    return AsyncStreamClient(KEY, cluster, host=sim.url, **options)


def sent(sim: MarketSimulator, action: str) -> list[str]:
    """The params of every ``action`` message the server received, in order."""
    return [msg["params"] for _, _, msg in sim.actions if msg.get("action") == action]


def trades(sim: MarketSimulator, symbol: str, first_q: int, count: int) -> list[Event]:
    factory = sim.factory("stocks")
    events = []
    for q in range(first_q, first_q + count):
        event = factory.make("T", symbol)
        event["q"] = q
        events.append(event)
    return events


async def serving(sim: MarketSimulator, *topics: str) -> None:
    """Wait until the server has the subscriptions (a sent request may still be in flight)."""
    await sim.wait_for(lambda: sim.subscriptions("stocks") == set(topics), what=str(topics))


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition with a deadline, yielding to the loop between checks.

    Client counters have no event to wait on, so this polls; the deadline is
    what makes it a test rather than a hope.
    """
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 - polling counters, bounded by the deadline
            await asyncio.sleep(0.005)


async def pump_until(client: AsyncStreamClient, predicate: Callable[[], bool]) -> None:
    """Handle frames one call at a time (the page's own loop) until ``predicate``."""
    with anyio.fail_after(5):
        while not predicate():
            await client.handle_messages()


# -- what goes on the wire ---------------------------------------------------------------

WIRE_SYMBOL = {
    StreamCluster.STOCKS: ("brk.b", "BRK.B"),
    StreamCluster.OPTIONS: ("spy241220p00720000", "O:SPY241220P00720000"),
    StreamCluster.FOREX: ("C:eur/usd", "EUR/USD"),
    StreamCluster.CRYPTO: ("X:btc-usd", "BTC-USD"),
    StreamCluster.INDICES: ("spx", "I:SPX"),
}
EVERY_STREAM_ON_EVERY_CLUSTER = [
    (stream.name, cluster) for stream in STREAMS for cluster in sorted(stream.clusters)
]


@pytest.mark.parametrize(("name", "cluster"), EVERY_STREAM_ON_EVERY_CLUSTER)
async def test_every_method_puts_its_topic_on_the_wire(
    sim: MarketSimulator, name: str, cluster: StreamCluster
) -> None:
    given, on_wire = WIRE_SYMBOL[cluster]
    topic = f"{STREAMS_BY_NAME[name].event_code}.{on_wire}"
    unsubscribes = [f"unsubscribe_{name}"]
    if name == "index_value":
        unsubscribes.append("unsubscribe_indices_value")
    async with client_for(sim, cluster) as client:
        for unsubscribe in unsubscribes:
            await getattr(client, f"subscribe_{name}")([given])
            await sim.wait_for(lambda: topic in sim.subscriptions(cluster), what=topic)
            await getattr(client, unsubscribe)([given])
            await sim.wait_for(lambda: topic not in sim.subscriptions(cluster))
        assert sent(sim, "subscribe") == [topic] * len(unsubscribes)
        assert sent(sim, "unsubscribe") == [topic] * len(unsubscribes)


@pytest.mark.parametrize(
    ("symbols", "options", "params"),
    [
        (None, {}, "T.*"),
        ([], {}, "T.*"),
        (["*"], {}, "T.*"),
        ("all", {}, "T.*"),
        (["aapl", "BRK.B", "aapl"], {}, "T.AAPL,T.BRK.B"),
        (["aapl"], {"force_uppercase_symbols": False}, "T.aapl"),
        ("T.AAPL,Q.msft", {}, "T.AAPL,Q.msft"),
    ],
)
async def test_symbol_forms_on_the_wire(
    sim: MarketSimulator, symbols: Any, options: dict[str, Any], params: str
) -> None:
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(symbols, **options)
        await sim.wait_for(lambda: len(sent(sim, "subscribe")) == 1)
        assert sent(sim, "subscribe") == [params]


@pytest.mark.parametrize("bad", [[""], ["A B"], ["AAPL,MSFT"], [42], ["AAPL", None], 3.5])
async def test_bad_symbols_raise_before_anything_is_sent(sim: MarketSimulator, bad: Any) -> None:
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"])
        with pytest.raises(InvalidSymbolError) as info:
            await client.subscribe_stock_quotes(bad)
        assert isinstance(info.value, ValueError)
        shown = bad if not isinstance(bad, list) else next(s for s in bad if s != "AAPL")
        assert repr(shown) in str(info.value)
        assert client.subscriptions == ["T.AAPL"]
        # Still usable.
        await client.subscribe_stock_quotes(["MSFT"])
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL", "Q.MSFT"})


async def test_a_stream_the_cluster_does_not_serve_is_refused(sim: MarketSimulator) -> None:
    async with client_for(sim) as client:
        with pytest.raises(StreamNotAvailableError, match=r"crypto_trades.*stocks"):
            await client.subscribe_crypto_trades(["BTC-USD"])
        assert client.subscriptions == []
        assert sim.connections_accepted == 0


async def test_subscribing_logs_in_without_a_login_call(sim: MarketSimulator) -> None:
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"])
        assert client.is_connected
        assert next(msg for _, _, msg in sim.actions) == {"action": "auth", "params": KEY}
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})


async def test_login_and_reconnect_methods(sim: MarketSimulator) -> None:
    async with client_for(sim) as client:
        await client.login()
        assert client.is_connected
        await client.subscribe_stock_trades(["AAPL"])
        ok, message = await client.reconnect()
        assert ok, message
        await sim.wait_for(lambda: sim.connections_accepted == 2)
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
        sim.refuse_connections()
        ok, message = await client.reconnect()
        assert not ok
        assert "503" in message


# -- handling events ---------------------------------------------------------------------


async def test_each_call_handles_one_frame_and_routes_by_event_code(sim: MarketSimulator) -> None:
    got: list[tuple[str, Event]] = []

    async def on_quote(event: Event) -> None:
        got.append(("quote", event))

    async with client_for(sim) as client:
        client.change_handler("status", lambda e: got.append(("status", e)))
        await client.subscribe_stock_trades(["AAPL"], lambda e: got.append(("trade", e)))
        await client.subscribe_stock_quotes(["AAPL"], handler_function=on_quote)
        await serving(sim, "T.AAPL", "Q.AAPL")
        factory = sim.factory("stocks")
        frame = [factory.make("T", "AAPL"), factory.make("Q", "AAPL"), factory.make("T", "AAPL")]
        await sim.publish("stocks", frame)
        await pump_until(client, lambda: len([k for k, _ in got if k != "status"]) == 3)
        kinds = [kind for kind, _ in got]
        assert kinds[:2] == ["status", "status"]  # connected, auth_success
        assert [e for k, e in got if k != "status"] == frame
        assert [k for k in kinds if k != "status"] == ["trade", "quote", "trade"]


async def test_unknown_event_codes_go_to_the_default_handler(
    sim: MarketSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # The default handler prints, as documented.
    printed: list[str] = []

    def seen() -> bool:
        printed.append(capsys.readouterr().out)
        return "'ev': 'ZZZ'" in "".join(printed)

    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"])
        await sim.send_raw('[{"ev":"ZZZ","sym":"AAPL","x":1}]')
        await pump_until(client, seen)
        assert client.stats.handler_errors == 0


async def test_change_handler_takes_effect_while_running(sim: MarketSimulator) -> None:
    first: list[Event] = []
    second: list[Event] = []
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"], first.append)
        task = asyncio.create_task(client.handle_messages(reconnect=True))
        await serving(sim, "T.AAPL")
        await sim.publish("stocks", trades(sim, "AAPL", 1, 1))
        await until(lambda: len(first) == 1)
        client.change_handler(StreamServicePrefix.STOCK_TRADES, second.append)
        await sim.publish("stocks", trades(sim, "AAPL", 2, 1))
        await until(lambda: len(second) == 1)
        assert [e["q"] for e in first] == [1]
        assert [e["q"] for e in second] == [2]
        await client.close_stream()
        await task


async def test_a_raising_handler_is_logged_and_the_stream_goes_on(
    sim: MarketSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    quotes: list[Event] = []

    def boom(event: Event) -> None:
        raise RuntimeError("handler exploded")

    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"], boom)
        await client.subscribe_stock_quotes(["AAPL"], quotes.append)
        await serving(sim, "T.AAPL", "Q.AAPL")
        factory = sim.factory("stocks")
        make = factory.make
        await sim.publish(
            "stocks", [make("T", "AAPL"), make("Q", "AAPL"), make("T", "AAPL"), make("Q", "AAPL")]
        )
        await pump_until(client, lambda: len(quotes) == 2)
        assert client.stats.handler_errors == 2
        assert "handler exploded" in caplog.text
        assert "Traceback" in caplog.text


async def test_bad_frames_are_counted_and_never_fatal(sim: MarketSimulator) -> None:
    got: list[Event] = []
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"], got.append)
        task = asyncio.create_task(client.handle_messages(reconnect=True))
        await serving(sim, "T.AAPL")
        await sim.send_raw("this is not json")
        await sim.send_raw(b"\x00\x01binary")
        await sim.send_raw('"a string, not a list"')
        await sim.send_raw('[1, {"no_ev": true}]')
        await sim.send_raw('{"ev":"T","sym":"AAPL","q":1}')
        await sim.publish("stocks", trades(sim, "AAPL", 2, 1))
        await until(lambda: [e["q"] for e in got] == [1, 2])
        stats = client.stats
        assert (stats.decode_errors, stats.bad_frames, stats.bad_events) == (1, 2, 2)
        assert stats.connections == 1
        assert client.is_connected
        await client.close_stream()
        await task


async def test_slow_async_handlers_do_not_stall_the_reader(sim: MarketSimulator) -> None:
    release = asyncio.Event()
    running = 0
    most_at_once = 0
    handled: list[int] = []

    async def slow(event: Event) -> None:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        await release.wait()
        handled.append(event["q"])
        running -= 1

    async with client_for(sim, ping_interval=0.1, ping_timeout=0.2) as client:
        await client.subscribe_stock_trades(["AAPL"], slow)
        task = asyncio.create_task(client.handle_messages(reconnect=True))
        await serving(sim, "T.AAPL")
        for q in range(20):
            await sim.publish("stocks", trades(sim, "AAPL", q, 1))
        # The reader keeps receiving while the first handler waits...
        await until(lambda: client.stats.events_received >= 20 + 3)
        # ...and keepalive goes on: wait through several ping intervals.
        await anyio.sleep(0.6)
        assert client.is_connected
        assert client.stats.connections == 1
        release.set()
        await until(lambda: len(handled) == 20)
        assert handled == list(range(20))
        assert most_at_once == 1
        await client.close_stream()
        await task


# -- losing the connection ---------------------------------------------------------------


async def test_no_event_is_lost_or_reordered_across_a_disconnect(sim: MarketSimulator) -> None:
    got: list[int] = []
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"], lambda e: got.append(e["q"]))
        await serving(sim, "T.AAPL")
        for start in range(0, 5000, 100):
            await sim.publish("stocks", trades(sim, "AAPL", start, 100))
        # Received (buffered), not yet handled, when the connection drops.
        await until(lambda: client.stats.events_received >= 5000)
        sim.drop_connections()
        with pytest.raises(ConnectionLostError), anyio.fail_after(10):
            while True:
                await client.handle_messages()
        assert got == list(range(5000))
        # The next call connects again and the subscription is sent again.
        await client.handle_messages()
        await serving(sim, "T.AAPL")
        for start in range(5000, 10000, 100):
            await sim.publish("stocks", trades(sim, "AAPL", start, 100))
        await pump_until(client, lambda: len(got) == 10000)
        assert got == list(range(10000))
        assert client.stats.events_dropped == 0


async def test_reconnect_restores_subscriptions_changed_while_disconnected(
    sim: MarketSimulator,
) -> None:
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"])
        await client.subscribe_stock_quotes(["AAPL"])
        task = asyncio.create_task(client.handle_messages(reconnect=True, reconnection_delay=0.05))
        sim.refuse_connections()
        sim.drop_connections()
        await until(lambda: client.stats.failed_attempts >= 1)
        # Backing off: these only record the change.
        with anyio.fail_after(1):
            await client.subscribe_stock_trades(["MSFT"])
            await client.unsubscribe_stock_trades(["AAPL"])
        assert client.subscriptions == ["Q.AAPL", "T.MSFT"]
        first_session_subscribes = len(sent(sim, "subscribe"))
        sim.refuse_connections(False)
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"Q.AAPL", "T.MSFT"})
        # The new connection got the whole desired set once, nothing else.
        assert sent(sim, "subscribe")[first_session_subscribes:] == ["Q.AAPL,T.MSFT"]
        assert client.stats.reconnects == 1
        await client.close_stream()
        await task


async def test_gives_up_after_the_attempt_limit(sim: MarketSimulator) -> None:
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"])
        sim.refuse_connections()
        sim.drop_connections()
        with pytest.raises(ReconnectFailedError) as info:
            await client.handle_messages(
                reconnect=True, max_reconnection_attempts=3, reconnection_delay=0.01
            )
        assert info.value.attempts == 3
        assert isinstance(info.value, StreamConnectionError)
        assert client.stats.failed_attempts == 3


async def test_the_attempt_count_starts_over_after_a_successful_login(
    sim: MarketSimulator,
) -> None:
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"])
        task = asyncio.create_task(
            client.handle_messages(
                reconnect=True, max_reconnection_attempts=3, reconnection_delay=0.01
            )
        )
        for round_ in range(1, 4):
            sim.refuse_connections()
            sim.drop_connections()
            await until(lambda r=round_: client.stats.failed_attempts >= 2 * r)  # type: ignore[misc]
            sim.refuse_connections(False)
            await until(lambda r=round_: client.stats.connections == r + 1)  # type: ignore[misc]
        assert not task.done()
        await client.close_stream()
        await task


async def test_auth_failure_raises_at_once_and_is_never_retried() -> None:
    async with MarketSimulator(rate=0, valid_keys={"the-right-key"}) as strict:
        client = AsyncStreamClient(KEY, "stocks", host=strict.url)
        with pytest.raises(AuthenticationError) as info:
            await client.handle_messages(reconnect=True, reconnection_delay=0.01)
        assert info.value.status == "auth_failed"
        assert isinstance(info.value, PermissionError)
        assert strict.connections_accepted == 1
        with pytest.raises(AuthenticationError):
            await client.subscribe_stock_trades(["AAPL"])
        await client.close_stream()


async def test_an_evicted_client_stops_instead_of_fighting(sim: MarketSimulator) -> None:
    first = client_for(sim)
    second = client_for(sim)
    await first.subscribe_stock_trades(["AAPL"])
    task = asyncio.create_task(first.handle_messages(reconnect=True, reconnection_delay=0.01))
    await second.subscribe_stock_trades(["MSFT"])
    with pytest.raises(MaxConnectionsError) as info, anyio.fail_after(5):
        await task
    assert info.value.status == "max_connections"
    assert second.is_connected
    assert sim.connections_accepted == 2
    assert sim.subscriptions("stocks") == {"T.MSFT"}
    await first.close_stream()
    await second.close_stream()


async def test_reconnecting_on_eviction_is_opt_in(sim: MarketSimulator) -> None:
    first = client_for(sim, reconnect_on_eviction=True)
    second = client_for(sim)
    await first.subscribe_stock_trades(["AAPL"])
    task = asyncio.create_task(first.handle_messages(reconnect=True, reconnection_delay=0.01))
    await second.subscribe_stock_trades(["MSFT"])
    await until(lambda: first.stats.connections == 2)
    await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
    await first.close_stream()
    await second.close_stream()
    await task


@pytest.mark.parametrize("status", ["force_disconnect", "slow_consumer"])
async def test_server_disconnect_statuses_reconnect(sim: MarketSimulator, status: str) -> None:
    statuses: list[str] = []
    async with client_for(sim) as client:
        client.change_handler("status", lambda e: statuses.append(e["status"]))
        await client.subscribe_stock_trades(["AAPL"])
        task = asyncio.create_task(client.handle_messages(reconnect=True, reconnection_delay=0.01))
        await sim.send_status(status, "go away", close_code=1008)
        await until(lambda: client.stats.connections == 2)
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
        assert status in statuses
        await client.close_stream()
        await task


# -- closing -----------------------------------------------------------------------------


async def test_close_stream_ends_the_loop_from_another_coroutine(sim: MarketSimulator) -> None:
    client = client_for(sim)
    await client.subscribe_stock_trades(["AAPL"])
    task = asyncio.create_task(client.handle_messages(reconnect=True))
    await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
    await client.close_stream()
    with anyio.fail_after(5):
        await task
    await sim.wait_for(lambda: not sim.sessions)
    await client.close_stream()  # idempotent
    with pytest.raises(StreamClosedError):
        await client.handle_messages()
    with pytest.raises(StreamClosedError):
        await client.subscribe_stock_quotes(["AAPL"])


async def test_close_stream_from_a_handler(sim: MarketSimulator) -> None:
    client = client_for(sim)

    async def close_on_first(event: Event) -> None:
        await client.close_stream()

    await client.subscribe_stock_trades(["AAPL"], close_on_first)
    task = asyncio.create_task(client.handle_messages(reconnect=True))
    await serving(sim, "T.AAPL")
    await sim.publish("stocks", trades(sim, "AAPL", 1, 3))
    with anyio.fail_after(5):
        await task
    assert not client.is_connected


async def test_close_while_backing_off_and_before_connecting(sim: MarketSimulator) -> None:
    never_connected = client_for(sim)
    await never_connected.close_stream()
    client = client_for(sim)
    sim.refuse_connections()
    task = asyncio.create_task(client.handle_messages(reconnect=True, reconnection_delay=30))
    await until(lambda: client.stats.failed_attempts == 1)
    await client.close_stream()
    with anyio.fail_after(2):
        await task


# -- the API key -------------------------------------------------------------------------


async def test_the_key_never_appears_in_logs_repr_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with MarketSimulator(rate=0, valid_keys={"the-right-key"}) as strict:
        client = AsyncStreamClient(KEY, "stocks", host=strict.url)
        with pytest.raises(AuthenticationError) as info:
            await client.subscribe_stock_trades(["AAPL"])
        await client.close_stream()
    # The auth frame was logged by websockets (so redaction had work to do).
    assert '"action":"auth"' in caplog.text
    assert KEY not in caplog.text
    assert KEY[:12] not in caplog.text
    assert KEY not in repr(client)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)


async def test_the_key_is_read_from_the_environment(
    sim: MarketSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.setenv("MASSIVE_API_KEY", "from-massive-env")
    async with AsyncStreamClient(None, "stocks", host=sim.url) as client:
        await client.login()
    assert next(msg for _, _, msg in sim.actions)["params"] == "from-massive-env"


async def test_a_second_concurrent_consumer_is_refused(sim: MarketSimulator) -> None:
    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"])
        first = asyncio.create_task(client.handle_messages(reconnect=True))
        await serving(sim, "T.AAPL")
        await until(lambda: client.stats.events_received >= 3 and client.stats.backlog == 0)
        with pytest.raises(RuntimeError, match="already running"):
            await client.handle_messages()
        assert not first.done()
        await client.close_stream()
        await first


async def test_order_holds_while_handlers_switch_between_sync_and_async(
    sim: MarketSimulator,
) -> None:
    # Plain handlers may run straight from the reader while the loop is idle;
    # async ones are queued. Switching between them must never reorder events.
    got: list[int] = []
    done = asyncio.Event()

    def record(event: Event) -> None:
        got.append(event["q"])
        if len(got) == 3000:
            done.set()

    async def record_async(event: Event) -> None:
        record(event)

    async with client_for(sim) as client:
        await client.subscribe_stock_trades(["AAPL"], record)
        task = asyncio.create_task(client.handle_messages(reconnect=True))
        await serving(sim, "T.AAPL")
        for block, handler in enumerate([record, record_async, record]):
            client.change_handler("T", handler)
            for start in range(block * 1000, (block + 1) * 1000, 100):
                await sim.publish("stocks", trades(sim, "AAPL", start, 100))
        with anyio.fail_after(10):
            await done.wait()
        assert got == list(range(3000))
        assert client.stats.events_dropped == 0
        await client.close_stream()
        await task


async def test_backpressure_keeps_the_buffer_within_its_limit_and_loses_nothing(
    sim: MarketSimulator,
) -> None:
    # The reader stops taking frames the moment the buffer is full, even frames
    # of the read in progress, and takes the rest, in order, once there is room.
    release = asyncio.Event()
    got: list[int] = []
    backlogs: list[int] = []
    async with client_for(sim, max_buffered_events=5, overflow="backpressure") as client:

        async def held(event: Event) -> None:
            got.append(event["q"])
            backlogs.append(client.stats.backlog)
            await release.wait()

        await client.subscribe_stock_trades(["AAPL"], held)
        task = asyncio.create_task(client.handle_messages(reconnect=True))
        await serving(sim, "T.AAPL")
        for q in range(50):
            await sim.publish("stocks", trades(sim, "AAPL", q, 1))
        await until(lambda: client.stats.backlog >= 5)
        assert client.stats.backlog == 5  # not one frame more
        release.set()
        await until(lambda: len(got) == 50)
        assert got == list(range(50))
        assert max(backlogs) <= 5
        assert client.stats.events_dropped == 0
        await client.close_stream()
        await task
