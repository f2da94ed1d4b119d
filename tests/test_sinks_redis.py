"""RedisStreamsSink and RedisStreamsConsumer against a real redis-server.

simulator -> client -> sink -> redis-server -> consumer, with the server
stopped, paused and restarted under the sink.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from _brokers import (
    SUBSCRIBED,
    RedisServer,
    by_stream,
    collect,
    publish,
    publish_trades_and_quotes,
    running,
    stock_events,
    subscribed_client,
    until,
)

from polygon import StreamClient
from polygon.streaming.errors import ConfigurationError
from polygon.streaming.simulator import MarketSimulator, SimulatorThread
from polygon.streaming.sinks.redis import (
    PER_SYMBOL_KEY_TEMPLATE,
    RedisStreamsConsumer,
    RedisStreamsSink,
)

pytestmark = pytest.mark.timeout(60)

Event = dict[str, Any]


# The sink's options in each mode: the default (one stream per event code,
# batched), one stream per symbol batched, and one entry per event.
MODES: dict[str, dict[str, Any]] = {
    "batch": {},
    "symbol-batch": {"key_template": PER_SYMBOL_KEY_TEMPLATE},
    "event": {"key_template": PER_SYMBOL_KEY_TEMPLATE, "packing": "event"},
}
PER_SYMBOL_KEYS = {f"polygon:stocks:T:{symbol}" for symbol in ("AAPL", "BRK.B", "MSFT", "SPY")}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running(RedisServer(tmp_path / "redis")) as server:
        yield server


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def stored(url: str, pattern: str = "polygon:*") -> dict[str, list[int]]:
    """The number of events in each entry of each stream, oldest first."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=pattern, _type="stream")]
        entries: dict[str, list[int]] = {}
        for key in keys:
            sizes = []
            for _, fields in await client.xrange(key):
                if b"b" in fields:
                    sizes.append(sum(len(frame) for frame in orjson.loads(fields[b"b"])))
                else:
                    sizes.append(1)
            entries[key] = sizes
        return entries
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_async_client_events_come_back_from_redis_exactly(
    redis_server: RedisServer, sim: MarketSimulator, mode: str
) -> None:
    events = stock_events(400)
    sink = RedisStreamsSink(redis_server.url, batch_size=64, **MODES[mode])
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, events)
        await until(lambda: sink.stats.published == 400, "the sink to publish everything")
    assert sink.stats.dropped == sink.stats.failures == 0
    entries = await stored(redis_server.url)
    if mode == "batch":
        assert list(entries) == ["polygon:stocks:T"]
    else:
        assert set(entries) == PER_SYMBOL_KEYS
        assert all(sum(sizes) == 100 for sizes in entries.values())
    assert sum(map(sum, entries.values())) == 400
    if mode == "event":
        assert all(len(sizes) == 100 for sizes in entries.values())
    else:  # frames of 25 events, batches of at most 64: entries hold several events
        assert all(len(sizes) < 100 for sizes in entries.values())
    async with RedisStreamsConsumer(redis_server.url) as consumer:
        got = await collect(consumer, 400)
    assert by_stream(got) == by_stream(events)  # the same dicts, in order per symbol
    assert sorted(map(orjson.dumps, got)) == sorted(map(orjson.dumps, events))
    if mode == "batch":
        assert got == events  # one stream: the very order received


@pytest.mark.parametrize("mode", list(MODES))
def test_stream_client_events_come_back_from_redis_exactly(
    redis_server: RedisServer, mode: str
) -> None:
    events = stock_events(300)
    sink = RedisStreamsSink(redis_server.url, batch_size=50, **MODES[mode])
    with SimulatorThread(rate=0) as sim_thread:
        sim = sim_thread.simulator
        with StreamClient("k", "stocks", host=sim_thread.url) as client:
            client.add_sink(sink)
            client.subscribe_stock_trades(["AAPL", "BRK.B", "MSFT", "SPY"])
            client.start_stream_thread()
            sim_thread.wait_for(lambda: sim.subscriptions("stocks") >= SUBSCRIBED, timeout=10)
            for start in range(0, 300, 30):
                sim_thread.call(sim.publish, "stocks", events[start : start + 30])
            sim_thread.wait_for(lambda: sink.stats.published == 300, timeout=20)

    async def read_back() -> list[Event]:
        async with RedisStreamsConsumer(redis_server.url, pattern="polygon:stocks:*") as consumer:
            return await collect(consumer, 300)

    got = asyncio.run(read_back())
    assert by_stream(got) == by_stream(events)


@pytest.mark.anyio
@pytest.mark.parametrize("packing", ["batch", "event"])
async def test_one_stream_per_event_code_and_frames_of_mixed_codes(
    redis_server: RedisServer, sim: MarketSimulator, packing: str
) -> None:
    events = stock_events(240, codes=("T", "Q"))  # every frame holds trades and quotes
    sink = RedisStreamsSink(redis_server.url, key_template="md:{cluster}:{ev}", packing=packing)
    await publish_trades_and_quotes(sim, events, sink)
    assert sink.key_for(events[0]) == "md:stocks:T"
    entries = await stored(redis_server.url, "md:*")
    assert {key: sum(sizes) for key, sizes in entries.items()} == {
        "md:stocks:T": 120,
        "md:stocks:Q": 120,
    }
    async with RedisStreamsConsumer(redis_server.url, keys=["md:stocks:Q"]) as consumer:
        quotes = await collect(consumer, 120)
    assert quotes == [e for e in events if e["ev"] == "Q"]  # one stream: one order


@pytest.mark.anyio
@pytest.mark.parametrize("approximate", [True, False])
async def test_streams_are_trimmed_to_about_maxlen_events(
    redis_server: RedisServer, sim: MarketSimulator, mode: str, approximate: bool
) -> None:
    events = stock_events(2000)
    sink = RedisStreamsSink(
        redis_server.url, maxlen=100, approximate=approximate, batch_size=100, **MODES[mode]
    )
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, events, per_frame=100)
        await until(lambda: sink.stats.published == 2000, "the sink to publish everything")
    entries = await stored(redis_server.url)
    assert len(entries) == (1 if mode == "batch" else 4)
    for sizes in entries.values():
        kept = sum(sizes)
        if mode == "event" and not approximate:
            assert kept == 100
        elif mode == "event":  # MAXLEN ~: whole nodes (100 entries each by default) go
            assert 100 <= kept < 300
        else:  # entries of up to 100 events, as many as hold about 100 events
            assert len(sizes) >= 1 and kept <= 300
    # The consumer starts at the oldest entry kept and still gets the newest in order.
    async with RedisStreamsConsumer(redis_server.url) as consumer:
        got = await collect(consumer, sum(map(sum, entries.values())))
    for key, kept_events in by_stream(got).items():
        assert kept_events == by_stream(events)[key][-len(kept_events) :]


@pytest.mark.anyio
async def test_a_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, sim: MarketSimulator, mode: str
) -> None:
    """redis-server is killed while events flow and started again on the same port.

    With an append-only file synced on every write, what Redis acknowledged
    survives the crash; what it had not, the sink still holds and writes again.
    A consumer reads all along, reconnecting by itself, and skips the entries
    a retried batch wrote twice.
    """
    events = stock_events(3000)
    server = RedisServer(tmp_path / "redis", appendonly=True)
    with running(server):
        sink = RedisStreamsSink(
            server.url, batch_size=100, retry_delay=0.05, timeout=2.0, **MODES[mode]
        )
        consumer = RedisStreamsConsumer(server.url, block=0.2, retry_delay=0.05)
        reading = asyncio.ensure_future(collect(consumer, 3000, within=45))
        async with await subscribed_client(sim) as client:
            await client.add_sink(sink)
            feeding = asyncio.ensure_future(publish(sim, events, per_frame=10, pause=0.002))
            await until(lambda: sink.stats.published >= 500, "the first events in Redis")
            await asyncio.to_thread(server.stop, signal.SIGKILL)
            await until(lambda: sink.stats.failures >= 1, "the sink to notice")
            await until(lambda: sink.stats.offered >= 2000, "events to arrive while it is down")
            await asyncio.to_thread(server.start)
            await feeding
            await until(lambda: sink.stats.published == 3000, "the sink to catch up", within=30)
            assert client.stats.connections == 1  # the market data never noticed
        got = await reading
        await consumer.close()
    assert sink.stats.dropped == 0
    assert sink.stats.reconnects >= 1
    assert consumer.reconnects >= 1
    assert by_stream(got) == by_stream(events)


@pytest.mark.anyio
async def test_a_hung_broker_never_holds_up_the_client_and_drops_are_exact(
    redis_server: RedisServer, sim: MarketSimulator, mode: str
) -> None:
    """Redis stops answering (SIGSTOP): the client keeps its connection and its
    keepalive; the sink keeps what fits in its buffer and counts the rest."""
    first, second = stock_events(50, seed=1), stock_events(200, seed=2)
    sink = RedisStreamsSink(
        redis_server.url,
        max_buffered_events=64,
        batch_size=16,
        timeout=0.3,
        retry_delay=0.05,
        **MODES[mode],
    )
    client = await subscribed_client(sim, ping_interval=0.1, ping_timeout=0.5)
    async with client:
        await client.add_sink(sink)
        await publish(sim, first)
        await until(lambda: sink.stats.published == 50, "the first events in Redis")
        await asyncio.to_thread(redis_server.pause)
        try:
            await publish(sim, second, per_frame=20)
            await until(lambda: sink.stats.offered == 250, "the client to read everything")
            assert sink.stats.dropped == 200 - 64
            assert sink.stats.backlog == 64
            # Long enough for several timed-out writes and a dozen keepalive pings.
            await until(lambda: sink.stats.failures >= 3, "writes to time out")
            assert client.stats.connections == 1
            assert client.stats.reconnects == 0
        finally:
            redis_server.resume()
        await until(lambda: sink.stats.published == 50 + 64, "the buffer to drain")
        assert client.stats.connections == 1
    async with RedisStreamsConsumer(redis_server.url) as consumer:
        got = await collect(consumer, 114)
    assert by_stream(got) == by_stream(first + second[:64])
    assert sink.stats.dropped == 136


@pytest.mark.anyio
async def test_the_consumer_skips_what_a_retried_batch_wrote_twice(
    redis_server: RedisServer,
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        for n in (0, 1, 2, 1, 2, 3):  # a batch of 0..2 written, then 1..3 again
            event = orjson.dumps({"ev": "T", "sym": "AAPL", "q": n})
            await client.xadd("polygon:stocks:T:AAPL", {"e": event, "p": "ab", "n": n})
        # Another producer's numbers are its own.
        await client.xadd("polygon:stocks:T:AAPL", {"e": b'{"q":9}', "p": "cd", "n": 0})
    finally:
        await client.aclose()
    async with RedisStreamsConsumer(redis_server.url) as consumer:
        got = await collect(consumer, 5)
        assert consumer.duplicates == 2
    assert [e["q"] for e in got] == [0, 1, 2, 3, 9]
    async with RedisStreamsConsumer(redis_server.url, deduplicate=False) as consumer:
        assert len(await collect(consumer, 7)) == 7


@pytest.mark.anyio
async def test_batch_entries_are_unpacked_and_their_repeats_skipped(
    redis_server: RedisServer,
) -> None:
    def entry(first: int, *frames: list[int]) -> dict[str, Any]:
        data = [[{"ev": "T", "sym": "AAPL", "q": q} for q in frame] for frame in frames]
        return {"b": orjson.dumps(data), "p": "ab", "n": first}

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        key = "polygon:stocks:T"
        await client.xadd(key, entry(0, [0, 1], [2]))
        await client.xadd(key, entry(3, [3, 4]))
        await client.xadd(key, entry(3, [3, 4]))  # the batch written again after a failure
        await client.xadd(key, entry(5, [5]))
        await client.xadd(key, {"b": b"[1, 2]", "p": "ab", "n": 6})  # not frames of events
        await client.xadd(key, {"b": b"not json", "p": "ab", "n": 7})
        await client.xadd(key, entry(8, [8]))
    finally:
        await client.aclose()
    async with RedisStreamsConsumer(redis_server.url) as consumer:
        got = await collect(consumer, 7)
        assert (consumer.duplicates, consumer.malformed) == (1, 2)
    assert [e["q"] for e in got] == [0, 1, 2, 3, 4, 5, 8]


@pytest.mark.anyio
async def test_a_consumer_started_at_dollar_reads_only_new_entries(
    redis_server: RedisServer, sim: MarketSimulator, mode: str
) -> None:
    old, new = stock_events(40, seed=3), stock_events(40, seed=4)
    sink = RedisStreamsSink(redis_server.url, **MODES[mode])
    streams = 1 if mode == "batch" else 4
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, old)
        await until(lambda: sink.stats.published == 40, "the old events in Redis")
        consumer = RedisStreamsConsumer(redis_server.url, start="$", block=0.2)
        reading = asyncio.ensure_future(collect(consumer, 40))
        await until(lambda: len(consumer.positions) == streams, "the consumer to find the streams")
        await publish(sim, new)
        got = await reading
        await consumer.close()
    assert by_stream(got) == by_stream(new)


@pytest.mark.anyio
async def test_a_consumer_resumes_from_its_positions_inside_a_batch(
    redis_server: RedisServer, sim: MarketSimulator
) -> None:
    """A consumer stopped inside a batch entry saved the position before it:
    the next one reads that entry again whole (at least once), then the rest."""
    events = stock_events(40, seed=5)
    sink = RedisStreamsSink(redis_server.url, batch_size=10)  # entries of one frame
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, events, per_frame=10)
        await until(lambda: sink.stats.published == 40, "the events in Redis")
    assert (await stored(redis_server.url))["polygon:stocks:T"] == [10, 10, 10, 10]
    async with RedisStreamsConsumer(redis_server.url) as consumer:
        assert await collect(consumer, 15) == events[:15]  # inside the second entry
        positions = dict(consumer.positions)
    async with RedisStreamsConsumer(redis_server.url, start=positions) as consumer:
        assert await collect(consumer, 30) == events[10:]


@pytest.mark.anyio
async def test_symbols_are_picked_by_the_consumer_or_by_key_in_batches(
    redis_server: RedisServer, sim: MarketSimulator
) -> None:
    """Batched entries of every symbol, filtered in the consumer; and batched
    entries per symbol, picked by key on the server."""
    events = stock_events(200, codes=("T", "Q"))
    per_code = RedisStreamsSink(redis_server.url, key_template="all:{cluster}:{ev}")
    per_symbol = RedisStreamsSink(redis_server.url, key_template="one:{cluster}:{ev}:{sym}")
    await publish_trades_and_quotes(sim, events, per_code, per_symbol)
    wanted = [e for e in events if e["sym"] in ("BRK.B", "SPY")]
    async with RedisStreamsConsumer(
        redis_server.url, pattern="all:*", symbols=["BRK.B", "SPY"]
    ) as consumer:
        got = await collect(consumer, len(wanted))
    assert by_stream(got) == by_stream(wanted)
    assert [e for e in got if e["ev"] == "T"] == [e for e in wanted if e["ev"] == "T"]
    keys = ["one:stocks:T:BRK.B", "one:stocks:Q:BRK.B"]
    async with RedisStreamsConsumer(redis_server.url, keys=keys) as consumer:
        got = await collect(consumer, 50)
    assert by_stream(got) == by_stream([e for e in events if e["sym"] == "BRK.B"])


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="'several'"):
        RedisStreamsSink(packing="several")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="maxlen"):
        RedisStreamsSink(maxlen=0)
    with pytest.raises(ConfigurationError, match="key_template"):
        RedisStreamsSink(key_template="polygon:{nope}")
    with pytest.raises(ConfigurationError, match="'mars'"):
        RedisStreamsConsumer(symbols=["AAPL"], cluster="mars")


def test_the_cli_publishes_what_it_prints(redis_server: RedisServer) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "polygon.cli", "demo", "stocks", "trades"),
            *("AAPL", "MSFT", "--rate", "400", "--count", "60", "--format", "jsonl"),
            *("--sink", redis_server.url),
        ],
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert result.returncode == 0, result.stderr
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(printed) == 60
    summary = result.stderr.strip().splitlines()[-1]
    assert f"sink {redis_server.url}: published " in summary
    published = int(summary.rsplit("published ", 1)[1].split(",")[0])
    assert published >= 60
    assert "dropped 0" in summary.rsplit("sink", 1)[1]

    async def read_back() -> list[Event]:
        async with RedisStreamsConsumer(redis_server.url) as consumer:
            return await collect(consumer, published)

    stored = by_stream(asyncio.run(read_back()))
    for key, events in by_stream(printed).items():
        assert stored[key][: len(events)] == events  # everything printed, in order


@pytest.mark.parametrize("url", ["kafka://localhost:9092", "localhost:6379"])
def test_a_sink_url_of_an_unknown_scheme_is_a_usage_error(url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polygon.cli", "demo", "--count", "1", "--sink", url],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--sink" in result.stderr and "redis://" in result.stderr


def test_the_package_imports_without_the_extras_and_names_them_when_missing() -> None:
    code = (
        "import sys; sys.modules['redis'] = None; sys.modules['nats'] = None\n"
        "import polygon.streaming.sinks\n"
        "for name in ('redis', 'nats'):\n"
        "    try:\n"
        "        __import__('polygon.streaming.sinks.' + name)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'polygon-streaming[redis]'" in result.stdout
    assert "pip install 'polygon-streaming[nats]'" in result.stdout
