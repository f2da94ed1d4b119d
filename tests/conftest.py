"""Shared fixtures: async tests run on asyncio through anyio's pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
