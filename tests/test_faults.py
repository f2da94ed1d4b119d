"""The fault matrix: each fault is one test body, run for both clients.

What every fault must leave true (see ``docs/reliability.rst``):

- the client recovers, or stops with the documented typed error;
- the server ends up with exactly the topics the user asked for, each subscribed once
  per connection (no missing topic, no duplicate subscribe);
- every event the client *received* before the fault is delivered exactly once, in
  order (the tests hold the handler so that events are still buffered when it strikes);
- nothing leaks: no live session on the server, no client task or thread, open file
  descriptors back to where they were.

The simulator runs on the test's loop; :mod:`_harness` puts either client behind one
interface. Shared waits are conditions with deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from _harness import (
    CLIENT_KINDS,
    KEY,
    Adapter,
    Baseline,
    Options,
    assert_no_leaks,
    client_threads,
    duplicate_subscribes,
    live_sessions,
    make_adapter,
    publish_trades,
    serving,
    subscribe_requests,
    until,
)
from websockets.asyncio.client import connect

from polygon import StreamClient
from polygon.streaming.errors import (
    AuthenticationError,
    ConnectionLostError,
    MaxConnectionsError,
    ReconnectFailedError,
    ServerDisconnectError,
    ServerStatusError,
    StreamClosedError,
)
from polygon.streaming.simulator import MarketSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

ENGINE_LOGGER = "polygon.streaming.engine"
# Scheduling slack on a loaded two-core machine, for the few timing assertions.
SLACK = 0.35
MAX_CONNECTIONS_MESSAGE = "Maximum number of websocket connections exceeded."


@pytest.fixture(params=CLIENT_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(rate=0) as simulator:
        yield simulator


MakeClient = Callable[..., Adapter]


@pytest.fixture
async def clients(kind: str) -> AsyncIterator[MakeClient]:
    """Makes clients of the test's kind; closes any a failed test left open."""
    made: list[Adapter] = []

    def make(sim: MarketSimulator, options: Options | None = None) -> Adapter:
        adapter = make_adapter(kind, sim, options)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(adapter.close(), 10)


async def failure_times(adapter: Adapter, count: int, within: float = 10.0) -> list[float]:
    """The moments the failed-attempt counter reached 1, 2, ... ``count`` (polled at 2 ms)."""
    seen = adapter.stats.failed_attempts
    times: list[float] = []
    deadline = time.monotonic() + within
    while len(times) < count:
        now = adapter.stats.failed_attempts
        if now > seen:
            times.extend([time.monotonic()] * (now - seen))
            seen = now
            continue
        assert time.monotonic() < deadline, f"only {len(times)} failed attempts in {within} s"
        await asyncio.sleep(0.002)
    return times[:count]


def warnings_from_engine(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == ENGINE_LOGGER and r.levelno == logging.WARNING
    ]


# -- faults the client recovers from --------------------------------------------------------

Inject = Callable[[MarketSimulator], Awaitable[object]]
Heal = Callable[[MarketSimulator, Adapter, float], Awaitable[None]]


@dataclass(frozen=True)
class Recoverable:
    """A fault the client must get over by itself."""

    name: str
    inject: Inject
    # Waits until the client noticed, then ends the fault (for faults that last).
    heal: Heal | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # What StreamClient's on_error gets for the lost connection, and its close code.
    reported: type[BaseException] = ConnectionLostError
    code: int | None = None
    # The status event the user's status handler must get.
    status: str | None = None


async def drop_between_frames(sim: MarketSimulator) -> None:
    assert sim.drop_connections() == 1


async def drop_mid_frame(sim: MarketSimulator) -> None:
    assert await sim.drop_mid_frame() == 1


def close_with(code: int) -> Inject:
    async def inject(sim: MarketSimulator) -> None:
        assert await sim.close_connections(code, f"closing with {code}") == 1

    return inject


def status_then_close(status: str, message: str) -> Inject:
    async def inject(sim: MarketSimulator) -> None:
        assert await sim.send_status(status, message, close_code=1008) == 1

    return inject


OVERSIZE_LIMIT = 64 * 1024


async def frame_over_max_message_size(sim: MarketSimulator) -> None:
    assert await sim.send_raw('["' + "x" * (2 * OVERSIZE_LIMIT) + '"]') == 1


PING_INTERVAL = 0.3
PING_TIMEOUT = 0.3


async def stall(sim: MarketSimulator) -> None:
    sim.stall()


async def notice_the_stall(sim: MarketSimulator, adapter: Adapter, injected: float) -> None:
    await until(lambda: adapter.stats.reconnects >= 1, 5, "the client to notice the stall")
    noticed = time.monotonic() - injected
    sim.stall(False)
    assert noticed <= PING_INTERVAL + PING_TIMEOUT + SLACK, f"noticed after {noticed:.2f} s"


OPEN_TIMEOUT = 0.4


async def hang_handshakes(sim: MarketSimulator) -> None:
    sim.hang_handshakes()
    assert sim.drop_connections() == 1


async def answer_after_two_timeouts(sim: MarketSimulator, adapter: Adapter, _: float) -> None:
    first, second = await failure_times(adapter, 2)
    sim.hang_handshakes(False)
    # Each attempt waited for the open timeout, and no longer than it plus a backoff.
    assert second - first >= OPEN_TIMEOUT
    assert second - first <= OPEN_TIMEOUT + 0.1 * 1.25 + SLACK


async def refuse(sim: MarketSimulator) -> None:
    sim.refuse_connections()
    assert sim.drop_connections() == 1


async def accept_after_two_refusals(sim: MarketSimulator, adapter: Adapter, _: float) -> None:
    await failure_times(adapter, 2)
    sim.refuse_connections(False)


CLOSE_CODES = (1000, 1001, 1008, 1011)

RECOVERABLE = [
    Recoverable("tcp_drop_between_frames", drop_between_frames),
    Recoverable("tcp_drop_mid_frame", drop_mid_frame),
    *[Recoverable(f"server_close_{code}", close_with(code), code=code) for code in CLOSE_CODES],
    Recoverable(
        "force_disconnect",
        status_then_close("force_disconnect", "disconnected by the server"),
        reported=ServerDisconnectError,
        status="force_disconnect",
    ),
    Recoverable(
        "slow_consumer",
        status_then_close("slow_consumer", "client is reading too slowly"),
        reported=ServerDisconnectError,
        status="slow_consumer",
    ),
    Recoverable(
        "max_connections_with_reconnect_on_eviction",
        status_then_close("max_connections", MAX_CONNECTIONS_MESSAGE),
        options={"reconnect_on_eviction": True},
        reported=MaxConnectionsError,
        status="max_connections",
    ),
    Recoverable(
        "frame_over_max_message_size",
        frame_over_max_message_size,
        options={"max_message_size": OVERSIZE_LIMIT},
        code=1009,
    ),
    Recoverable(
        "server_stops_answering_pings",
        stall,
        notice_the_stall,
        options={"ping_interval": PING_INTERVAL, "ping_timeout": PING_TIMEOUT},
    ),
    Recoverable(
        "handshake_hangs",
        hang_handshakes,
        answer_after_two_timeouts,
        options={"open_timeout": OPEN_TIMEOUT},
    ),
    Recoverable("connections_refused_for_a_while", refuse, accept_after_two_refusals),
]


@pytest.mark.parametrize("fault", RECOVERABLE, ids=lambda fault: fault.name)
async def test_recovers_from(
    kind: str,
    sim: MarketSimulator,
    clients: MakeClient,
    fault: Recoverable,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polygon.streaming")
    baseline = Baseline.take()
    adapter = clients(sim, Options(**fault.options))
    try:
        # One subscription recorded before the start, one made while running.
        await adapter.subscribe_trades(["AAPL", "MSFT"])
        await adapter.start()
        await adapter.subscribe_quotes(["AAPL"])
        first = await serving(sim, {"T.AAPL", "T.MSFT", "Q.AAPL"})
        await until(lambda: adapter.status_names().count("success") == 3, what="three acks")

        await publish_trades(sim, 0, 40)
        await until(lambda: adapter.qs() == list(range(40)), what="q 0..39 delivered")
        # Received but not yet delivered when the fault strikes.
        adapter.hold()
        received = adapter.stats.events_received
        await publish_trades(sim, 40, 40)
        await until(lambda: adapter.stats.events_received >= received + 40, what="q 40..79")

        injected = time.monotonic()
        await fault.inject(sim)
        # Changed while the connection fails: recorded, and on the server once.
        await adapter.unsubscribe_trades(["MSFT"])
        await adapter.subscribe_trades(["NVDA"])
        if fault.heal is not None:
            await fault.heal(sim, adapter, injected)
        second = await serving(sim, {"T.AAPL", "Q.AAPL", "T.NVDA"}, within=10)
        assert second != first
        await until(lambda: adapter.is_connected, what="is_connected")

        adapter.release()
        await publish_trades(sim, 80, 40)
        await until(lambda: len(adapter.qs()) >= 120, what="q 80..119 delivered")
        assert adapter.qs() == list(range(120))

        stats = adapter.stats
        assert (stats.connections, stats.reconnects, stats.events_dropped) == (2, 1, 0)
        assert duplicate_subscribes(sim) == []
        replayed = [topic for _, topic in subscribe_requests(sim)[second]]
        assert sorted(replayed) == sorted({"T.AAPL", "Q.AAPL", "T.NVDA"})
        if fault.status is not None:
            assert fault.status in adapter.status_names()
        # Both clients log the loss at WARNING; StreamClient also reports it to on_error.
        assert warnings_from_engine(caplog), "the lost connection was not logged"
        if kind == "thread":
            await until(lambda: adapter.errors, what="on_error")
            [error] = adapter.errors
            assert type(error) is fault.reported, repr(error)
            if isinstance(error, ConnectionLostError):
                assert error.code == fault.code, repr(error)
            if isinstance(error, ServerStatusError):
                assert error.status == fault.status
    finally:
        sim.stall(False)
        sim.hang_handshakes(False)
        sim.refuse_connections(False)
        await adapter.close()
    assert adapter.stopped_with is None
    await assert_no_leaks(sim, baseline)


async def test_an_idle_healthy_stream_is_not_reconnected(kind: str, clients: MakeClient) -> None:
    # Both sides ping every 0.1 s: ten rounds of keepalive with no data at all.
    async with MarketSimulator(rate=0, ping_interval=0.1, ping_timeout=0.3) as sim:
        baseline = Baseline.take()
        adapter = clients(sim, Options(ping_interval=0.1, ping_timeout=0.3))
        await adapter.subscribe_trades(["AAPL"])
        await adapter.start()
        session = await serving(sim, {"T.AAPL"})
        connection = sim.sessions[0].connection
        # Absence over a window is the claim, so the window is the wait.
        await asyncio.sleep(1.0)
        assert connection.latency > 0, "the server's pings were not answered"
        assert live_sessions(sim) == [session]
        stats = adapter.stats
        assert (stats.connections, stats.reconnects, stats.failed_attempts) == (1, 0, 0)
        assert adapter.is_connected
        await publish_trades(sim, 0, 10)
        await until(lambda: adapter.qs() == list(range(10)))
        await adapter.close()
        assert adapter.errors == []
        await assert_no_leaks(sim, baseline)


async def test_refused_connections_back_off_and_the_attempt_count_starts_over(
    kind: str, sim: MarketSimulator, clients: MakeClient
) -> None:
    """Delays double from ``reconnection_delay`` (plus up to 25% jitter); the count of
    consecutive failures starts over once a connection authenticates, so two outages of
    three failures each do not reach ``max_reconnection_attempts=4``. A connection that
    was up only briefly does not reset the delays (see docs/reliability.rst)."""
    delay = 0.01
    baseline = Baseline.take()
    adapter = clients(sim, Options(reconnection_delay=delay, max_reconnection_attempts=4))
    try:
        await adapter.subscribe_trades(["AAPL"])
        await adapter.start()
        await serving(sim, {"T.AAPL"})
        pauses = 0  # backoff delays used so far: one per loss, one per failure
        for outage in (1, 2):
            sim.refuse_connections()
            assert sim.drop_connections() == 1
            times = await failure_times(adapter, 3)
            pauses += 1
            for earlier, later in itertools.pairwise(times):
                base = delay * 2**pauses
                gap = later - earlier
                assert base - 0.005 <= gap <= base * 1.25 + SLACK, (outage, pauses, gap)
                pauses += 1
            pauses += 1  # the pause after the third failure, before the good attempt
            sim.refuse_connections(False)
            await until(lambda n=outage: adapter.stats.connections == n + 1, 10)  # type: ignore[misc]
            await serving(sim, {"T.AAPL"})
        assert adapter.running
        assert adapter.stats.failed_attempts == 6
        assert duplicate_subscribes(sim) == []
    finally:
        sim.refuse_connections(False)
        await adapter.close()
    await assert_no_leaks(sim, baseline)


async def test_gives_up_after_max_reconnection_attempts(
    kind: str, sim: MarketSimulator, clients: MakeClient
) -> None:
    baseline = Baseline.take()
    adapter = clients(sim, Options(reconnection_delay=0.01, max_reconnection_attempts=3))
    await adapter.subscribe_trades(["AAPL"])
    await adapter.start()
    await serving(sim, {"T.AAPL"})
    sim.refuse_connections()
    assert sim.drop_connections() == 1
    error = await adapter.stopped()
    assert isinstance(error, ReconnectFailedError)
    assert error.attempts == 3
    assert "503" in str(error)
    assert adapter.stats.failed_attempts == 3
    if kind == "thread":
        assert adapter.close_calls == [(None, str(error))]
    await adapter.close()
    await assert_no_leaks(sim, baseline)


# -- status messages that stop the stream ------------------------------------------------


@dataclass(frozen=True)
class Fatal:
    name: str
    error: type[ServerStatusError]
    status: str
    # None: the fault strikes at login (the key is refused).
    inject: Inject | None = None


async def evict(sim: MarketSimulator) -> None:
    """A newer connection on the same key, as a second program would make."""
    newcomer = await connect(sim.url + "/stocks")
    await newcomer.recv()
    await newcomer.send(f'{{"action":"auth","params":"{KEY}"}}')
    await newcomer.recv()
    EVICTORS.append(newcomer)


EVICTORS: list[Any] = []

FATAL = [
    Fatal("auth_failed_at_login", AuthenticationError, "auth_failed"),
    Fatal(
        "auth_failed_mid_session",
        AuthenticationError,
        "auth_failed",
        status_then_close("auth_failed", "authentication failed"),
    ),
    Fatal(
        "auth_timeout",
        AuthenticationError,
        "auth_timeout",
        status_then_close("auth_timeout", "authentication timed out"),
    ),
    Fatal("max_connections", MaxConnectionsError, "max_connections", evict),
]


@pytest.mark.parametrize("fault", FATAL, ids=lambda fault: fault.name)
async def test_stops_with_a_typed_error(kind: str, clients: MakeClient, fault: Fatal) -> None:
    keys = {"another-key"} if fault.inject is None else None
    async with MarketSimulator(rate=0, valid_keys=keys) as sim:
        baseline = Baseline.take()
        adapter = clients(sim, Options(reconnection_delay=0.01))
        expected: list[int] = []
        try:
            if fault.inject is None:
                await adapter.start()
            else:
                await adapter.subscribe_trades(["AAPL"])
                await adapter.start()
                await serving(sim, {"T.AAPL"})
                await publish_trades(sim, 0, 20)
                await until(lambda: adapter.qs() == list(range(20)))
                adapter.hold()
                received = adapter.stats.events_received
                await publish_trades(sim, 20, 20)
                await until(lambda: adapter.stats.events_received >= received + 20)
                await fault.inject(sim)
                adapter.release()
                expected = list(range(40))
            error = await adapter.stopped()
            assert type(error) is fault.error, repr(error)
            assert error.status == fault.status
            assert fault.status in adapter.status_names()
            # Everything received before the status is delivered, once; nothing is retried.
            assert adapter.qs() == expected
            stats = adapter.stats
            assert (stats.reconnects, stats.failed_attempts) == (0, 0)
            assert sim.connections_accepted == 1 + len(EVICTORS)
            if kind == "thread":
                assert adapter.errors == [error]
                [(_, message)] = adapter.close_calls
                assert fault.status in message
            await adapter.close()
        finally:
            while EVICTORS:
                await EVICTORS.pop().close()
        await assert_no_leaks(sim, baseline)


async def test_an_error_reply_to_a_subscribe_is_counted_logged_and_delivered(
    kind: str, sim: MarketSimulator, clients: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="polygon.streaming")
    baseline = Baseline.take()
    adapter = clients(sim)
    await adapter.subscribe_trades(["AAPL"])
    await adapter.start()
    session = await serving(sim, {"T.AAPL"})
    # A raw params string is sent as given; this topic's code is not one the server knows.
    await adapter.call("subscribe_stock_trades", "ZZ.AAPL")
    await until(lambda: "error" in adapter.status_names(), what="the error status")
    assert adapter.stats.server_errors == 1
    assert any("ZZ.AAPL" in text for text in warnings_from_engine(caplog))
    await publish_trades(sim, 0, 10)
    await until(lambda: adapter.qs() == list(range(10)))
    assert live_sessions(sim) == [session]
    assert (adapter.stats.connections, adapter.stats.reconnects) == (1, 0)
    await adapter.close()
    assert adapter.errors == []
    await assert_no_leaks(sim, baseline)


# -- bad input from the server -----------------------------------------------------------


@dataclass(frozen=True)
class BadFrame:
    name: str
    payload: str | bytes
    counter: str | None
    count: int = 1
    # Events of the payload the trade handler gets (their q), if any.
    delivered: tuple[int, ...] = ()
    logged: str | None = None
    # Send bytes as a text frame (not UTF-8, which the server would never send).
    text: bool | None = None


BAD_FRAMES = [
    BadFrame("undecodable_text", "this is not json", "decode_errors", logged="undecodable"),
    BadFrame("binary_frame", b"\x00\x01\x02binary", "bad_frames", logged="binary"),
    BadFrame(
        "text_that_is_not_utf8",
        b'[{"ev":"T","sym":"\xff\xfe","q":5}]',
        "bad_frames",
        logged="not UTF-8",
        text=True,
    ),
    BadFrame("json_string", '"a string, not a list"', "bad_frames", logged="not a list"),
    BadFrame("json_number", "42", "bad_frames", logged="not a list"),
    BadFrame(
        "json_object_is_one_event",
        '{"ev":"T","sym":"AAPL","q":10}',
        None,
        delivered=(10,),
    ),
    BadFrame(
        "events_missing_ev",
        '[{"sym":"AAPL","q":-1}, 7, null, "T"]',
        "bad_events",
        4,
        logged="no 'ev'",
    ),
    BadFrame(
        "ev_that_is_not_a_string",
        '[{"ev":["T"],"sym":"AAPL"}, {"ev":null}, {"ev":{"T":1}}]',
        "bad_events",
        3,
        logged="no 'ev'",
    ),
    BadFrame(
        "bad_events_among_good_ones",
        '[{"ev":"T","sym":"AAPL","q":10}, {"no":"ev"}, {"ev":"T","sym":"AAPL","q":11}]',
        "bad_events",
        1,
        delivered=(10, 11),
        logged="no 'ev'",
    ),
    # Printed by the default handler, as documented (checked below).
    BadFrame("unknown_event_code", '[{"ev":"ZZZ","sym":"AAPL"}]', None),
    BadFrame("unknown_status", '[{"ev":"status","status":"brand_new","message":"hi"}]', None),
]
COUNTERS = ("decode_errors", "bad_frames", "bad_events", "handler_errors", "server_errors")


@pytest.mark.parametrize("bad", BAD_FRAMES, ids=lambda bad: bad.name)
async def test_bad_input_from_the_server_is_counted_and_skipped(
    kind: str,
    sim: MarketSimulator,
    clients: MakeClient,
    bad: BadFrame,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO, logger="polygon.streaming")
    baseline = Baseline.take()
    adapter = clients(sim)
    await adapter.subscribe_trades(["AAPL"])
    await adapter.start()
    session = await serving(sim, {"T.AAPL"})
    await publish_trades(sim, 0, 10)
    await until(lambda: adapter.qs() == list(range(10)))
    before = adapter.stats
    caplog.clear()
    assert await sim.send_raw(bad.payload, text=bad.text) == 1
    await publish_trades(sim, 20, 10)
    expected = [*range(10), *bad.delivered, *range(20, 30)]
    await until(lambda: len(adapter.qs()) >= len(expected), what=f"q {expected[-1]}")
    assert adapter.qs() == expected
    after = adapter.stats
    for counter in COUNTERS:
        grew = getattr(after, counter) - getattr(before, counter)
        assert grew == (bad.count if counter == bad.counter else 0), counter
    if bad.logged is not None:
        assert bad.logged in caplog.text
    if bad.name == "unknown_status":
        assert "brand_new" in adapter.status_names()
    if bad.name == "unknown_event_code":
        assert "'ev': 'ZZZ'" in capfd.readouterr().out
    # Never fatal: the same connection carries on.
    assert live_sessions(sim) == [session]
    assert (after.connections, after.reconnects) == (1, 0)
    await adapter.close()
    assert adapter.errors == []
    await assert_no_leaks(sim, baseline)


# -- bad input from the user -------------------------------------------------------------


@dataclass(frozen=True)
class BadCall:
    name: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    error: type[Exception]
    named: str  # what the message must show
    kinds: tuple[str, ...] = CLIENT_KINDS


def noop(event: Any) -> None:
    pass


BAD_CALLS = [
    BadCall(
        "symbol_with_space", "subscribe_stock_trades", (["AAPL", "A B"],), {}, ValueError, "'A B'"
    ),
    BadCall(
        "symbol_with_comma",
        "subscribe_stock_quotes",
        (["MSFT,NVDA"],),
        {},
        ValueError,
        "'MSFT,NVDA'",
    ),
    BadCall("empty_symbol", "subscribe_stock_trades", ([""],), {}, ValueError, "''"),
    BadCall("symbol_not_a_string", "subscribe_stock_trades", ([42],), {}, ValueError, "42"),
    BadCall("none_in_list", "unsubscribe_stock_trades", ([None],), {}, ValueError, "None"),
    BadCall("symbols_a_float", "subscribe_stock_trades", (3.5,), {}, ValueError, "3.5"),
    BadCall(
        "symbols_a_dict", "subscribe_stock_trades", ({"AAPL": 1},), {}, ValueError, "{'AAPL': 1}"
    ),
    BadCall(
        "raw_string_with_spaces",
        "subscribe_stock_trades",
        ("AAPL MSFT",),
        {},
        ValueError,
        "'AAPL MSFT'",
    ),
    BadCall(
        "raw_string_lone_symbol", "subscribe_stock_trades", ("AAPL",), {}, ValueError, "'AAPL'"
    ),
    BadCall("raw_string_star", "unsubscribe_stock_trades", ("*",), {}, ValueError, "'*'"),
    BadCall("handler_not_callable", "subscribe_stock_trades", (["AAPL"], 42), {}, TypeError, "42"),
    BadCall(
        "force_uppercase_not_a_bool",
        "subscribe_stock_trades",
        (["AAPL"],),
        {"force_uppercase_symbols": "no"},
        TypeError,
        "'no'",
    ),
    BadCall(
        "stream_not_on_cluster",
        "subscribe_crypto_trades",
        (["BTC-USD"],),
        {},
        ValueError,
        "crypto_trades",
    ),
    BadCall("change_handler_bad_prefix", "change_handler", (42, noop), {}, ValueError, "42"),
    BadCall("change_handler_empty_prefix", "change_handler", ("", noop), {}, ValueError, "''"),
    BadCall(
        "change_handler_not_callable", "change_handler", ("T", "print"), {}, TypeError, "'print'"
    ),
    BadCall(
        "handle_messages_zero_attempts",
        "handle_messages",
        (True, 0),
        {},
        ValueError,
        "0",
        ("async",),
    ),
    BadCall(
        "handle_messages_delay_a_string",
        "handle_messages",
        (True, 5, "1"),
        {},
        ValueError,
        "'1'",
        ("async",),
    ),
    BadCall("login_key_not_a_string", "login", (42,), {}, ValueError, "int", ("async",)),
    BadCall(
        "ping_interval_a_string",
        "start_stream_thread",
        ("fast",),
        {},
        ValueError,
        "'fast'",
        ("thread",),
    ),
    BadCall(
        "ping_timeout_negative",
        "start_stream_thread",
        (20, -1),
        {},
        ValueError,
        "-1",
        ("thread",),
    ),
]


async def test_bad_calls_raise_clear_errors_and_the_client_stays_usable(
    kind: str, sim: MarketSimulator, clients: MakeClient
) -> None:
    calls = [call for call in BAD_CALLS if kind in call.kinds]
    baseline = Baseline.take()
    adapter = clients(sim)
    await adapter.subscribe_trades(["AAPL"])
    # Before the start (recorded only) and while running (sent at once).
    for running in (False, True):
        if running:
            await adapter.start()
            await serving(sim, {"T.AAPL"})
        for call in calls:
            if call.method in ("handle_messages", "start_stream_thread", "login") and not running:
                continue
            with pytest.raises(call.error) as raised:
                await adapter.call(call.method, *call.args, **call.kwargs)
            assert call.named in str(raised.value), (call.name, str(raised.value))
        assert adapter.client.subscriptions == ["T.AAPL"]
    # Still usable, and none of the bad calls reached the server.
    await adapter.subscribe_quotes(["MSFT"])
    await serving(sim, {"T.AAPL", "Q.MSFT"})
    assert [topic for _, topic in subscribe_requests(sim)[live_sessions(sim)[0]]] == [
        "T.AAPL",
        "Q.MSFT",
    ]
    await publish_trades(sim, 0, 10)
    await until(lambda: adapter.qs() == list(range(10)))
    assert adapter.stats.connections == 1
    await adapter.close()
    await assert_no_leaks(sim, baseline)


@pytest.mark.parametrize("call_timeout", ["soon", -1, 0, None, True])
def test_stream_client_refuses_a_bad_call_timeout(call_timeout: Any) -> None:
    # Checked at construction: otherwise it would only fail later, inside a call.
    with pytest.raises(ValueError, match=re.escape(repr(call_timeout))):
        StreamClient(KEY, "stocks", host="ws://127.0.0.1:9", call_timeout=call_timeout)
    assert not client_threads()


# -- closing in every state ----------------------------------------------------------------

CLOSE_STATES = [
    "before_connecting",
    "while_connecting",
    "while_logging_in",
    "while_backing_off",
    "from_a_handler",
    "twice_while_running",
]


@pytest.mark.parametrize("state", CLOSE_STATES)
async def test_close_in_every_state(
    kind: str, sim: MarketSimulator, clients: MakeClient, state: str
) -> None:
    baseline = Baseline.take()
    adapter = clients(sim, Options(reconnection_delay=30.0))
    handler = adapter.closing_handler() if state == "from_a_handler" else adapter.trade_handler
    if state == "while_connecting":
        sim.hang_handshakes()
    elif state == "while_logging_in":
        sim.stall()  # handshakes complete; the auth message is never read
    elif state == "while_backing_off":
        sim.refuse_connections()
    if state != "before_connecting":
        await adapter.start()
        # Recorded while the client connects; sent with the first login.
        await adapter.call("subscribe_stock_trades", ["AAPL"], handler_function=handler)
    if state == "while_connecting":
        # The TCP connection is open and its handshake waits for an answer.
        await until(lambda: sim._connections, what="the handshake to start")
    elif state == "while_logging_in":
        await until(lambda: sim.connections_accepted == 1, what="the handshake")
    elif state == "while_backing_off":
        await until(lambda: adapter.stats.failed_attempts == 1, what="the first refusal")
    elif state != "before_connecting":
        await serving(sim, {"T.AAPL"})
    if state == "from_a_handler":
        await publish_trades(sim, 0, 5, per_frame=5)
        assert await adapter.stopped(5) is None
        assert adapter.qs() == [0]  # no handler runs after close_stream()
    begun = time.monotonic()
    await adapter.close()
    # Closing never waits out a handshake, an open timeout or a backoff delay.
    assert time.monotonic() - begun < 2.0
    if state == "twice_while_running":
        await adapter.close()
    assert not adapter.running
    assert adapter.stopped_with is None
    if kind == "thread":
        assert adapter.close_calls == [(1000, "closed by the client")]
    with pytest.raises(StreamClosedError):
        await adapter.subscribe_quotes(["MSFT"])
    with pytest.raises(StreamClosedError):
        await adapter.call("handle_messages" if kind == "async" else "start_stream_thread")
    sim.hang_handshakes(False)
    sim.stall(False)
    sim.refuse_connections(False)
    await assert_no_leaks(sim, baseline)
