"""The long-running publisher: one stream to brokers, only while holding the lease."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence

from polygon.enums import StreamCluster, StreamHost
from polygon.streaming.async_streaming import AsyncStreamClient
from polygon.streaming.leader._fencing import FencedSink
from polygon.streaming.leader._lease import LeaderLock, Leadership, LeaderTerm, StateListener
from polygon.streaming.sinks import Sink

logger = logging.getLogger("polygon.streaming.leader")

SinkFactory = Callable[[], Sink]


def _ignore(events: list[dict[str, object]]) -> None:
    """The publisher's batch handler: the sinks already have every frame."""


class Publisher:
    """Publishes one stream of one cluster to brokers, as the leader or alone.

    Each term of leadership gets a new client and new sinks (from
    ``sink_factories``): a term's connection and buffers never outlive it.
    Without a lock, the publisher leads at once and for good.

    :param api_key: the market-data API key.
    :param cluster: the cluster to connect to.
    :param stream: the ``subscribe_*`` method's suffix, e.g. ``"stock_trades"``.
    :param symbols: the symbols; ``None`` for every symbol.
    :param sink_factories: each makes a fresh sink (e.g. ``RedisStreamsSink(url)``).
    :param lock: a :class:`LeaderLock` shared with the standby publishers.
    :param host: the market-data host or ``ws://`` URL.
    :param on_state: called at every change of leadership state.
    """

    def __init__(
        self,
        api_key: str | None,
        cluster: StreamCluster | str,
        stream: str,
        symbols: Sequence[str] | None,
        sink_factories: Sequence[SinkFactory],
        *,
        lock: LeaderLock | None = None,
        host: str | None = None,
        on_state: StateListener | None = None,
    ) -> None:
        self.api_key = api_key
        self.cluster = cluster
        self.stream = stream
        self.symbols = list(symbols) if symbols else None
        self.sink_factories = list(sink_factories)
        self.host = host
        self.lock = lock
        self.leadership = Leadership(lock, on_state=on_state) if lock is not None else None
        self.published = 0
        self.dropped = 0

    async def run(self) -> None:
        """Publish until cancelled, or until the stream stops with an error (raised)."""
        if self.leadership is None:
            await self.lead(LeaderTerm(1, math.inf))
        else:
            await self.leadership.run(self.lead)

    async def lead(self, term: LeaderTerm) -> None:
        """One term: connect, subscribe and publish until cancelled."""
        client = AsyncStreamClient(
            self.api_key, self.cluster, host=self.host or StreamHost.REAL_TIME
        )
        sinks = [FencedSink(make(), term) for make in self.sink_factories]
        try:
            for sink in sinks:
                await client.add_sink(sink)
            client.add_batch_handler(_ignore)
            subscribe = getattr(client, f"subscribe_{self.stream}")
            await subscribe(self.symbols)
            await client.handle_messages(reconnect=True, max_reconnection_attempts=None)
        finally:
            if term.lost.is_set():
                # Fencing: nothing buffered is published once the lease is gone. The
                # connection closes meanwhile, not after a broker that may not answer.
                await asyncio.gather(client.close_stream(), *(s.discard() for s in sinks))
            else:
                await client.close_stream()
            self._count(sinks)

    def _count(self, sinks: list[FencedSink]) -> None:
        for fenced in sinks:
            stats = getattr(fenced.sink, "stats", None)
            if stats is not None:
                self.published += stats.published
                self.dropped += stats.dropped
