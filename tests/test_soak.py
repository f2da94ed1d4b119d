"""The soak: stream from the simulator for a fixed time while a random fault strikes
every one to two seconds, for both clients, and report what it cost.

Environment:

- ``POLYGON_SOAK_SECONDS``: how long *each* client streams (default 3, so ``make test``
  spends about 10 s here; ``make soak`` sets 300).
- ``POLYGON_SOAK_REPORT``: a JSON file to write the figures to (one section per client).
- ``POLYGON_SOAK_SEED``: the random seed (default: a fresh one, written in the report).

The figures: events received, reconnects, time to recover (max and median), subscription
mismatches (must be 0), events out of order or repeated (must be 0), resident memory
after a warm-up and at the end (must stay flat, see ``RSS_TOLERANCE``), open file
descriptors and threads after the close (must be back to where they started).

Faults minutes apart are compressed into seconds here, so the engine's "stable
connection" threshold (5 s, after which a lost connection is retried at once and the
backoff starts over) is scaled down to 0.5 s with them; without that every fault would
land on a connection younger than 5 s and the backoff would only grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _harness import (
    CLIENT_KINDS,
    Adapter,
    Options,
    duplicate_subscribes,
    fd_targets,
    live_sessions,
    make_adapter,
    open_fds,
    rss_bytes,
    until,
)

from polygon.streaming.simulator import MarketSimulator

SOAK_SECONDS = float(os.environ.get("POLYGON_SOAK_SECONDS", "3"))
REPORT = os.environ.get("POLYGON_SOAK_REPORT")
SEED = int(os.environ.get("POLYGON_SOAK_SEED", str(random.SystemRandom().randrange(2**32))))

RATE = 1000.0  # events per second the simulator generates for the session
FAULT_EVERY = (1.0, 2.0)  # seconds of healthy streaming between two faults
RECOVERY_DEADLINE = 15.0
# Resident memory may grow this much from the end of the warm-up to the end of the
# run: allocator noise and caches that settle, not a leak (a leak of one event per
# event received would be hundreds of megabytes at this rate).
RSS_TOLERANCE = 8 * 2**20
MAX_MESSAGE_SIZE = 256 * 1024
PING = 0.5
OPEN_TIMEOUT = 0.5

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.soak,
    pytest.mark.timeout(int(SOAK_SECONDS * 1.5) + 60),
]

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY")
FAULTS = (
    "tcp_drop",
    "tcp_drop_mid_frame",
    "close_1000",
    "close_1001",
    "close_1008",
    "close_1011",
    "force_disconnect",
    "slow_consumer",
    "max_connections",
    "frame_over_max_message_size",
    "server_stops_answering_pings",
    "refused_for_a_while",
    "handshake_hangs_for_a_while",
    "bad_frames",
)
BAD_FRAMES: tuple[str | bytes, ...] = (
    "not json",
    b"\x00binary",
    '"not a list"',
    '{"ev":"ZZZ","note":"a lone object, an unknown code"}',
    '[{"no":"ev"}, 5]',
)


class SequenceCheck:
    """A handler: counts events and checks ``q`` only grows, per event code and symbol.

    Keeps no event, so that memory measures the client, not the test.
    """

    def __init__(self) -> None:
        self.count = 0
        self.out_of_order = 0
        self.first_problems: list[tuple[str, str, int, int]] = []
        self._last: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        key = (event["ev"], event["sym"])
        q = event["q"]
        with self._lock:
            self.count += 1
            last = self._last.get(key)
            if last is not None and q <= last:
                self.out_of_order += 1
                if len(self.first_problems) < 10:
                    self.first_problems.append((*key, last, q))
            self._last[key] = q


class CountingHandler(logging.Handler):
    """Counts the library's log records by level and keeps none of them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)  # the cost of logging stays in the measurement
        self.counts[record.levelname] += 1


@pytest.fixture
def quiet_library_logs() -> Iterator[CountingHandler]:
    """Keep the soak's warnings out of pytest's in-memory log capture (it would grow)."""
    library = logging.getLogger("polygon.streaming")
    handler = CountingHandler()
    saved = library.propagate, library.level
    library.addHandler(handler)
    library.propagate = False
    library.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        library.removeHandler(handler)
        library.propagate, library.level = saved


@pytest.fixture
def compressed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("polygon.streaming._engine.STABLE_CONNECTION_SECONDS", 0.5)


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(rate=RATE, batch_size=20) as simulator:
        yield simulator


class Soak:
    """One client, one simulator, the fault loop and its figures."""

    def __init__(self, sim: MarketSimulator, adapter: Adapter, seed: int) -> None:
        self.sim = sim
        self.adapter = adapter
        self.rng = random.Random(seed)
        self.check = SequenceCheck()
        self.desired: set[str] = set()
        self.faults: Counter[str] = Counter()
        self.recoveries: list[float] = []  # server healthy again -> resubscribed
        self.outages: list[float] = []  # fault injected -> resubscribed
        self.stall_detections: list[float] = []
        self.mismatches: list[str] = []

    async def change(self, action: str, topic: str) -> None:
        code, symbol = topic.split(".", 1)
        stream = {"T": "stock_trades", "Q": "stock_quotes"}[code]
        if action == "subscribe":
            await self.adapter.call(f"subscribe_{stream}", [symbol], handler_function=self.check)
            self.desired.add(topic)
        else:
            await self.adapter.call(f"unsubscribe_{stream}", [symbol])
            self.desired.discard(topic)

    async def churn(self) -> None:
        """Subscribe or unsubscribe one topic at random (keeping at least two)."""
        pool = [f"{code}.{symbol}" for code in ("T", "Q") for symbol in SYMBOLS]
        unused = [topic for topic in pool if topic not in self.desired]
        if len(self.desired) > 2 and (not unused or self.rng.random() < 0.5):
            await self.change("unsubscribe", self.rng.choice(sorted(self.desired)))
        else:
            await self.change("subscribe", self.rng.choice(unused))

    def healthy(self, old_session: int | None) -> bool:
        sessions = [s for s in self.sim.sessions if s.authenticated]
        return (
            self.adapter.is_connected
            and len(sessions) == 1
            and sessions[0].id != old_session
            and sessions[0].subscriptions == self.desired
        )

    async def inject(self, fault: str) -> float:
        """Strike; return when the server is healthy again (the moment that returns)."""
        sim = self.sim
        if fault == "tcp_drop":
            sim.drop_connections()
        elif fault == "tcp_drop_mid_frame":
            await sim.drop_mid_frame()
        elif fault.startswith("close_"):
            await sim.close_connections(int(fault.split("_")[1]), "soak")
        elif fault in ("force_disconnect", "slow_consumer", "max_connections"):
            await sim.send_status(fault, "soak", close_code=1008)
        elif fault == "frame_over_max_message_size":
            await sim.send_raw('["' + "x" * MAX_MESSAGE_SIZE + '"]')
        elif fault == "server_stops_answering_pings":
            struck = time.monotonic()
            reconnects = self.adapter.stats.reconnects
            sim.stall()
            try:
                await until(lambda: self.adapter.stats.reconnects > reconnects, 2 * PING + 3)
                self.stall_detections.append(time.monotonic() - struck)
            finally:
                sim.stall(False)
        elif fault == "refused_for_a_while":
            sim.refuse_connections()
            sim.drop_connections()
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))
            sim.refuse_connections(False)
        elif fault == "handshake_hangs_for_a_while":
            sim.hang_handshakes()
            sim.drop_connections()
            await asyncio.sleep(self.rng.uniform(OPEN_TIMEOUT, 2 * OPEN_TIMEOUT))
            sim.hang_handshakes(False)
        elif fault == "bad_frames":
            for frame in BAD_FRAMES:
                await sim.send_raw(frame)
        return time.monotonic()

    async def one_fault(self) -> None:
        fault = self.rng.choice(FAULTS)
        self.faults[fault] += 1
        sessions = live_sessions(self.sim)
        before = sessions[-1] if sessions else None
        struck = time.monotonic()
        if self.rng.random() < 0.5:
            # A change right at the fault: sent live, or recorded and replayed.
            await self.churn()
        healed = await self.inject(fault)
        old = None if fault == "bad_frames" else before
        try:
            await until(lambda: self.healthy(old), RECOVERY_DEADLINE, f"recovery from {fault}")
        except AssertionError:
            found = self.sim.subscriptions("stocks")
            self.mismatches.append(f"{fault}: server {sorted(found)} != {sorted(self.desired)}")
            await until(lambda: self.adapter.is_connected, RECOVERY_DEADLINE)
            return
        done = time.monotonic()
        if fault != "bad_frames":
            self.recoveries.append(done - healed)
            self.outages.append(done - struck)

    async def run(self, seconds: float) -> dict[str, Any]:
        adapter, sim = self.adapter, self.sim
        # Sockets a previous test left to the garbage collector would otherwise be
        # counted here and closed during the soak (seen on Python 3.13).
        gc.collect()
        fds, threads = open_fds(), threading.active_count()
        fd_targets_start = fd_targets()
        rss_start = rss_bytes()
        for topic in ("T.AAPL", "T.MSFT", "Q.SPY"):
            await self.change("subscribe", topic)
        await adapter.start()
        await until(lambda: self.healthy(None), 10, "the first subscription")
        began = time.monotonic()
        warm_up_ends = began + max(1.0, seconds / 5)
        rss_warm = None
        while time.monotonic() - began < seconds:
            await asyncio.sleep(self.rng.uniform(*FAULT_EVERY))
            if rss_warm is None and time.monotonic() >= warm_up_ends:
                gc.collect()
                rss_warm = rss_bytes()
            if self.rng.random() < 0.5:
                await self.churn()
            await self.one_fault()
        # Drain: no new data, every event received is delivered.
        sim.rate = 0
        await until(lambda: adapter.stats.backlog == 0, 10, "the backlog to drain")
        gc.collect()
        rss_end = rss_bytes()
        if rss_warm is None:  # a run shorter than its warm-up
            rss_warm = rss_end
        stats = adapter.stats
        await adapter.close()
        await sim.wait_for(lambda: not sim.sessions, what="the last session to end")
        await until(lambda: open_fds() <= fds and threading.active_count() <= threads, 10)
        duplicates = duplicate_subscribes(sim)
        recoveries = self.recoveries or [0.0]
        outages = self.outages or [0.0]
        return {
            "client": adapter.kind,
            "seconds": round(time.monotonic() - began, 1),
            "seed": SEED,
            "rate_events_per_second": RATE,
            "faults": sum(self.faults.values()),
            "faults_by_kind": dict(sorted(self.faults.items())),
            "events_received": stats.events_received,
            "events_delivered": stats.events_delivered,
            "events_delivered_to_handlers": self.check.count,
            "events_dropped": stats.events_dropped,
            "out_of_order_or_repeated": self.check.out_of_order,
            "reconnects": stats.reconnects,
            "failed_attempts": stats.failed_attempts,
            "decode_errors": stats.decode_errors,
            "bad_frames": stats.bad_frames,
            "bad_events": stats.bad_events,
            "recover_seconds_max": round(max(recoveries), 3),
            "recover_seconds_median": round(statistics.median(recoveries), 3),
            "outage_seconds_max": round(max(outages), 3),
            "outage_seconds_median": round(statistics.median(outages), 3),
            "stall_noticed_seconds_max": round(max(self.stall_detections, default=0.0), 3),
            "subscription_mismatches": len(self.mismatches) + len(duplicates),
            "mismatch_details": self.mismatches + [f"duplicate: {d}" for d in duplicates],
            "rss_start_mib": round(rss_start / 2**20, 1),
            "rss_after_warm_up_mib": round(rss_warm / 2**20, 1),
            "rss_end_mib": round(rss_end / 2**20, 1),
            "rss_growth_mib": round((rss_end - rss_warm) / 2**20, 2),
            "open_fds_start": fds,
            "open_fds_end": open_fds(),
            "fds_opened": sorted(set(fd_targets().items()) - set(fd_targets_start.items())),
            "threads_start": threads,
            "threads_end": threading.active_count(),
        }


def write_report(figures: dict[str, Any]) -> None:
    line = ", ".join(
        f"{key}={figures[key]}"
        for key in (
            "client",
            "seconds",
            "faults",
            "events_received",
            "reconnects",
            "recover_seconds_max",
            "recover_seconds_median",
            "subscription_mismatches",
            "rss_after_warm_up_mib",
            "rss_end_mib",
            "open_fds_end",
            "threads_end",
        )
    )
    sys.stdout.write(f"\nsoak: {line}\n")
    if not REPORT:
        return
    path = Path(REPORT)
    report: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        report = json.loads(path.read_text())
    report[figures["client"]] = figures
    path.write_text(json.dumps(report, indent=2) + "\n")


@pytest.mark.parametrize("kind", CLIENT_KINDS)
async def test_soak(
    kind: str,
    sim: MarketSimulator,
    quiet_library_logs: CountingHandler,
    compressed_time: None,
) -> None:
    options = Options(
        ping_interval=PING,
        ping_timeout=PING,
        open_timeout=OPEN_TIMEOUT,
        max_message_size=MAX_MESSAGE_SIZE,
        reconnect_on_eviction=True,
        max_reconnection_attempts=None,
        reconnection_delay=0.05,
    )
    adapter = make_adapter(kind, sim, options)
    soak = Soak(sim, adapter, SEED + CLIENT_KINDS.index(kind))
    try:
        figures = await soak.run(SOAK_SECONDS)
    finally:
        await adapter.close()
    figures["warnings_logged"] = quiet_library_logs.counts["WARNING"]
    figures["errors_logged"] = quiet_library_logs.counts["ERROR"]
    write_report(figures)

    assert figures["faults"] >= 1
    assert figures["subscription_mismatches"] == 0, figures["mismatch_details"]
    assert figures["out_of_order_or_repeated"] == 0, soak.check.first_problems
    # Every event received was delivered (none lost in the buffer, none dropped).
    assert figures["events_dropped"] == 0
    assert figures["events_delivered"] == figures["events_received"]
    assert figures["events_delivered_to_handlers"] > 0
    assert figures["reconnects"] >= sum(
        n for fault, n in soak.faults.items() if fault != "bad_frames"
    )
    assert figures["errors_logged"] == 0
    assert figures["rss_end_mib"] - figures["rss_after_warm_up_mib"] <= RSS_TOLERANCE / 2**20
    # None left open by the soak (fewer is fine: what an earlier test left may close meanwhile).
    assert figures["open_fds_end"] <= figures["open_fds_start"], figures["fds_opened"]
    assert figures["threads_end"] == figures["threads_start"]
    assert adapter.stopped_with is None
