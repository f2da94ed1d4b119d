"""The simulator's market: a clock, and streams that agree with each other in market time.

Two kinds of tests: the per-symbol market model driven directly (fast, many
market minutes), and the whole simulator over real sockets at ``speed=60`` for
a stock, a forex pair, a crypto pair and an index, checked from the outside as a
client sees it.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from polygon.cli import build_parser
from polygon.enums import StreamCluster
from polygon.streaming.errors import ConfigurationError, PolygonStreamError
from polygon.streaming.simulator import EventFactory, MarketClock, MarketSimulator, SimulatorThread
from polygon.streaming.simulator._clock import parse_start
from polygon.streaming.simulator._market import LULD_EVERY_MS, SymbolMarket

Event = dict[str, Any]

START = "2025-06-02T13:30:00Z"
START_MS = 1_748_871_000_000
SECOND, MINUTE = 1_000, 60_000

# What each cluster's bars summarise, and the codes of its bars.
PRINT_CODE = {
    StreamCluster.STOCKS: "T",
    StreamCluster.OPTIONS: "T",
    StreamCluster.CRYPTO: "XT",
    StreamCluster.FOREX: "C",
    StreamCluster.INDICES: "V",
}
BAR_CODES = {
    StreamCluster.STOCKS: {"A": SECOND, "AM": MINUTE},
    StreamCluster.OPTIONS: {"A": SECOND, "AM": MINUTE},
    StreamCluster.CRYPTO: {"XAS": SECOND, "XA": MINUTE},
    StreamCluster.FOREX: {"CAS": SECOND, "CA": MINUTE},
    StreamCluster.INDICES: {"A": SECOND, "AM": MINUTE},
}
QUOTE_SIDES = {"Q": ("bp", "ap"), "XQ": ("bp", "ap")}


def price_of(cluster: StreamCluster, event: Event) -> float:
    if cluster is StreamCluster.FOREX:
        return round((event["b"] + event["a"]) / 2, 8)
    if cluster is StreamCluster.INDICES:
        value: float = event["val"]
        return value
    price: float = event["p"]
    return price


def size_of(cluster: StreamCluster, event: Event) -> float:
    if cluster is StreamCluster.FOREX:
        return 1.0
    if cluster is StreamCluster.INDICES:
        return 0.0
    size: float = event["s"]
    return size


# -- the checks: what a client can verify from what it received -------------------


def check_bars(cluster: StreamCluster, events: list[Event]) -> int:
    """Every bar is final, aligned, in order, after its window, and the aggregate of
    the prints received in its window. Returns how many bars were compared in full.

    Windows that began before the first print received may hold prints generated
    before the client subscribed: their values are not compared.
    """
    print_code = PRINT_CODE[cluster]
    prints = [(i, e) for i, e in enumerate(events) if e["ev"] == print_code]
    assert prints, "no prints received"
    first_full = prints[0][1]["t"] // SECOND * SECOND + SECOND
    compared = 0
    for code, length in BAR_CODES[cluster].items():
        bars = [(i, e) for i, e in enumerate(events) if e["ev"] == code]
        starts = [bar["s"] for _, bar in bars]
        assert starts == sorted(set(starts)), f"{code}: windows repeated or out of order"
        previous: Event | None = None
        for index, bar in bars:
            assert bar["s"] % length == 0 and bar["e"] - bar["s"] == length, bar
            inside = [e for i, e in prints if bar["s"] <= e["t"] < bar["e"]]
            late = [e for i, e in prints if i > index and e["t"] < bar["e"]]
            assert not late, f"a print of {code} window {bar['s']} came after its bar: {late[0]}"
            assert inside, f"a bar for a window with no prints: {bar}"
            if bar["s"] >= first_full:
                check_aggregate(cluster, bar, inside)
                compared += 1
                if "av" in bar and previous is not None:
                    # The day's volume grew by every trade since the last bar.
                    since = [e["s"] for _, e in prints if previous["e"] <= e["t"] < bar["e"]]
                    assert bar["av"] == previous["av"] + sum(since), bar
            previous = bar
    return compared


def check_aggregate(cluster: StreamCluster, bar: Event, inside: list[Event]) -> None:
    prices = [price_of(cluster, e) for e in inside]
    sizes = [size_of(cluster, e) for e in inside]
    where = f"{bar['ev']} {bar['s']}"
    assert bar["o"] == pytest.approx(prices[0]), where
    assert bar["c"] == pytest.approx(prices[-1]), where
    assert bar["h"] == pytest.approx(max(prices)), where
    assert bar["l"] == pytest.approx(min(prices)), where
    if cluster is StreamCluster.INDICES:
        return
    volume = sum(sizes)
    assert bar["v"] == round(volume), where
    if cluster is StreamCluster.FOREX:
        return
    notional = sum(p * s for p, s in zip(prices, sizes, strict=True))
    assert bar["vw"] == pytest.approx(notional / volume, abs=1e-6), where
    assert bar["z"] == round(volume / len(inside)), where


def check_trades_inside_the_quote(events: list[Event], trade: str, quote: str) -> int:
    """Trades print between the bid and ask of the last quote before them (< 1 % not)."""
    bid_field, ask_field = QUOTE_SIDES[quote]
    current: tuple[float, float] | None = None
    checked = outside = 0
    for event in events:
        if event["ev"] == quote:
            current = (event[bid_field], event[ask_field])
            assert current[0] < current[1], event
        elif event["ev"] == trade:
            # A trade before any quote counts against the market too.
            checked += 1
            outside += current is None or not current[0] <= event["p"] <= current[1]
    assert checked > 0
    assert outside <= checked / 100, f"{outside} of {checked} trades printed outside the quote"
    return checked


def check_values(cluster: StreamCluster, events: list[Event]) -> None:
    """FMV is the last trade; LULD bands sit around recent trades; books never cross."""
    print_code = PRINT_CODE[cluster]
    last: float | None = None
    recent: list[float] = []
    for event in events:
        code = event["ev"]
        if code == print_code:
            last = price_of(cluster, event)
            recent.append(last)
        elif code == "FMV" and last is not None:
            assert event["fmv"] == pytest.approx(last), event
        elif code == "LULD" and len(recent) > 10:
            reference = (event["h"] + event["l"]) / 2
            assert min(recent[-2000:]) * 0.99 <= reference <= max(recent[-2000:]) * 1.01, event
            assert event["l"] < reference < event["h"]
        elif code == "XL2":
            bids, asks = [p for p, _ in event["b"]], [p for p, _ in event["a"]]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks), event
            assert bids[0] < asks[0], event


# -- the market model, driven directly ----------------------------------------------


def run_market(
    cluster: StreamCluster, symbol: str, minutes: float, rate: float = 4.0, seed: int = 1
) -> list[Event]:
    """Open a market mid-second and advance it in uneven steps, as ticks would."""
    market = SymbolMarket(EventFactory(cluster, seed=seed), symbol)
    now = START_MS + 29_300.0
    events = market.open(now, rate)
    end = now + minutes * MINUTE
    step = 0
    while now < end:
        step += 1
        now += 700.0 + (step % 7) * 450.0
        events += market.advance(now, rate)
    return events


MARKETS = [
    (StreamCluster.STOCKS, "AAPL"),
    (StreamCluster.OPTIONS, "O:SPY250620C00550000"),
    (StreamCluster.FOREX, "EUR/USD"),
    (StreamCluster.CRYPTO, "BTC-USD"),
    (StreamCluster.INDICES, "I:SPX"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("cluster", "symbol"), MARKETS, ids=lambda v: str(v))
def test_market_bars_summarise_its_prints(cluster: StreamCluster, symbol: str) -> None:
    events = run_market(cluster, symbol, minutes=4)
    times = [e.get("t", e.get("e")) for e in events]
    assert times == sorted(times), "events out of time order"
    compared = check_bars(cluster, events)
    assert compared >= 3 * 60, compared  # every second of three full minutes, and more
    minute_bars = [e for e in events if e["ev"] == list(BAR_CODES[cluster])[1]]
    # Opened at :29.3, so the first minute is incomplete and never sent.
    assert [bar["s"] for bar in minute_bars][:1] == [START_MS + MINUTE]
    check_values(cluster, events)
    if cluster in (StreamCluster.STOCKS, StreamCluster.OPTIONS):
        check_trades_inside_the_quote(events, "T", "Q")
    if cluster is StreamCluster.CRYPTO:
        check_trades_inside_the_quote(events, "XT", "XQ")


@pytest.mark.timeout(30)
def test_a_resumed_market_sends_no_bar_it_cannot_vouch_for() -> None:
    """After a pause (a stall, rate 0) subscribers see bars of whole windows only."""
    market = SymbolMarket(EventFactory(StreamCluster.STOCKS, seed=3), "NVDA")
    now = START_MS + 10_300.0
    events = market.open(now, 10.0)
    for pause_at, resume_at in ((40_000, 47_600), (100_000, 100_900)):
        while now < START_MS + pause_at:
            now += 350.0
            events += market.advance(now, 10.0)
        market.close()
        now = START_MS + resume_at
        events += market.open(now, 10.0, backfill=False)
    while now < START_MS + 200_000:
        now += 350.0
        events += market.advance(now, 10.0)
    assert check_bars(StreamCluster.STOCKS, events) > 100
    starts = {e["s"] for e in events if e["ev"] == "A"}
    assert START_MS + 47_000 not in starts and START_MS + 100_000 not in starts
    assert START_MS + 48_000 in starts or START_MS + 49_000 in starts


@pytest.mark.timeout(30)
def test_luld_bands_move_with_the_reference_price() -> None:
    events = run_market(StreamCluster.STOCKS, "TSLA", minutes=20, rate=10.0, seed=4)
    bands = [e for e in events if e["ev"] == "LULD"]
    # One at the opening, then whenever the 5-minute average moved (checked every 30 s).
    assert len(bands) > 3
    assert all(b["t"] % LULD_EVERY_MS == 0 for b in bands[1:])
    pairs = [(b["h"], b["l"]) for b in bands]
    assert all(a != b for a, b in itertools.pairwise(pairs))  # sent only when they moved
    for band in bands:
        assert band["h"] == pytest.approx(band["l"] * 1.05 / 0.95, rel=1e-3)
    check_values(StreamCluster.STOCKS, events)


@pytest.mark.timeout(30)
def test_index_values_walk_and_the_day_open_stays() -> None:
    events = run_market(StreamCluster.INDICES, "I:NDX", minutes=3, rate=2.0)
    values = [e["val"] for e in events if e["ev"] == "V"]
    assert len(set(values)) > len(values) / 2  # it moves
    assert statistics.pstdev(values) < statistics.mean(values) * 0.05  # but not wildly
    assert len({e["op"] for e in events if e["ev"] in ("A", "AM")}) == 1


@pytest.mark.timeout(30)
def test_a_symbol_does_not_depend_on_what_else_is_generated() -> None:
    alone = run_market(StreamCluster.STOCKS, "AAPL", minutes=1, seed=9)
    factory = EventFactory(StreamCluster.STOCKS, seed=9)
    msft, aapl = SymbolMarket(factory, "MSFT"), SymbolMarket(factory, "AAPL")
    now = START_MS + 29_300.0
    beside = aapl.open(now, 4.0)
    msft.open(now, 4.0)
    step = 0
    while now < START_MS + 29_300.0 + MINUTE:
        step += 1
        now += 700.0 + (step % 7) * 450.0
        msft.advance(now, 4.0)
        beside += aapl.advance(now, 4.0)
    assert beside == alone


@pytest.mark.timeout(10)
def test_the_clock_runs_at_its_speed_from_its_start() -> None:
    clock = MarketClock(speed=60, start=START)
    assert clock.start_ms == START_MS and clock.now_ms() == START_MS  # still until begun
    clock.begin()
    first = clock.now_ms_float()
    assert START_MS <= first < START_MS + 60 * 1000
    assert clock.speed == 60.0
    default = MarketClock()
    default.begin()
    wall = datetime.now(timezone.utc).timestamp() * 1000
    assert abs(default.now_ms() - wall) < 1000


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (START, START_MS),
        ("2025-06-02T09:30:00-04:00", START_MS),
        ("2025-06-02T13:30:00", START_MS),
        ("2025-06-02 13:30:00.250+00:00", START_MS + 250),
        (datetime(2025, 6, 2, 13, 30, tzinfo=timezone.utc), START_MS),
        (START_MS, START_MS),
        (None, None),
    ],
)
def test_start_accepts_iso_times_datetimes_and_milliseconds(given: Any, expected: Any) -> None:
    assert parse_start(given) == expected


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"speed": 0}, "0"),
        ({"speed": -2.5}, "-2.5"),
        ({"speed": float("nan")}, "nan"),
        ({"speed": "fast"}, "fast"),
        ({"start": "yesterday"}, "yesterday"),
        ({"start": -5}, "-5"),
        ({"start": True}, "True"),
    ],
)
def test_bad_speed_or_start_is_refused_naming_the_value(kwargs: Any, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named) as raised:
        MarketSimulator(**kwargs)
    assert isinstance(raised.value, PolygonStreamError) and isinstance(raised.value, ValueError)
    with pytest.raises(ConfigurationError, match=named):
        SimulatorThread(**kwargs)


# -- the whole simulator at speed 60, over real sockets -------------------------------

Received = list[tuple[float, Event]]

SOCKET_CASES = [
    (StreamCluster.STOCKS, "AAPL", ("T", "Q", "A", "AM", "FMV", "LULD")),
    (StreamCluster.FOREX, "EUR/USD", ("C", "CA", "CAS", "FMV")),
    (StreamCluster.CRYPTO, "BTC-USD", ("XT", "XQ", "XA", "XAS", "XL2", "FMV")),
    (StreamCluster.INDICES, "I:SPX", ("V", "A", "AM")),
]


async def open_subscribed(
    sim: MarketSimulator, cluster: StreamCluster, topics: str, key: str = "KEY"
) -> Any:
    ws = await connect(f"{sim.url}/{cluster.value}")
    await ws.recv()  # connected
    await ws.send(orjson.dumps({"action": "auth", "params": key}).decode())
    await ws.recv()  # auth_success
    await ws.send(orjson.dumps({"action": "subscribe", "params": topics}).decode())
    acks = orjson.loads(await ws.recv())
    assert all(a["status"] == "success" for a in acks), acks
    return ws


async def collect(
    sim: MarketSimulator,
    ws: ClientConnection,
    done: Callable[[list[Event]], bool],
    timeout: float = 20.0,
) -> Received:
    """Events as received, each with the market time it arrived at, until ``done(frame)``."""
    received: Received = []

    async def read() -> None:
        while True:
            frame = orjson.loads(await ws.recv())
            arrived = sim.clock.now_ms_float()
            received.extend((arrived, event) for event in frame)
            if done(frame):
                return

    await asyncio.wait_for(read(), timeout)
    return received


def after_minute_bars(cluster: StreamCluster, count: int) -> Callable[[list[Event]], bool]:
    """A ``done`` for :func:`collect`: true once ``count`` minute bars came."""
    code = list(BAR_CODES[cluster])[1]
    seen = 0

    def done(frame: list[Event]) -> bool:
        nonlocal seen
        seen += sum(e["ev"] == code for e in frame)
        return seen >= count

    return done


@pytest.mark.anyio
@pytest.mark.timeout(40)
@pytest.mark.parametrize(("cluster", "symbol", "codes"), SOCKET_CASES, ids=lambda v: str(v))
async def test_at_speed_60_every_stream_agrees(
    cluster: StreamCluster, symbol: str, codes: tuple[str, ...]
) -> None:
    topics = ",".join(f"{code}.{symbol}" for code in codes)
    async with MarketSimulator(rate=4, speed=60, start=START, seed=2) as sim:
        began = sim.clock.now_ms_float()
        async with await open_subscribed(sim, cluster, topics) as ws:
            subscribed = sim.clock.now_ms_float()
            received = await collect(sim, ws, after_minute_bars(cluster, 2))
    events = [event for _, event in received]
    assert {e["ev"] for e in events} == set(codes)
    # The clock started where start says and runs at 60 times the wall clock.
    assert START_MS <= began <= subscribed
    first_time = events[0].get("t", events[0].get("e"))
    assert START_MS <= first_time <= received[0][0]
    for arrived, event in received:
        stamp = event.get("t", event.get("e"))
        assert stamp <= arrived, f"an event from the future: {event}"
        if "e" in event:
            assert arrived >= event["e"], f"a bar sent before its window closed: {event}"
    assert check_bars(cluster, events) >= 60
    check_values(cluster, events)
    if cluster is StreamCluster.STOCKS:
        check_trades_inside_the_quote(events, "T", "Q")
    if cluster is StreamCluster.CRYPTO:
        check_trades_inside_the_quote(events, "XT", "XQ")


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_bars_are_the_same_whatever_else_is_subscribed() -> None:
    async with (
        MarketSimulator(rate=4, speed=60, start=START, batch_size=100) as sim,
        await open_subscribed(sim, StreamCluster.STOCKS, "A.AAPL", "one") as only_bars,
        await open_subscribed(
            sim, StreamCluster.STOCKS, "T.*,Q.*,A.AAPL,AM.MSFT", "two"
        ) as everything,
    ):
        both_subscribed = sim.clock.now_ms()
        # Fifty market seconds that both clients watch whole.
        until = both_subscribed + 50 * SECOND

        def done(frame: list[Event]) -> bool:
            return any(e["ev"] == "A" and e["s"] >= until for e in frame)

        lean, busy = await asyncio.gather(
            collect(sim, only_bars, done), collect(sim, everything, done)
        )
    lean_bars = {e["s"]: e for _, e in lean}
    busy_bars = {e["s"]: e for _, e in busy if e["ev"] == "A" and e["sym"] == "AAPL"}
    assert {e["ev"] for _, e in lean} == {"A"}
    watched = {s for s in lean_bars if both_subscribed + SECOND <= s < until}
    assert len(watched) >= 30  # seconds with AAPL trades (most of them)
    assert all(busy_bars.get(s) == lean_bars[s] for s in watched)


@pytest.mark.anyio
@pytest.mark.timeout(15)
async def test_no_minute_bar_within_a_second_and_a_half_of_subscribing() -> None:
    # At speed 1, starting 0.8 s before a minute ends: a bar of that minute would
    # come within the 1.5 s; it is incomplete for this client, so none comes.
    async with (
        MarketSimulator(rate=20, start="2025-06-02T13:30:59.200Z") as sim,
        await open_subscribed(sim, StreamCluster.STOCKS, "AM.*,A.AAPL,T.AAPL") as ws,
    ):
        subscribed = sim.clock.now_ms_float()
        received = await collect(
            sim, ws, lambda frame: any(e.get("t", 0) > subscribed + 1500 for e in frame)
        )
    codes = {event["ev"] for _, event in received}
    assert "AM" not in codes and {"A", "T"} <= codes


@pytest.mark.timeout(20)
def test_the_thread_runner_takes_speed_and_start() -> None:
    with SimulatorThread(rate=0, speed=30, start=START) as sim:
        clock = sim.simulator.clock
        assert clock.speed == 30.0
        assert START_MS <= sim.call(clock.now_ms) < START_MS + 30 * 10_000
        event = sim.call(lambda: sim.simulator.factory("stocks").make("T", "AAPL"))
        assert START_MS <= event["t"] < START_MS + 30 * 10_000


@pytest.mark.timeout(10)
def test_polygon_stream_simulate_parses_speed_and_start() -> None:
    args = build_parser().parse_args(["simulate", "--speed", "60", "--start", START])
    assert (args.speed, args.start) == (60.0, START_MS)
    assert build_parser().parse_args(["simulate"]).speed == 1.0


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "polygon.streaming.simulator"],
        [sys.executable, "-m", "polygon.cli", "simulate"],
    ],
    ids=["module", "polygon-stream"],
)
def test_commands_refuse_a_bad_speed_or_start_in_one_line(command: list[str]) -> None:
    for bad in (["--speed", "0"], ["--start", "noon"]):
        result = subprocess.run(
            [*command, "--port", "0", *bad], capture_output=True, text=True, timeout=15
        )
        assert result.returncode == 2, result
        assert bad[1] in result.stderr and "Traceback" not in result.stderr


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_the_command_serves_market_time_from_start() -> None:
    options = ["--port", "0", "--rate", "5", "--speed", "60", "--start", START]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "polygon.streaming.simulator",
        *options,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 15)).decode().strip()
        async with connect(f"{url}/stocks") as ws:
            await ws.recv()
            await ws.send('{"action":"auth","params":"KEY"}')
            await ws.recv()
            await ws.send('{"action":"subscribe","params":"T.AAPL,A.AAPL"}')
            await ws.recv()
            events: list[Event] = []
            while not any(e["ev"] == "A" for e in events):
                events += orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        # Started in the last few seconds at 60x: within a few minutes of start.
        assert all(START_MS <= e.get("t", e.get("s")) < START_MS + 15 * MINUTE for e in events)
    finally:
        process.terminate()
        await process.wait()
