"""The publisher as processes, watched through the simulator: shared by the leader tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from _brokers import NatsServer, RedisServer

from polygon.streaming.leader import default_lock_name, lock_from_url
from polygon.streaming.simulator import MarketSimulator


class Monitor:
    """Samples the simulator's sessions every few milliseconds.

    :ivar most: the most sessions open at one sample.
    :ivar longest_gap: the longest time with no session, once there had been one.
    """

    def __init__(self, sim: MarketSimulator) -> None:
        self.sim = sim
        self.most = 0
        self.longest_gap = 0.0
        self._gap_since: float | None = None
        self._seen = False
        self._task = asyncio.ensure_future(self._sample())

    async def _sample(self) -> None:
        while True:
            current = len(self.sim.sessions)
            self.most = max(self.most, current)
            now = time.monotonic()
            if current:
                self._seen = True
                self._gap_since = None
            elif self._seen:
                if self._gap_since is None:
                    self._gap_since = now
                self.longest_gap = max(self.longest_gap, now - self._gap_since)
            await asyncio.sleep(0.002)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def check(self) -> None:
        assert self.most <= 1, f"{self.most} publishers were connected at once"
        assert self.sim.evictions == 0, f"{self.sim.evictions} evictions"


@contextlib.asynccontextmanager
async def watched(sim: MarketSimulator) -> AsyncIterator[Monitor]:
    """A :class:`Monitor` for the block; at its end, never two connections, no eviction."""
    monitor = Monitor(sim)
    try:
        yield monitor
    finally:
        await monitor.stop()
    monitor.check()


async def replaced(sim: MarketSimulator, session_id: int, within: float) -> None:
    """Wait until a connection other than ``session_id`` is open."""
    await sim.wait_for(
        lambda: any(s.id != session_id for s in sim.sessions),
        timeout=within,
        what="another publisher's connection",
    )


class Publishers:
    """``python -m polygon.cli publish`` processes sharing one lock and one sink."""

    def __init__(self, sim: MarketSimulator, broker: RedisServer | NatsServer, tmp: Path) -> None:
        self.sim = sim
        self.broker = broker
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.lease = 2.0

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"publisher-{len(self.procs)}.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "polygon.cli", "publish", "stocks", "trades"]
        command += ["AAPL", "MSFT", "--host", self.sim.url, "--api-key", "key-1"]
        command += ["--sink", self.broker.url, "--leader-lock", self.broker.url]
        command += ["--lease", str(self.lease)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=os.environ.copy())
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.tmp / f"publisher-{self.procs.index(proc)}.log").read_text()

    async def holder(self) -> subprocess.Popen[bytes]:
        """The process whose token holds the lock (the token names its pid)."""
        lock = lock_from_url(
            self.broker.url, default_lock_name("stocks", "key-1"), lease=self.lease
        )
        try:
            owner = await lock.holder()
        finally:
            await lock.close()
        assert owner is not None, "nobody holds the lease"
        pid = int(owner.split(":")[1])
        return next(p for p in self.procs if p.pid == pid)

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def stop_all(self) -> None:
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


async def broker_events(broker: RedisServer | NatsServer) -> int:
    """How many events the sinks have put into the broker so far."""
    if isinstance(broker, RedisServer):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(broker.url)
        try:
            keys = [k async for k in client.scan_iter(match="polygon:*", _type="stream")]
            return sum([int(await client.xlen(key)) for key in keys])
        finally:
            await client.aclose()
    import nats

    nc = await nats.connect(broker.url)
    try:
        streams = await nc.jetstream().streams_info()
        return sum(s.state.messages for s in streams if not s.config.name.startswith("KV_"))
    finally:
        await nc.close()
