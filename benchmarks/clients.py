"""One measured client process: the floor, or one of our interfaces, against a feed.

Every mode consumes the same feed (see :mod:`benchmarks.feed`) and times the
data between the feed's ``bench_start`` and ``bench_end`` status frames, with
wall time (``time.perf_counter``) and CPU time of the whole process, all
threads included (``getrusage(RUSAGE_SELF)``). It prints one ``RESULT {json}``
line. Run by :mod:`benchmarks.run`; by hand::

    python -m benchmarks.feed --events 1000000 --per-frame 100 &   # prints PORT n
    python -m benchmarks.clients --mode floor --port n --events 1000000 --per-frame 100

Scenarios:

``throughput``
    a no-op function per event (per frame for the batch interfaces).
``latency``
    per event, the feed's write time (``t``, ns) subtracted from ``time.time_ns()``.
``slow``
    a consumer that sleeps ``100 / consumer_rate`` seconds every 100 events, far
    slower than the feed: the buffer fills and drops; peak RSS and the counters
    are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from benchmarks.feed import END_STATUS, START_STATUS

Event = dict[str, Any]
Batch = list[Event]

API_KEY = "bench-key"
# The slow consumer sleeps once every this many events.
SLOW_STRIDE = 100
# Nothing should take this long; a hung client is reported, not waited for.
RUN_TIMEOUT = 300.0

MODES = (
    "drain",
    "floor",
    "async_handler",
    "async_coroutine",
    "sync_callback",
    "sync_iter",
    "async_batch",
    "sync_batch",
    "iter_batches",
)
SCENARIOS = ("throughput", "latency", "slow")
# The names the batch interface may have (the issue suggested set_batch_handler).
BATCH_SETTERS = ("add_batch_handler", "set_batch_handler")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * (os.sysconf("SC_PAGE_SIZE") // 1024)


def peak_rss_kb() -> int:
    """The peak resident set of this program (VmHWM).

    Not ``getrusage().ru_maxrss``: on Linux that also holds the peak of the
    process before it ran this program, i.e. of the parent that forked it. The
    benchmark's parent was larger than the StreamClient's whole run, which then
    showed 86 MB for a peak of 42.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


class GcTimer:
    """Time spent in the cyclic garbage collector (``gc.callbacks``), from ``start()`` on."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._began = 0.0
        self.running = False

    def start(self) -> None:
        if not self.running:
            self.running = True
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self.running:
            self.running = False
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began
            self.collections[info["generation"]] += 1


@dataclass
class Marks:
    """Wall and CPU time at the ``bench_start`` and ``bench_end`` frames (once each)."""

    wall0: float = 0.0
    wall1: float = 0.0
    cpu0: float = 0.0
    cpu1: float = 0.0
    rss0_kb: int = 0
    started: bool = False
    ended: bool = False
    stats: dict[str, int] = field(default_factory=dict)
    gc: GcTimer = field(default_factory=GcTimer)

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.rss0_kb = current_rss_kb()
            self.gc.start()
            self.cpu0 = cpu_seconds()
            self.wall0 = time.perf_counter()

    def end(self) -> bool:
        """Record the end; False if it was already recorded."""
        if self.ended:
            return False
        self.wall1 = time.perf_counter()
        self.cpu1 = cpu_seconds()
        self.gc.stop()
        self.ended = True
        return True

    def on_status(self, status: object) -> bool:
        """Note a status; True when it is the end of the data."""
        if status == START_STATUS:
            self.start()
        elif status == END_STATUS:
            return self.end()
        return False


class Consumer:
    """What runs per event (or per frame), for each scenario."""

    def __init__(self, scenario: str, consumer_rate: float, warmup: int) -> None:
        self.scenario = scenario
        self.latencies: list[int] = []
        self.warmup = warmup
        self.count = 0
        self.pause = SLOW_STRIDE / consumer_rate if consumer_rate else 0.0

    def event_function(self) -> Callable[[Event], None]:
        if self.scenario == "latency":
            append, now = self.latencies.append, time.time_ns

            def record(event: Event) -> None:
                t = event.get("t")
                if t is not None:
                    append(now() - t)

            return record
        if self.scenario == "slow":
            return self.slow_event
        return noop

    def batch_function(self) -> Callable[[Batch], None]:
        if self.scenario == "latency":
            record = self.event_function()

            def record_all(batch: Batch) -> None:
                for event in batch:
                    record(event)

            return record_all
        if self.scenario == "slow":
            raise ValueError("the slow-consumer scenario runs per-event interfaces only")
        return noop_batch

    def slow_event(self, event: Event) -> None:
        if event.get("ev") == "T":
            self.count += 1
            if self.count % SLOW_STRIDE == 0:
                time.sleep(self.pause)

    async def slow_event_async(self, event: Event) -> None:
        if event.get("ev") == "T":
            self.count += 1
            if self.count % SLOW_STRIDE == 0:
                await asyncio.sleep(self.pause)

    def latency_summary(self) -> dict[str, float] | None:
        if self.scenario != "latency":
            return None
        kept = sorted(self.latencies[self.warmup :])
        if not kept:
            return {"count": 0}
        n = len(kept)

        def pct(p: float) -> float:
            return kept[min(n - 1, int(p / 100 * n))] / 1e3

        return {
            "count": n,
            "p50_us": pct(50),
            "p90_us": pct(90),
            "p99_us": pct(99),
            "p999_us": pct(99.9),
            "max_us": kept[-1] / 1e3,
            "mean_us": statistics.fmean(kept) / 1e3,
        }


def noop(event: Event) -> None:
    """The per-event function of the throughput runs: one Python call, nothing else."""


def noop_batch(batch: Batch) -> None:
    """The per-frame function of the batch interfaces' throughput runs."""


async def noop_async(event: Event) -> None:
    """The coroutine-function handler variant."""


def add_batch_handler(client: object) -> Callable[[Callable[[Batch], None]], None]:
    """The client's batch-handler setter: ``add_batch_handler`` (or ``set_batch_handler``)."""
    for name in BATCH_SETTERS:
        setter = getattr(client, name, None)
        if setter is not None:
            return setter  # type: ignore[no-any-return]
    raise RuntimeError(f"{type(client).__name__} has no batch handler interface")


def stats_dict(stats: object) -> dict[str, int]:
    return {k: int(v) for k, v in asdict(stats).items()}  # type: ignore[call-overload]


# -- the floor ------------------------------------------------------------------------------


async def run_floor(url: str, events: int, per_frame: int, consumer: Consumer) -> Marks:
    """The bare loop: receive, ``orjson.loads``, one Python call per event."""
    marks = Marks()
    function = consumer.event_function()
    async with connect(url, compression=None, max_size=16 * 2**20) as ws:
        await ws.send(orjson.dumps({"action": "auth", "params": API_KEY}).decode())
        await ws.send(orjson.dumps({"action": "subscribe", "params": "T.*"}).decode())
        while START_STATUS not in await ws.recv():
            pass
        recv, loads = ws.recv, orjson.loads
        marks.start()
        for _ in range(events // per_frame):
            for event in loads(await recv()):
                function(event)
        marks.end()
        await ws.recv()  # bench_end
    return marks


# -- the raw socket drain: what the feed can do at all ------------------------------------


def run_drain(port: int) -> Marks:
    """No WebSocket parsing: read bytes until ``bench_end`` (the feed's capacity)."""
    marks = Marks()
    sock = socket.create_connection(("127.0.0.1", port))
    request = (
        "GET /stocks HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    for action, params in (("auth", API_KEY), ("subscribe", "T.*")):
        payload = orjson.dumps({"action": action, "params": params})
        sock.sendall(Frame(Opcode.TEXT, payload).serialize(mask=True))
    buf = bytearray(2**20)
    view = memoryview(buf)
    start, end = START_STATUS.encode(), END_STATUS.encode()
    pattern, tail = start, b""
    while True:
        n = sock.recv_into(view)
        if not n:
            break
        # A marker may straddle two reads: look at the seam too.
        found = buf.find(pattern, 0, n) >= 0 or pattern in tail + bytes(view[:16])
        if found and pattern is start:
            marks.start()
            pattern = end
            found = buf.find(end, 0, n) >= 0
        if found and pattern is end:
            marks.end()
            break
        tail = bytes(view[max(0, n - 16) : n])
    sock.close()
    return marks


# -- AsyncStreamClient ------------------------------------------------------------------------


async def run_async_client(url: str, mode: str, consumer: Consumer) -> Marks:
    from polygon import AsyncStreamClient

    marks = Marks()
    client = AsyncStreamClient(API_KEY, "stocks", host=url)
    closing: list[asyncio.Task[None]] = []

    def finish() -> None:
        marks.stats = stats_dict(client.stats)
        closing.append(asyncio.get_running_loop().create_task(client.close_stream()))

    def on_status(event: Event) -> None:
        if marks.on_status(event.get("status")):
            finish()

    per_batch = consumer.batch_function() if mode == "async_batch" else noop_batch

    def on_batch(batch: Batch) -> None:
        if batch and batch[0].get("ev") == "status":
            for event in batch:
                on_status(event)
        else:
            per_batch(batch)

    handler: Any = None
    if mode == "async_batch":
        # No per-event handler at all, not even for status events: the batch
        # handler sees every event (statuses included) in one call per frame.
        add_batch_handler(client)(on_batch)
    else:
        client.change_handler("status", on_status)
        if consumer.scenario == "slow":
            handler = consumer.slow_event_async
        elif mode == "async_coroutine" and consumer.scenario == "throughput":
            handler = noop_async
        else:
            handler = consumer.event_function()
    await client.subscribe_stock_trades(None, handler_function=handler)
    await asyncio.wait_for(client.handle_messages(reconnect=True), RUN_TIMEOUT)
    if closing:
        await closing[0]
    return marks


# -- StreamClient -----------------------------------------------------------------------------


def run_sync_client(url: str, mode: str, consumer: Consumer) -> Marks:
    from polygon import StreamClient

    marks = Marks()
    client = StreamClient(API_KEY, "stocks", host=url)
    done = threading.Event()

    def on_status(event: Event) -> None:
        if marks.on_status(event.get("status")):
            marks.stats = stats_dict(client.stats)
            done.set()
            if mode in ("sync_iter", "iter_batches"):
                client.close_stream()  # ends the iteration

    per_batch = consumer.batch_function() if mode in ("sync_batch", "iter_batches") else noop_batch

    def on_batch(batch: Batch) -> None:
        if batch and batch[0].get("ev") == "status":
            for event in batch:
                on_status(event)
        else:
            per_batch(batch)

    function = consumer.event_function()
    if mode == "sync_callback":
        client.change_handler("status", on_status)
        client.subscribe_stock_trades(None, handler_function=function)
        client.start_stream_thread()
        done.wait(RUN_TIMEOUT)
    elif mode == "sync_batch":
        add_batch_handler(client)(on_batch)
        client.subscribe_stock_trades(None)
        client.start_stream_thread()
        done.wait(RUN_TIMEOUT)
    elif mode == "sync_iter":
        # As documented: no handler for the trades, just the loop; the status
        # handler (run on this thread before each frame) closes the stream.
        client.change_handler("status", on_status)
        client.subscribe_stock_trades(None)
        for event in client.iter_messages():
            function(event)
    elif mode == "iter_batches":
        client.subscribe_stock_trades(None)
        for batch in client.iter_batches():
            on_batch(batch)
            if marks.ended:
                break
    else:
        raise ValueError(mode)
    client.close_stream()
    return marks


# -- the process ------------------------------------------------------------------------------


def run(
    mode: str,
    scenario: str,
    port: int,
    events: int,
    per_frame: int,
    consumer_rate: float,
    warmup: int,
) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}"
    consumer = Consumer(scenario, consumer_rate, warmup)
    if mode == "drain":
        marks = run_drain(port)
    elif mode == "floor":
        marks = asyncio.run(run_floor(url, events, per_frame, consumer))
    elif mode.startswith("async_"):
        marks = asyncio.run(run_async_client(url, mode, consumer))
    else:
        marks = run_sync_client(url, mode, consumer)
    if not marks.ended:
        return {"error": "the run ended before the bench_end frame"}
    seconds = marks.wall1 - marks.wall0
    dropped = marks.stats.get("events_dropped", 0)
    delivered = events - dropped
    result: dict[str, Any] = {
        "mode": mode,
        "scenario": scenario,
        "events": events,
        "per_frame": per_frame,
        "delivered": delivered,
        "seconds": seconds,
        "events_per_second": delivered / seconds,
        "cpu_seconds": marks.cpu1 - marks.cpu0,
        "cpu_per_million": (marks.cpu1 - marks.cpu0) / delivered * 1e6 if delivered else None,
        "gc_seconds": marks.gc.seconds,
        "gc_collections": marks.gc.collections,
        "peak_rss_kb": peak_rss_kb(),
        "rss_at_start_kb": marks.rss0_kb,
        "stats": marks.stats,
    }
    polygon = sys.modules.get("polygon")
    if polygon is not None and polygon.__file__:
        # Which copy of the package ran (a baseline run must not measure ours).
        result["polygon_dir"] = os.path.dirname(os.path.abspath(polygon.__file__))
    if scenario == "slow":
        result["handled"] = consumer.count
        result["consumer_rate"] = consumer.count / seconds
    latency = consumer.latency_summary()
    if latency is not None:
        result["latency"] = latency
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--scenario", choices=SCENARIOS, default="throughput")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, required=True, help="data events the feed sends")
    parser.add_argument("--per-frame", type=int, required=True)
    parser.add_argument("--consumer-rate", type=float, default=0.0, help="slow: events/s")
    parser.add_argument("--warmup", type=int, default=0, help="latency: events not counted")
    args = parser.parse_args(argv)
    try:
        result = run(
            args.mode,
            args.scenario,
            args.port,
            args.events,
            args.per_frame,
            args.consumer_rate,
            args.warmup,
        )
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0 if "error" not in result else 1)


if __name__ == "__main__":
    main()
