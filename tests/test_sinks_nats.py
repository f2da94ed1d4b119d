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
    publish_trades_and_quotes,
    running,
    stock_events,
    subscribed_client,
    until,
)

from polygon import StreamClient
from polygon.enums import StreamCluster
from polygon.streaming.errors import ConfigurationError
from polygon.streaming.simulator import MarketSimulator, SimulatorThread
from polygon.streaming.sinks._base import Batch, Frame
from polygon.streaming.sinks.nats import (
    PER_SYMBOL_SUBJECT_TEMPLATE,
    NatsJetStreamConsumer,
    NatsJetStreamSink,
    default_stream_name,
    subject_token,
)

pytestmark = pytest.mark.timeout(60)

Event = dict[str, Any]


# The sink's options in each mode: the default (one subject per event code,
# batched), one subject per symbol batched, and one message per event.
MODES: dict[str, dict[str, Any]] = {
    "batch": {},
    "symbol-batch": {"subject_template": PER_SYMBOL_SUBJECT_TEMPLATE},
    "event": {"subject_template": PER_SYMBOL_SUBJECT_TEMPLATE, "packing": "event"},
}
PER_SYMBOL_SUBJECTS = {f"polygon.stocks.T.{s}" for s in ("AAPL", "BRK_B", "MSFT", "SPY")}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with running(NatsServer(tmp_path / "nats")) as server:
        yield server


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


async def stream_state(url: str, stream: str) -> tuple[int, list[str]]:
    """The number of messages in ``stream`` and the subjects it was made with."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=">")
        return info.state.messages, list(info.config.subjects or [])
    finally:
        await nc.close()


async def stream_config(url: str, stream: str) -> tuple[int | None, int | None]:
    """``max_msgs_per_subject`` and ``max_bytes`` of ``stream``."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.config.max_msgs_per_subject, info.config.max_bytes
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
    nats_server: NatsServer, sim: MarketSimulator, mode: str
) -> None:
    events = stock_events(400)
    sink = NatsJetStreamSink(nats_server.url, batch_size=64, **MODES[mode])
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, events)
        await until(lambda: sink.stats.published == 400, "the sink to publish everything")
    assert sink.stats.dropped == sink.stats.failures == 0
    assert sink.stream == "POLYGON_STOCKS"
    messages, subjects = await stream_state(nats_server.url, "POLYGON_STOCKS")
    assert subjects == ["polygon.stocks.>"]
    per_subject = await subjects_of(nats_server.url, "POLYGON_STOCKS")
    if mode == "event":
        assert messages == 400
        assert await stream_config(nats_server.url, "POLYGON_STOCKS") == (100_000, -1)
    else:  # frames of 25 events, batches of at most 64: messages hold several events
        assert messages < 100
        assert await stream_config(nats_server.url, "POLYGON_STOCKS") == (10_000, 1 << 30)
    if mode == "batch":
        assert list(per_subject) == ["polygon.stocks.T"]
    else:
        assert set(per_subject) == PER_SYMBOL_SUBJECTS
    async with NatsJetStreamConsumer(nats_server.url) as consumer:
        got = await collect(consumer, 400)
    if mode == "symbol-batch":  # a batch's messages go subject by subject
        assert by_stream(got) == by_stream(events)
    else:
        assert got == events  # one stream, one publisher: the very order received


@pytest.mark.parametrize("mode", list(MODES))
def test_stream_client_events_come_back_from_jetstream_exactly(
    nats_server: NatsServer, mode: str
) -> None:
    events = stock_events(300)
    sink = NatsJetStreamSink(nats_server.url, batch_size=50, **MODES[mode])
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

    assert by_stream(asyncio.run(read_back())) == by_stream(events)


@pytest.mark.anyio
@pytest.mark.parametrize("packing", ["batch", "event"])
async def test_subject_template_stream_name_and_a_filtered_consumer(
    nats_server: NatsServer, sim: MarketSimulator, packing: str
) -> None:
    events = stock_events(240, codes=("T", "Q"))  # every frame holds trades and quotes
    sink = NatsJetStreamSink(
        nats_server.url,
        subject_template="md.{cluster}.{sym}.{ev}",
        stream="MARKET",
        packing=packing,
    )
    await publish_trades_and_quotes(sim, events, sink)
    assert sink.subject_for(events[2]) == "md.stocks.BRK_B.T"
    messages, subjects = await stream_state(nats_server.url, "MARKET")
    assert subjects == ["md.stocks.>"]
    assert messages == 240 if packing == "event" else messages < 240
    brk = f"md.stocks.{subject_token('BRK.B')}.*"
    async with NatsJetStreamConsumer(nats_server.url, stream="MARKET", subjects=brk) as consumer:
        got = await collect(consumer, 60)
    assert by_stream(got) == by_stream([e for e in events if e["sym"] == "BRK.B"])
    both = ["md.stocks.AAPL.Q", "md.stocks.SPY.Q"]
    async with NatsJetStreamConsumer(nats_server.url, stream="MARKET", subjects=both) as consumer:
        got = await collect(consumer, 60)
    wanted = [e for e in events if e["ev"] == "Q" and e["sym"] in ("AAPL", "SPY")]
    assert by_stream(got) == by_stream(wanted)


@pytest.mark.anyio
async def test_symbols_are_picked_by_the_consumer_in_batches_of_every_symbol(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    events = stock_events(200, codes=("T", "Q"))
    sink = NatsJetStreamSink(nats_server.url)
    await publish_trades_and_quotes(sim, events, sink)
    assert set(await subjects_of(nats_server.url, "POLYGON_STOCKS")) == {
        "polygon.stocks.T",
        "polygon.stocks.Q",
    }
    wanted = [e for e in events if e["sym"] in ("BRK.B", "SPY")]
    async with NatsJetStreamConsumer(nats_server.url, symbols=["BRK.B", "SPY"]) as consumer:
        got = await collect(consumer, len(wanted))
    assert by_stream(got) == by_stream(wanted)
    trades = "polygon.stocks.T"
    async with NatsJetStreamConsumer(nats_server.url, subjects=trades, symbols={"SPY"}) as consumer:
        got = await collect(consumer, 25)
    assert got == [e for e in events if e["ev"] == "T" and e["sym"] == "SPY"]


@pytest.mark.anyio
async def test_an_existing_stream_is_used_as_it_is(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(name="POLYGON_STOCKS", subjects=["polygon.>"], max_msgs=50)
    await nc.close()
    sink = NatsJetStreamSink(nats_server.url, packing="event")
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, stock_events(80))
        await until(lambda: sink.stats.published == 80, "the sink to publish everything")
    assert await stream_state(nats_server.url, "POLYGON_STOCKS") == (50, ["polygon.>"])


@pytest.mark.anyio
async def test_a_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, sim: MarketSimulator, mode: str
) -> None:
    """nats-server is stopped while events flow and started again on the same
    port and store. The sink publishes again what was not acknowledged, and
    JetStream drops what it already had (Nats-Msg-Id); the consumer reads all
    along, reconnecting by itself."""
    events = stock_events(3000)
    server = NatsServer(tmp_path / "nats")
    with running(server):
        sink = NatsJetStreamSink(
            server.url, batch_size=100, retry_delay=0.05, ack_timeout=2.0, **MODES[mode]
        )
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
        # Each event stored once: had a batch been stored twice, the first
        # 3000 events read would hold repeats and lack the last ones.
        async with NatsJetStreamConsumer(server.url) as again:
            assert by_stream(await collect(again, 3000)) == by_stream(events)
            assert again.sequence == messages
    assert sink.stats.dropped == 0
    assert sink.stats.reconnects >= 1
    assert consumer.reconnects >= 1
    assert by_stream(got) == by_stream(events)
    if mode == "event":
        assert messages == 3000


@pytest.mark.anyio
async def test_a_hung_broker_never_holds_up_the_client_and_drops_are_exact(
    nats_server: NatsServer, sim: MarketSimulator, mode: str
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
        **MODES[mode],
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
    assert by_stream(got) == by_stream(first + second[:64])


async def read_only_new(
    url: str, sim: MarketSimulator, events: list[Event], at: int, per_frame: int = 25
) -> list[Event]:
    """What a consumer started at "new" reads of ``events``, published once it
    has taken its place after the stream's last message, sequence ``at``."""
    consumer = NatsJetStreamConsumer(url, start="new")
    reading = asyncio.ensure_future(collect(consumer, len(events)))
    await until(lambda: consumer.sequence == at, "the consumer to take its place")
    await publish(sim, events, per_frame=per_frame)
    got = await reading
    await consumer.close()
    return got


@pytest.mark.anyio
async def test_a_consumer_resumes_from_a_sequence_or_reads_only_new_messages(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    old, new = stock_events(40, seed=3), stock_events(40, seed=4)
    sink = NatsJetStreamSink(nats_server.url, packing="event")
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, old)
        await until(lambda: sink.stats.published == 40, "the old events stored")
        async with NatsJetStreamConsumer(nats_server.url, start=31) as consumer:
            assert await collect(consumer, 10) == old[30:]
            assert consumer.sequence == 40
        assert await read_only_new(nats_server.url, sim, new, at=40) == new


@pytest.mark.anyio
async def test_a_consumer_resumes_inside_a_batch_from_its_sequence(
    nats_server: NatsServer, sim: MarketSimulator
) -> None:
    """A consumer stopped inside a batch message has the sequence of the one
    before: the next one reads that message again whole, then the rest; and
    one started at "new" reads only the batches published after it."""
    old, new = stock_events(40, seed=5), stock_events(40, seed=6)
    sink = NatsJetStreamSink(nats_server.url, batch_size=10)  # messages of one frame
    async with await subscribed_client(sim) as client:
        await client.add_sink(sink)
        await publish(sim, old, per_frame=10)
        await until(lambda: sink.stats.published == 40, "the old events stored")
        assert (await stream_state(nats_server.url, "POLYGON_STOCKS"))[0] == 4
        async with NatsJetStreamConsumer(nats_server.url) as consumer:
            assert await collect(consumer, 15) == old[:15]  # inside the second message
            assert consumer.sequence == 1
        async with NatsJetStreamConsumer(nats_server.url, start=2) as consumer:
            assert await collect(consumer, 30) == old[10:]
            assert consumer.sequence == 4
        assert await read_only_new(nats_server.url, sim, new, at=4, per_frame=10) == new


def test_a_batch_too_large_for_one_message_is_split_and_a_huge_event_dropped() -> None:
    """Halved until each message fits the server's max_payload; the pieces are
    told apart by their message ids, the same when published again."""
    sink = NatsJetStreamSink(batch_size=1000)
    sink.attach(StreamCluster.STOCKS)
    events = stock_events(99)
    huge = {"ev": "T", "sym": "AAPL", "c": "x" * 5000}
    frames = [Frame("T", 50, events[:50], None), Frame("T", 50, [*events[50:], huge], None)]
    batch = Batch(frames, 700, 100)
    messages = sink._batch_messages(batch, 2000)
    assert batch.refused == 1
    assert all(len(data) <= 2000 for _, _, data in messages)
    unpacked = [e for _, _, data in messages for frame in orjson.loads(data) for e in frame]
    assert unpacked == events
    ids = [msg_id for _, msg_id, _ in messages]
    assert len(set(ids)) == len(ids) and ids[0] == "700"
    batch.refused = 0
    assert sink._batch_messages(batch, 2000) == messages


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="'several'"):
        NatsJetStreamSink(packing="several")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="subject_template"):
        NatsJetStreamSink(subject_template="polygon.{nope}")
    with pytest.raises(ConfigurationError, match="'later'"):
        NatsJetStreamConsumer(start="later")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="'mars'"):
        NatsJetStreamConsumer(symbols=["AAPL"], cluster="mars")


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
