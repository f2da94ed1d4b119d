"""The buffer between the loop thread and a consumer thread, and the loop thread itself."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import orjson
import pytest

from polygon.streaming._buffer import CLOSED, ConnectionEnded, StreamFailed, events_in
from polygon.streaming._thread_buffer import (
    COUNT_ON_TAKE_CHARS,
    MIN_EVENT_CHARS,
    UNCOUNTED,
    Frame,
    ThreadEventBuffer,
)
from polygon.streaming._thread_loop import LoopThread

pytestmark = pytest.mark.timeout(10)


def frame(first: int, count: int) -> list[dict[str, object]]:
    return [{"ev": "T", "q": q} for q in range(first, first + count)]


def drain(buffer: ThreadEventBuffer) -> list[object]:
    """Every item, over as many takes as the chunk size needs."""
    taken: list[object] = []
    while chunk := buffer.take_all(timeout=0.01):
        taken.extend(chunk)
    return taken


def test_one_take_hands_over_a_bounded_chunk() -> None:
    # The consumer's chunk counts against memory too: it is 1/16 of the limit.
    buffer = ThreadEventBuffer(max_events=160)
    for start in range(0, 50, 10):
        buffer.put(frame(start, 10))
    assert buffer.chunk_events == 10
    first = buffer.take_all(timeout=1)
    assert [item[0] for item in first] == [frame(0, 10)]  # type: ignore[index]
    assert buffer.stats.backlog == 40
    assert len(drain(buffer)) == 4


def test_frames_and_markers_come_out_in_order_with_their_raw_text() -> None:
    buffer = ThreadEventBuffer(max_events=100)
    lost = ConnectionEnded(ConnectionError("gone"))
    buffer.put(frame(0, 2), "raw-0")
    buffer.put_marker(lost)
    buffer.put(frame(2, 1), "raw-1")
    taken = buffer.take_all(timeout=1)
    assert taken == [(frame(0, 2), "raw-0"), lost, (frame(2, 1), "raw-1")]
    stats = buffer.stats
    assert (stats.received, stats.delivered, stats.backlog, stats.dropped) == (3, 3, 0, 0)


def test_drop_oldest_counts_exactly_and_keeps_markers_and_the_newest_frame() -> None:
    buffer = ThreadEventBuffer(max_events=25, overflow="drop_oldest")
    marker = ConnectionEnded(None)
    buffer.put(frame(0, 10))
    buffer.put_marker(marker)
    for start in range(10, 60, 10):
        buffer.put(frame(start, 10))
    taken = drain(buffer)
    frames = [item.events for item in taken if type(item) is Frame]
    assert [e["q"] for f in frames for e in f] == list(range(40, 60))
    assert marker in taken
    stats = buffer.stats
    assert (stats.received, stats.dropped, stats.delivered, stats.backlog) == (60, 40, 20, 0)


def raw(first: int, count: int) -> str:
    return orjson.dumps(frame(first, count)).decode()


def counts(buffer: ThreadEventBuffer) -> tuple[int, int, int, int]:
    s = buffer.stats
    return (s.received, s.delivered, s.dropped, s.backlog)


def settling(buffer: ThreadEventBuffer) -> ThreadEventBuffer:
    """``buffer``, leaving every uncounted frame to the consumer to settle, as it
    does frames longer than COUNT_ON_TAKE_CHARS (these short ones are easier to read)."""
    buffer.count_on_take_chars = 0
    return buffer


def test_short_raw_frames_are_counted_when_taken() -> None:
    # Counting a short frame is cheaper than settling it after decoding it.
    buffer = ThreadEventBuffer(max_events=16 * 1000)  # takes of up to 1,000 events
    long_frame = raw(0, COUNT_ON_TAKE_CHARS // 10)  # over 10 characters an event
    assert len(raw(0, 3)) <= COUNT_ON_TAKE_CHARS < len(long_frame)
    buffer.put_raw_frames([raw(0, 3), long_frame, raw(3, 2)])
    taken = buffer.take_all(timeout=1)
    assert taken == [(3, raw(0, 3)), long_frame, (2, raw(3, 2))]
    assert [events_in(item) for item in taken] == [3, UNCOUNTED, 2]
    # In flight, the long frame is counted when the stats are read.
    events = COUNT_ON_TAKE_CHARS // 10
    assert counts(buffer) == (5 + events, 5 + events, 0, 0)
    buffer.settle(long_frame, events)
    assert counts(buffer) == (5 + events, 5 + events, 0, 0)


def test_raw_frames_are_left_to_the_consumer_to_count_and_the_stats_stay_exact() -> None:
    buffer = settling(ThreadEventBuffer(max_events=1000))
    buffer.put_raw_frames([raw(0, 3)])
    buffer.put_raw_frames([raw(3, 2)])
    assert counts(buffer) == (5, 0, 0, 5)
    taken = buffer.take_all(timeout=1)
    # Uncounted frames cross as their text alone.
    assert taken == [raw(0, 3), raw(3, 2)]
    assert [events_in(item) for item in taken] == [UNCOUNTED, UNCOUNTED]
    # Taken, not yet decoded: delivered already, as for counted frames.
    assert counts(buffer) == (5, 5, 0, 0)
    buffer.settle(taken[1], 2)  # type: ignore[arg-type]
    assert counts(buffer) == (5, 5, 0, 0)
    buffer.settle(taken[0], 3)  # type: ignore[arg-type]
    assert counts(buffer) == (5, 5, 0, 0)


@pytest.mark.parametrize("together", [False, True], ids=["one by one", "in one call"])
def test_raw_frames_that_could_pass_the_limit_are_counted_and_dropped_exactly(
    together: bool,
) -> None:
    buffer = ThreadEventBuffer(max_events=25)
    texts = [raw(q, 10) for q in range(0, 60, 10)]
    # The first frame cannot pass the limit even if packed with minimal events;
    # the second could, so from then on frames are counted.
    assert len(texts[0]) // MIN_EVENT_CHARS <= 25 < len(texts[0] + texts[1]) // MIN_EVENT_CHARS
    if together:
        buffer.put_raw_frames(texts)  # the frames of one read
    else:
        for text in texts:
            buffer.put_raw_frames([text])
    taken = drain(buffer)
    assert all(item[0] == 10 for item in taken)  # type: ignore[index]
    events = [e for item in taken for e in orjson.loads(item[1])]  # type: ignore[index]
    assert [e["q"] for e in events] == list(range(40, 60))
    assert counts(buffer) == (60, 20, 40, 0)


def test_counting_finds_every_uncounted_frame_behind_a_decoded_one() -> None:
    # Uncounted frames are counted walking back from the end: one taken by the
    # consumer meanwhile and a decoded frame put between them must not throw
    # the walk off (the limit and the drop counts stay exact).
    buffer = settling(ThreadEventBuffer(max_events=60))
    buffer.put_raw_frames([raw(0, 10)])
    buffer.put_raw_frames([raw(10, 10)])
    [first] = buffer.take_all(timeout=1)
    assert first == raw(0, 10)
    buffer.settle(first, 10)  # type: ignore[arg-type]
    buffer.put(frame(20, 10), "")
    buffer.put_raw_frames([raw(30, 10)])
    assert events_in(raw(30, 10)) == UNCOUNTED
    # Each of these could pass the limit: everything waiting is counted, and
    # the last one drops the oldest frame (events 10 to 19).
    buffer.put_raw_frames([raw(40, 10)])
    buffer.put_raw_frames([raw(50, 10), raw(60, 10)])
    buffer.put_raw_frames([raw(70, 10)])
    taken = drain(buffer)
    assert all(type(item) is not str for item in taken)  # all counted
    events = [
        e
        for item in taken
        for e in (item[0] if type(item) is Frame else orjson.loads(item[1]))  # type: ignore[index]
    ]
    assert [e["q"] for e in events] == list(range(20, 80))
    assert counts(buffer) == (80, 70, 10, 0)


def test_a_take_of_raw_frames_is_bounded_by_their_largest_possible_count() -> None:
    buffer = settling(ThreadEventBuffer(max_events=16 * 100))
    texts = [raw(q, 10) for q in range(0, 200, 10)]
    for text in texts:
        buffer.put_raw_frames([text])
    first = buffer.take_all(timeout=1)
    bound = len(texts[0]) // MIN_EVENT_CHARS
    assert len(first) == -(-buffer.chunk_events // bound)
    rest = drain(buffer)
    assert first + rest == texts
    assert counts(buffer) == (200, 200, 0, 0)


def test_close_counts_the_raw_frames_it_discards() -> None:
    buffer = ThreadEventBuffer()
    buffer.put_raw_frames([raw(0, 4)])
    buffer.close()
    assert counts(buffer) == (4, 0, 0, 0)


def test_take_all_waits_for_a_frame_from_another_thread() -> None:
    buffer = ThreadEventBuffer()
    producer = threading.Timer(0.05, buffer.put, args=(frame(0, 1), "raw"))
    producer.start()
    assert buffer.take_all(timeout=5) == [(frame(0, 1), "raw")]
    producer.join()


def test_take_all_gives_up_after_its_timeout() -> None:
    assert ThreadEventBuffer().take_all(timeout=0.01) == []


def test_close_wakes_every_consumer_and_stays_closed() -> None:
    buffer = ThreadEventBuffer()
    buffer.put(frame(0, 3))
    results: list[list[object]] = []
    started = threading.Barrier(3)

    def consume() -> None:
        started.wait()
        results.append(buffer.take_all(timeout=5))

    # Drain first so both consumers really wait.
    buffer.take_all(timeout=1)
    consumers = [threading.Thread(target=consume) for _ in range(2)]
    for consumer in consumers:
        consumer.start()
    started.wait()
    buffer.close()
    for consumer in consumers:
        consumer.join(5)
    assert results == [[CLOSED], [CLOSED]]
    buffer.put(frame(5, 1))  # ignored once closed
    buffer.put_marker(StreamFailed(RuntimeError("late")))
    assert buffer.take_all(timeout=1) == [CLOSED]


def test_backpressure_holds_the_producer_until_the_consumer_makes_room() -> None:
    buffer = ThreadEventBuffer(max_events=10, overflow="backpressure")
    loop_thread = LoopThread("test-loop")
    loop_thread.start()
    try:
        buffer.put(frame(0, 10))
        assert not buffer.has_room()
        waiting = loop_thread.submit(buffer.wait_for_room())
        # A concurrent future's own TimeoutError: the builtin one from 3.11 only.
        with pytest.raises(concurrent.futures.TimeoutError):
            waiting.result(timeout=0.1)
        assert buffer.take_all(timeout=1) == [(frame(0, 10), "")]
        waiting.result(timeout=5)  # released by the consumer
        assert buffer.stats.dropped == 0
    finally:
        loop_thread.stop()


def test_a_blocking_call_on_the_loop_thread_raises_instead_of_waiting_for_itself() -> None:
    loop_thread = LoopThread("test-loop")
    loop_thread.start()

    async def nested() -> str:
        async def inner() -> str:
            return "never"

        try:
            loop_thread.call(inner(), timeout=1)
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    try:
        message = loop_thread.call(nested(), timeout=5)
        assert "would wait for itself" in message
        assert loop_thread.call(asyncio.sleep(0, result=7), timeout=5) == 7
    finally:
        loop_thread.stop()
    assert not loop_thread.running


def test_a_call_that_takes_too_long_times_out_and_is_cancelled() -> None:
    loop_thread = LoopThread("test-loop")
    loop_thread.start()
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        with pytest.raises(TimeoutError):
            loop_thread.call(slow(), timeout=0.05)
        assert cancelled.wait(5)
    finally:
        loop_thread.stop()
