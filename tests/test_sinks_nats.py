"""NatsJetStreamSink and NatsJetStreamConsumer against a real nats-server -js.

simulator -> client -> sink -> nats-server -> consumer, with the server
stopped, paused and restarted (on the same store) under the sink.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from _brokers import (
    SUBSCRIBED,
    NatsServer,
    by_stream,
    collect,
    publish,
    running,
    stock_events,
    subscribed_client,
    until,
)

from polygon import StreamClient
from polygon.streaming.simulator import MarketSimulator, SimulatorThread
from polygon.streaming.sinks.nats import (
    NatsJetStreamConsumer,
    NatsJetStreamSink,
    default_stream_name,
    subject_token,
)

pytestmark = pytest.mark.timeout(60)

Event = dict[str, Any]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with running(NatsServer(tmp_path / "nats")) as server:
        yield server


async def stream_state(url: str, stream: str) -> tuple[int, list[str]]:
    """The number of messages in ``stream`` and the subjects it was made with."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=">")
        return info.state.messages, list(info.config.subjects or [])
    finally:
        await nc.close()


async def per_subject_limit(url: str, stream: str) -> int | None:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.config.max_msgs_per_subject
    finally:
        await nc.close()


async def subjects_of(url: str, stream: str) -> dict[str, int]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=">")
        return dict(info.state.subjects or {})
    finally:
        await nc.close()


def test_symbols_become_valid_subject_tokens() -> None:
    assert subject_token("BRK.B") == "BRK_B"
    assert subject_token("O:SPY251219C00650000") == "O_SPY251219C00650000"
    assert subject_token("EUR/USD") == "EUR_USD"
    assert subject_token("a b*c>d") == "a_b_c_d"
    assert subject_token("") == "_"
    assert default_stream_name("stocks") == "POLYGON_STOCKS"


@pytest.mark.anyio
async def test_async_client_events_come_back_from_jetstream_exactly(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    events = stock_events(400)
    sink = NatsJetStreamSink(nats_server.url, batch_size=64)
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, events)
        await until(lambda: sink.stats.published == 400, "the sink to publish everything")
    assert sink.stats.dropped == sink.stats.failures == 0
    assert sink.stream == "POLYGON_STOCKS"
    assert await stream_state(nats_server.url, "POLYGON_STOCKS") == (400, ["polygon.stocks.>"])
    assert await per_subject_limit(nats_server.url, "POLYGON_STOCKS") == 100_000
    assert await subjects_of(nats_server.url, "POLYGON_STOCKS") == {
        "polygon.stocks.T.AAPL": 100,
        "polygon.stocks.T.BRK_B": 100,
        "polygon.stocks.T.MSFT": 100,
        "polygon.stocks.T.SPY": 100,
    }
    async with NatsJetStreamConsumer(nats_server.url) as consumer:
        got = await collect(consumer, 400)
    assert got == events  # one stream, one publisher: the very order received


def test_stream_client_events_come_back_from_jetstream_exactly(nats_server: NatsServer) -> None:
    events = stock_events(300)
    sink = NatsJetStreamSink(nats_server.url, batch_size=50)
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
        async with NatsJetStreamConsumer(nats_server.url, stream="POLYGON_STOCKS") as consumer:
            return await collect(consumer, 300)

    assert asyncio.run(read_back()) == events


@pytest.mark.anyio
async def test_subject_template_stream_name_and_a_filtered_consumer(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    events = stock_events(240, codes=("T", "Q"))
    sink = NatsJetStreamSink(
        nats_server.url, subject_template="md.{cluster}.{sym}.{ev}", stream="MARKET"
    )
    async with await subscribed_client(sim) as client:
        await client.subscribe_stock_quotes(["AAPL", "BRK.B", "MSFT", "SPY"])
        await sim.wait_for(lambda: "Q.SPY" in sim.subscriptions("stocks"))
        await client.add_sink(sink)
        await publish(sim, events)
        await until(lambda: sink.stats.published == 240, "the sink to publish everything")
    assert sink.subject_for(events[2]) == "md.stocks.BRK_B.T"
    messages, subjects = await stream_state(nats_server.url, "MARKET")
    assert (messages, subjects) == (240, ["md.stocks.>"])
    brk = f"md.stocks.{subject_token('BRK.B')}.*"
    async with NatsJetStreamConsumer(nats_server.url, stream="MARKET", subjects=brk) as consumer:
        got = await collect(consumer, 60)
    assert got == [e for e in events if e["sym"] == "BRK.B"]
    both = ["md.stocks.AAPL.Q", "md.stocks.SPY.Q"]
    async with NatsJetStreamConsumer(nats_server.url, stream="MARKET", subjects=both) as consumer:
        got = await collect(consumer, 60)
    assert got == [e for e in events if e["ev"] == "Q" and e["sym"] in ("AAPL", "SPY")]


@pytest.mark.anyio
async def test_an_existing_stream_is_used_as_it_is(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(name="POLYGON_STOCKS", subjects=["polygon.>"], max_msgs=50)
    await nc.close()
    sink = NatsJetStreamSink(nats_server.url)
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, stock_events(80))
        await until(lambda: sink.stats.published == 80, "the sink to publish everything")
    assert await stream_state(nats_server.url, "POLYGON_STOCKS") == (50, ["polygon.>"])


@pytest.mark.anyio
async def test_a_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, sim: MarketSimulator
) -> None:
    """nats-server is stopped while events flow and started again on the same
    port and store. The sink publishes again what was not acknowledged, and
    JetStream drops what it already had (Nats-Msg-Id); the consumer reads all
    along, reconnecting by itself."""
    events = stock_events(3000)
    server = NatsServer(tmp_path / "nats")
    with running(server):
        sink = NatsJetStreamSink(server.url, batch_size=100, retry_delay=0.05, ack_timeout=2.0)
        consumer = NatsJetStreamConsumer(server.url, retry_delay=0.05)
        reading = asyncio.ensure_future(collect(consumer, 3000, within=45))
        async with await subscribed_client(sim) as client:
            await client.add_sink(sink)
            feeding = asyncio.ensure_future(publish(sim, events, per_frame=10, pause=0.002))
            await until(lambda: sink.stats.published >= 500, "the first events stored")
            await asyncio.to_thread(server.stop)
            await until(lambda: sink.stats.failures >= 1, "the sink to notice")
            await until(lambda: sink.stats.offered >= 2000, "events to arrive while it is down")
            await asyncio.to_thread(server.start)
            await feeding
            await until(lambda: sink.stats.published == 3000, "the sink to catch up", within=30)
            assert client.stats.connections == 1  # the market data never noticed
        got = await reading
        await consumer.close()
        messages, _ = await stream_state(server.url, "POLYGON_STOCKS")
    assert sink.stats.dropped == 0
    assert sink.stats.reconnects >= 1
    assert consumer.reconnects >= 1
    assert by_stream(got) == by_stream(events)
    assert messages == 3000  # each event stored once


@pytest.mark.anyio
async def test_a_hung_broker_never_holds_up_the_client_and_drops_are_exact(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    """nats-server stops answering (SIGSTOP): the client keeps its connection
    and its keepalive; the sink keeps what fits in its buffer and counts the rest."""
    first, second = stock_events(50, seed=1), stock_events(200, seed=2)
    sink = NatsJetStreamSink(
        nats_server.url,
        max_buffered_events=64,
        batch_size=16,
        ack_timeout=0.3,
        connect_timeout=0.3,
        retry_delay=0.05,
    )
    client = await subscribed_client(sim, ping_interval=0.1, ping_timeout=0.5)
    async with client:
        await client.add_sink(sink)
        await publish(sim, first)
        await until(lambda: sink.stats.published == 50, "the first events stored")
        await asyncio.to_thread(nats_server.pause)
        try:
            await publish(sim, second, per_frame=20)
            await until(lambda: sink.stats.offered == 250, "the client to read everything")
            assert sink.stats.dropped == 200 - 64
            assert sink.stats.backlog == 64
            await until(lambda: sink.stats.failures >= 3, "publishes to time out")
            assert client.stats.connections == 1
            assert client.stats.reconnects == 0
        finally:
            nats_server.resume()
        await until(lambda: sink.stats.published == 50 + 64, "the buffer to drain")
        assert client.stats.connections == 1
    async with NatsJetStreamConsumer(nats_server.url) as consumer:
        got = await collect(consumer, 114)
    assert got == first + second[:64]
    assert sink.stats.dropped == 136


@pytest.mark.anyio
async def test_a_consumer_resumes_from_a_sequence_or_reads_only_new_messages(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    old, new = stock_events(40, seed=3), stock_events(40, seed=4)
    sink = NatsJetStreamSink(nats_server.url)
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, old)
        await until(lambda: sink.stats.published == 40, "the old events stored")
        async with NatsJetStreamConsumer(nats_server.url, start=31) as consumer:
            assert await collect(consumer, 10) == old[30:]
            assert consumer.sequence == 40
        consumer = NatsJetStreamConsumer(nats_server.url, start="new")
        reading = asyncio.ensure_future(collect(consumer, 40))
        await until(lambda: consumer.sequence == 40, "the consumer to take its place")
        await publish(sim, new)
        got = await reading
        await consumer.close()
    assert got == new


def test_the_cli_publishes_what_it_prints(nats_server: NatsServer) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "polygon.cli", "demo", "stocks", "trades"),
            *("AAPL", "BRK.B", "--rate", "400", "--count", "60", "--format", "jsonl"),
            *("--sink", nats_server.url),
        ],
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert result.returncode == 0, result.stderr
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(printed) == 60
    summary = result.stderr.strip().splitlines()[-1]
    assert f"sink {nats_server.url}: published " in summary
    published = int(summary.rsplit("published ", 1)[1].split(",")[0])
    assert published >= 60
    assert "dropped 0" in summary.rsplit("sink", 1)[1]

    async def read_back() -> list[Event]:
        async with NatsJetStreamConsumer(nats_server.url) as consumer:
            return await collect(consumer, published)

    stored = asyncio.run(read_back())
    assert stored[:60] == printed  # everything printed, in the order printed
