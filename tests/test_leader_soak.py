"""The publishers' soak: random kills of leader and spares for a while, on both brokers.

Three ``polygon-stream publish`` processes share a lock; every second or two
one of them is killed (``kill -9`` or SIGTERM, the holder more often than not)
and a new one started in its place. Throughout, the simulator is sampled:
never two connections at once, never an eviction, and every gap with no
connection bounded by the lease plus the time to connect.

- ``POLYGON_SOAK_SECONDS``: how long per broker (default 6, so ``make test``
  spends about 15 s here; ``make soak`` sets 300).
- ``POLYGON_SOAK_SEED``: the random seed (default: a fresh one, printed).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
from _brokers import NatsServer, RedisServer
from _leaders import Monitor, Publishers

from polygon.streaming.simulator import MarketSimulator

SOAK_SECONDS = float(os.environ.get("POLYGON_SOAK_SECONDS", "6"))
SEED = int(os.environ.get("POLYGON_SOAK_SEED", str(random.SystemRandom().randrange(2**32))))
# Connecting and subscribing after the lease is won, with room for a loaded machine.
CONNECT_ALLOWANCE = 5.0

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.soak,
    pytest.mark.timeout(int(SOAK_SECONDS * 1.5) + 90),
]


async def test_random_kills_never_overlap_nor_evict(
    market: MarketSimulator, broker: RedisServer | NatsServer, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    group = Publishers(market, broker, tmp_path)
    monitor = Monitor(market)
    kills = {"kill -9": 0, "SIGTERM": 0}
    try:
        for _ in range(3):
            group.start()
        await market.wait_for(lambda: len(market.sessions) == 1, timeout=20, what="a leader")
        ends = time.monotonic() + SOAK_SECONDS
        while time.monotonic() < ends:
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            alive = group.alive()
            victim = await group.holder() if rng.random() < 0.7 else rng.choice(alive)
            how = rng.choice(("kill -9", "SIGTERM"))
            victim.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
            kills[how] += 1
            await asyncio.get_running_loop().run_in_executor(None, victim.wait, 10)
            group.start()
            await market.wait_for(
                lambda: len(market.sessions) == 1,
                timeout=group.lease + CONNECT_ALLOWANCE + 10,
                what="a leader after the kill",
            )
    finally:
        await monitor.stop()
        group.stop_all()
    sys.stdout.write(
        f"\nleader soak ({type(broker).__name__}, seed {SEED}): {kills}, "
        f"longest gap {monitor.longest_gap:.2f} s, most connections {monitor.most}, "
        f"evictions {market.evictions}\n"
    )
    monitor.check()
    assert monitor.longest_gap < group.lease + CONNECT_ALLOWANCE
