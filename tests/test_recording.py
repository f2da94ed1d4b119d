"""Recording to JSON lines and Parquet, replaying through the simulator, and the table view."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from polygon import AsyncStreamClient
from polygon._cli_table import TableView
from polygon.enums import StreamCluster
from polygon.streaming._stats import StreamStats
from polygon.streaming.recording import Recorder, RecordingError, read_recording
from polygon.streaming.simulator import MarketSimulator, infer_cluster, replay
from polygon.streaming.simulator._replay import event_time_ms, frames

pytestmark = pytest.mark.timeout(20)

Event = dict[str, Any]


def trades(count: int, start_ms: int = 1_700_000_000_000, step_ms: int = 0) -> list[Event]:
    return [
        {
            "ev": "T",
            "sym": "AAPL",
            "p": 100.0 + q / 100,
            "s": 100,
            "q": q,
            "t": start_ms + q * step_ms,
        }
        for q in range(count)
    ]


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_a_recording_reads_back_the_same_events(tmp_path: Path, name: str) -> None:
    events = trades(50)
    status = {"ev": "status", "status": "success", "message": "subscribed to: T.AAPL"}
    with Recorder(tmp_path / name) as recorder:
        recorder.write_batch([status, *events[:25]])
        for event in events[25:]:
            recorder.write(event)
    assert recorder.count == 50
    assert list(read_recording(tmp_path / name)) == events


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"ev":"T"}\n\nnot json\n')
    with pytest.raises(RecordingError, match=r"bad.jsonl:3: not JSON"):
        list(read_recording(path))
    path.write_bytes(b"[1, 2]\n")
    with pytest.raises(ValueError, match=r":1: not an event object"):
        list(read_recording(path))


@pytest.mark.parametrize(
    ("event", "cluster"),
    [
        ({"ev": "T", "sym": "AAPL"}, StreamCluster.STOCKS),
        ({"ev": "T", "sym": "O:SPY241220P00720000"}, StreamCluster.OPTIONS),
        ({"ev": "AM", "sym": "I:SPX"}, StreamCluster.INDICES),
        ({"ev": "XT", "pair": "BTC-USD"}, StreamCluster.CRYPTO),
        ({"ev": "C", "p": "EUR/USD"}, StreamCluster.FOREX),
        ({"ev": "FMV", "sym": "EUR/USD"}, StreamCluster.FOREX),
        ({"ev": "FMV", "sym": "BTC-USD"}, StreamCluster.CRYPTO),
        ({"ev": "V", "T": "I:SPX"}, StreamCluster.INDICES),
    ],
)
def test_the_cluster_is_inferred_from_codes_and_symbols(
    event: Event, cluster: StreamCluster
) -> None:
    assert infer_cluster([event]) is cluster


def test_events_with_one_timestamp_share_a_frame() -> None:
    events = [{"ev": "T", "t": 1}, {"ev": "T", "t": 1}, {"ev": "T", "t": 2}, {"ev": "AM", "e": 5}]
    assert [(t, len(f)) for t, f in frames(events, batch_size=10)] == [(1, 2), (2, 1), (5, 1)]
    assert [len(f) for _, f in frames(trades(25), batch_size=10)] == [10, 10, 5]
    assert event_time_ms({"ev": "FMV", "t": 1_700_000_000_000_000_000}) == 1_700_000_000_000


@pytest.mark.anyio
async def test_replay_delivers_the_recording_in_order_at_its_pace(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl.gz"
    with Recorder(path) as recorder:
        recorder.write_batch(trades(40, step_ms=10))  # 390 ms of market time
    got: list[int] = []
    async with (
        MarketSimulator(rate=0) as sim,
        AsyncStreamClient("k", "stocks", host=sim.url) as client,
    ):
        await client.subscribe_stock_trades(["AAPL"], lambda e: got.append(e["q"]))
        await sim.wait_for(lambda: sim.subscriptions("stocks") == {"T.AAPL"})
        task = asyncio.create_task(client.handle_messages(reconnect=True))
        started = time.monotonic()
        sent = await replay(sim, StreamCluster.STOCKS, read_recording(path), speed=3.0)
        elapsed = time.monotonic() - started
        with anyio.fail_after(5):
            while len(got) < 40:  # noqa: ASYNC110 - a counter, bounded by the deadline
                await asyncio.sleep(0.005)
        await client.close_stream()
        await task
    assert sent == 40
    assert got == list(range(40))
    # Paced: it cannot have finished before the market time divided by the speed.
    assert elapsed >= 0.390 / 3.0


def test_the_table_view_shows_the_last_event_per_symbol() -> None:
    stats = StreamStats(*([0] * 13))
    view = TableView(StreamCluster.CRYPTO, lambda: stats)
    view.on_event({"ev": "XT", "pair": "BTC-USD", "p": 64000.5, "s": 0.5})
    view.on_event({"ev": "XT", "pair": "BTC-USD", "p": 64001.0, "s": 0.25})
    view.on_event({"ev": "XL2", "pair": "ETH-USD", "b": [[3400.1, 2.0]], "a": [[3400.5, 1.0]]})
    assert view.rows["BTC-USD"].price == 64001.0
    assert view.rows["BTC-USD"].count == 2
    assert view.rows["ETH-USD"].price == 3400.1
    table = view.render()
    assert table.row_count == 2
    assert "reconnects 0" in str(table.caption)
