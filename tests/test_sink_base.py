"""The shared sink machinery, with an in-memory broker that can be made to fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import orjson
import pytest

from polygon import AsyncStreamClient, StreamClient
from polygon.enums import StreamCluster
from polygon.streaming.simulator import MarketSimulator, SimulatorThread
from polygon.streaming.sinks import BufferedSink
from polygon.streaming.sinks._base import Batch, Frame
from polygon.streaming.sinks._topics import ENTRY_EVENTS, Group, group_batch, unpack_batch

pytestmark = pytest.mark.timeout(20)

Event = dict[str, Any]


class MemoryBrokerSink(BufferedSink):
    """A sink whose broker is a list; ``failing`` makes writes fail."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.published: list[Event] = []
        self.failing = False
        self.connects = 0
        self.topics: list[str] = []
        self.batches: list[tuple[int, int]] = []

    async def _connect(self) -> None:
        if self.failing:
            raise ConnectionError("broker down")
        self.connects += 1

    async def _write(self, batch: Batch) -> None:
        self.batches.append((batch.first, batch.size))
        if self.failing:
            raise ConnectionError("broker down")
        await asyncio.sleep(0)  # a real broker round trip yields to the loop
        events = batch.events()
        self.published.extend(events)
        self.topics.extend("{cluster}.{ev}.{sym}".format(**self.topic_fields(e)) for e in events)

    async def _disconnect(self) -> None:
        return None


def trades(first: int, count: int, symbol: str = "AAPL") -> list[Event]:
    return [{"ev": "T", "sym": symbol, "q": q} for q in range(first, first + count)]


async def drained(sink: MemoryBrokerSink, count: int) -> None:
    with anyio.fail_after(5):
        while len(sink.published) < count:  # noqa: ASYNC110 - a counter, bounded by the deadline
            await asyncio.sleep(0.002)


@pytest.mark.anyio
async def test_events_are_published_in_order_and_status_is_left_out() -> None:
    sink = MemoryBrokerSink(batch_size=7)
    sink.attach(StreamCluster.STOCKS)
    await sink.start()
    sink.offer([{"ev": "status", "status": "success", "message": "x"}, *trades(0, 10)])
    sink.offer(trades(10, 15))
    await drained(sink, 25)
    assert [e["q"] for e in sink.published] == list(range(25))
    assert sink.topics[0] == "stocks.T.AAPL"
    assert (sink.stats.offered, sink.stats.published, sink.stats.dropped) == (25, 25, 0)
    await sink.close()


@pytest.mark.anyio
async def test_a_failed_write_is_retried_after_reconnecting_and_nothing_is_lost() -> None:
    sink = MemoryBrokerSink(retry_delay=0.01)
    sink.attach(StreamCluster.STOCKS)
    await sink.start()
    sink.offer(trades(0, 5))
    await drained(sink, 5)
    sink.failing = True
    sink.offer(trades(5, 5))
    with anyio.fail_after(5):
        while sink.stats.failures < 2:  # noqa: ASYNC110 - a counter, bounded by the deadline
            await asyncio.sleep(0.002)
    sink.failing = False
    await drained(sink, 10)
    assert [e["q"] for e in sink.published] == list(range(10))
    assert sink.stats.reconnects == 1
    await sink.close()


@pytest.mark.anyio
async def test_a_full_buffer_refuses_new_events_and_counts_them() -> None:
    sink = MemoryBrokerSink(max_buffered_events=8)
    sink.attach(StreamCluster.STOCKS)
    sink.failing = True  # nothing drains: the buffer fills
    sink.offer(trades(0, 5))
    sink.offer(trades(5, 5))
    assert sink.stats.dropped == 2
    assert sink.stats.backlog == 8
    sink.failing = False
    await sink.start()
    await drained(sink, 8)
    assert [e["q"] for e in sink.published] == list(range(8))
    await sink.close()


@pytest.mark.anyio
async def test_close_flushes_what_is_buffered() -> None:
    sink = MemoryBrokerSink()
    sink.attach(StreamCluster.CRYPTO)
    await sink.start()
    sink.offer([{"ev": "XT", "pair": "BTC-USD", "q": q} for q in range(100)])
    await sink.close()
    assert len(sink.published) == 100
    assert sink.topics[0] == "crypto.XT.BTC-USD"
    assert sink.stats.backlog == 0


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(rate=0) as simulator:
        yield simulator


@pytest.mark.anyio
async def test_an_async_client_publishes_everything_it_receives(sim: MarketSimulator) -> None:
    sink = MemoryBrokerSink()
    async with AsyncStreamClient("k", "stocks", host=sim.url) as client:
        await client.add_sink(sink)
        await client.subscribe_stock_trades(["AAPL"])
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
        await sim.publish("stocks", trades(0, 50))
        await drained(sink, 50)
    assert [e["q"] for e in sink.published] == list(range(50))


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(rate=0) as simulator:
        yield simulator


def test_a_stream_client_sink_added_before_start_sees_every_event(
    sim_thread: SimulatorThread,
) -> None:
    sink = MemoryBrokerSink()
    sim = sim_thread.simulator
    with StreamClient("k", "stocks", host=sim_thread.url) as client:
        client.add_sink(sink)
        client.subscribe_stock_trades(["AAPL"])
        client.start_stream_thread()
        sim_thread.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"}, timeout=5)
        sim_thread.call(sim.publish, "stocks", trades(0, 40))
        sim_thread.wait_for(lambda: len(sink.published) == 40, timeout=5)
    assert [e["q"] for e in sink.published] == list(range(40))


class TextSink(MemoryBrokerSink):
    """A sink that, like the default broker layouts, needs only the frames' text."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._keeps_events = False


def frame_of(events: list[Event]) -> tuple[list[Event], str]:
    return events, orjson.dumps(events).decode()


@pytest.mark.anyio
async def test_a_frame_with_its_text_is_buffered_as_text_and_split_when_needed() -> None:
    sink = TextSink(batch_size=8, max_buffered_events=25)
    sink.attach(StreamCluster.STOCKS)
    first, text = frame_of(trades(0, 10))
    sink.offer(first, text)
    first.clear()  # a batch handler may change the list it was handed: no matter
    assert sink._frames[0].events is None and sink._frames[0].text == text
    sink.offer(*frame_of(trades(10, 20)))  # only 15 fit
    assert (sink.stats.offered, sink.stats.dropped, sink.stats.backlog) == (30, 5, 25)
    await sink.start()
    await drained(sink, 25)
    assert [e["q"] for e in sink.published] == list(range(25))
    # Batches of at most 8 events, numbered from the first event of each.
    assert sink.batches == [(0, 8), (8, 8), (16, 8), (24, 1)]
    await sink.close()


@pytest.mark.anyio
async def test_a_batch_is_written_again_as_it_was_after_a_failure() -> None:
    sink = MemoryBrokerSink(batch_size=10, retry_delay=0.01)
    sink.attach(StreamCluster.STOCKS)
    sink.failing = True
    sink.offer(trades(0, 6))
    await sink.start()
    with anyio.fail_after(5):
        while sink.stats.failures < 2:  # noqa: ASYNC110 - a counter, bounded by the deadline
            await asyncio.sleep(0.002)
    sink.offer(trades(6, 6))  # arrives while the first batch is retried
    sink.failing = False
    await drained(sink, 12)
    assert set(sink.batches[:-1]) == {(0, 6)}  # the same batch each time
    assert sink.batches[-1] == (6, 6)
    await sink.close()


def test_status_events_and_elements_that_are_not_objects_are_left_out() -> None:
    sink = MemoryBrokerSink()
    sink.attach(StreamCluster.STOCKS)
    events: list[Any] = [{"ev": "status", "status": "x"}, *trades(0, 2), 5, [1]]
    sink.offer(events, orjson.dumps(events).decode())
    frame = sink._frames[0]
    assert (frame.code, frame.text, frame.events) == ("T", None, trades(0, 2))
    single = trades(9, 1)  # a frame of one object, not an array: the client wraps it
    sink.offer(single, orjson.dumps(single[0]).decode())
    assert sink._frames[-1].text is None
    sink._frames.pop()
    mixed = [*trades(2, 1), {"ev": "Q", "sym": "AAPL"}]
    sink.offer(mixed, orjson.dumps(mixed).decode())
    assert sink._frames[1].code is None
    assert sink.stats.offered == 5


def test_groups_keep_the_order_and_number_of_their_first_event() -> None:
    quote = {"ev": "Q", "sym": "AAPL", "q": 99}
    t1, t2 = trades(0, 2), trades(2, 2, "MSFT")
    frames = [
        Frame("T", 2, None, orjson.dumps(t1).decode()),
        Frame(None, 3, [quote, *t2], None),
        Frame("T", 1, trades(4, 1), None),
    ]
    batch = Batch(frames, 100, 6)
    groups = group_batch(batch, lambda e: e["ev"], lambda code: code)
    assert [(name, g.first, g.size) for name, g in groups.items()] == [("T", 100, 5), ("Q", 102, 1)]
    (chunk,) = groups["T"].chunks()
    assert chunk.events() == [*t1, *t2, *trades(4, 1)]
    payload = orjson.loads(b"".join(chunk.payload()))
    assert payload == [t1, [*t2], trades(4, 1)]  # the frames, as they came or encoded
    # Frames with their text: the texts as they came, nested.
    texts = Group(0)
    for events in (t1, t2):
        texts.add_frame(Frame("T", 2, None, orjson.dumps(events).decode()))
    (chunk,) = texts.chunks()
    assert b"".join(chunk.payload()) == b"[" + orjson.dumps(t1) + b"," + orjson.dumps(t2) + b"]"
    assert unpack_batch(b"".join(chunk.payload())) == [*t1, *t2]
    assert unpack_batch(b"[[1]]") is None and unpack_batch(b"{") is None


def test_a_group_is_cut_into_entries_of_about_entry_events() -> None:
    """Whole frames, never split; single events in runs of at most ENTRY_EVENTS."""
    third, most = ENTRY_EVENTS // 3, ENTRY_EVENTS * 2
    group = Group(10)
    for start in range(0, 6 * third, third):
        group.add_frame(Frame("T", third, trades(start, third), None))
    group.add_frame(Frame("T", most, trades(6 * third, most), None))  # larger on its own
    for event in trades(6 * third + most, ENTRY_EVENTS * 2 + 1):
        group.add_event(event)
    sizes = [chunk.size for chunk in group.chunks()]
    assert sizes == [3 * third, 3 * third, most, ENTRY_EVENTS, ENTRY_EVENTS, 1]
    offsets = [chunk.offset for chunk in group.chunks()]
    assert offsets == [sum(sizes[:i]) for i in range(len(sizes))]


@pytest.mark.anyio
async def test_the_sink_connects_when_started_not_when_the_first_events_wait() -> None:
    sink = MemoryBrokerSink()
    sink.attach(StreamCluster.STOCKS)
    await sink.start()
    with anyio.fail_after(5):
        while sink.connects == 0:  # noqa: ASYNC110 - a counter, bounded by the deadline
            await asyncio.sleep(0.002)
    assert sink.batches == []
    await sink.close()
