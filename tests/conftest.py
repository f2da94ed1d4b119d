"""Shared fixtures: async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _brokers import NatsServer, RedisServer, running

from polygon.streaming.simulator import MarketSimulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    """A simulator with generation off (rate=0): tests publish every event themselves.

    Test modules that need other options define their own ``sim``.
    """
    async with MarketSimulator(rate=0) as simulator:
        yield simulator


# The leader tests' fixtures (tests/test_leader*.py).


@pytest.fixture(params=("redis", "nats"))
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer | NatsServer]:
    """Each broker in turn: the lock and the sink are both in it."""
    server: RedisServer | NatsServer
    if request.param == "redis":
        server = RedisServer(tmp_path / "redis")
    else:
        server = NatsServer(tmp_path / "nats")
    with running(server) as started:
        yield started


@pytest.fixture
async def market() -> AsyncIterator[MarketSimulator]:
    """A simulator that generates trades, so a connected publisher has data to publish."""
    async with MarketSimulator(rate=200, batch_size=5) as simulator:
        yield simulator
