"""Batch handlers and iter_batches(): a frame's events in one call."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from polygon import AsyncStreamClient, StreamClient
from polygon.streaming.simulator import MarketSimulator, SimulatorThread

KEY = "batch-key"
Event = dict[str, Any]


def trades(factory: Any, first: int, count: int) -> list[Event]:
    events = []
    for q in range(first, first + count):
        event = factory.make("T", "AAPL")
        event["q"] = q
        events.append(event)
    return events


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(rate=0) as simulator:
        yield simulator


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(rate=0) as simulator:
        yield simulator


@pytest.mark.anyio
@pytest.mark.timeout(15)
async def test_async_batch_handler_gets_whole_frames_and_defaults_stay_quiet(
    sim: MarketSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="polygon.streaming.messages")
    frames: list[list[int]] = []
    explicit: list[int] = []
    all_frames = asyncio.Event()
    all_explicit = asyncio.Event()

    async def on_frame(events: list[Event]) -> None:
        frames.append([e["q"] for e in events if e["ev"] == "T"])
        if sum(map(len, frames)) >= 200:
            all_frames.set()

    def on_trade(event: Event) -> None:
        explicit.append(event["q"])
        if len(explicit) == 3:
            all_explicit.set()

    async with AsyncStreamClient(KEY, "stocks", host=sim.url) as client:
        client.add_batch_handler(on_frame)
        await client.subscribe_stock_trades(["AAPL"])
        task = asyncio.create_task(client.handle_messages(reconnect=True))
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
        factory = sim.factory("stocks")
        await sim.publish("stocks", trades(factory, 0, 100))
        await sim.publish("stocks", trades(factory, 100, 100))
        with anyio.fail_after(5):
            await all_frames.wait()
        assert [f for f in frames if f] == [list(range(100)), list(range(100, 200))]
        assert "T event" not in caplog.text  # the default per-event handler stayed quiet
        # An explicit per-event handler still runs beside the batch handler.
        client.change_handler("T", on_trade)
        await sim.publish("stocks", trades(factory, 200, 3))
        with anyio.fail_after(5):
            await all_explicit.wait()
        assert explicit == [200, 201, 202]
        client.remove_batch_handler(on_frame)
        with pytest.raises(ValueError, match="not a batch handler"):
            client.remove_batch_handler(on_frame)
        await client.close_stream()
        await task


@pytest.mark.anyio
@pytest.mark.timeout(15)
async def test_a_raising_batch_handler_is_counted_and_the_stream_goes_on(
    sim: MarketSimulator,
) -> None:
    seen: list[int] = []

    def boom(events: list[Event]) -> None:
        raise RuntimeError("batch handler exploded")

    async with AsyncStreamClient(KEY, "stocks", host=sim.url) as client:
        client.add_batch_handler(boom)
        client.add_batch_handler(lambda events: seen.extend(e.get("q", -1) for e in events))
        await client.subscribe_stock_trades(["AAPL"])
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
        await sim.publish("stocks", trades(sim.factory("stocks"), 0, 5))
        with anyio.fail_after(5):
            while [q for q in seen if q >= 0] != [0, 1, 2, 3, 4]:
                await client.handle_messages()
        assert client.stats.handler_errors >= 1


@pytest.mark.timeout(15)
def test_stream_client_batch_handler_runs_on_the_dispatcher_thread(
    sim_thread: SimulatorThread,
) -> None:
    got: list[int] = []
    threads: set[str] = set()
    done = threading.Event()

    def on_frame(events: list[Event]) -> None:
        threads.add(threading.current_thread().name)
        got.extend(e["q"] for e in events if e["ev"] == "T")
        if len(got) >= 150:
            done.set()

    async def not_allowed(events: list[Event]) -> None:
        return None

    with StreamClient(KEY, "stocks", host=sim_thread.url) as client:
        with pytest.raises(TypeError, match="coroutine function"):
            client.add_batch_handler(not_allowed)
        client.add_batch_handler(on_frame)
        client.subscribe_stock_trades(["AAPL"])
        client.start_stream_thread()
        sim = sim_thread.simulator
        sim_thread.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"}, timeout=5)
        factory = sim.factory("stocks")
        sim_thread.call(sim.publish, "stocks", trades(factory, 0, 100))
        sim_thread.call(sim.publish, "stocks", trades(factory, 100, 50))
        assert done.wait(5)
    assert got == list(range(150))
    assert threads == {"polygon-stream-dispatch"}


@pytest.mark.timeout(15)
def test_iter_batches_yields_frames_in_order(sim_thread: SimulatorThread) -> None:
    sim = sim_thread.simulator
    factory = sim.factory("stocks")

    def publish_once_subscribed() -> None:
        # The iterator starts the stream on its first step, so publish from here.
        sim_thread.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"}, timeout=5)
        for first in range(0, 300, 100):
            sim_thread.call(sim.publish, "stocks", trades(factory, first, 100))

    publisher = threading.Thread(target=publish_once_subscribed)
    publisher.start()
    seen: list[list[int]] = []
    with StreamClient(KEY, "stocks", host=sim_thread.url) as client:
        client.subscribe_stock_trades(["AAPL"])
        for batch in client.iter_batches(include_status=False):
            assert all(e["ev"] == "T" for e in batch)
            seen.append([e["q"] for e in batch])
            if sum(map(len, seen)) >= 300:
                break
    publisher.join(5)
    assert seen == [list(range(i, i + 100)) for i in range(0, 300, 100)]
