"""The simulator's feed: one market per symbol, driven by the market clock, shared by all.

On each tick the feed works out which symbols some authenticated session wants
(any topic on the symbol, or a wildcard), opens the markets of new ones, closes
those nobody wants any more, advances every open market to the current market
time and hands each session the events it subscribes to. Every session sees the
same events of a symbol whatever else it subscribed to: generation depends on
the symbol and the clock, never on the subscription set.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterable

from polygon.enums import StreamCluster
from polygon.streaming.simulator._clock import MarketClock
from polygon.streaming.simulator._data import Event, EventFactory, default_symbols
from polygon.streaming.simulator._market import SymbolMarket
from polygon.streaming.simulator._session import WILDCARD, Session

logger = logging.getLogger("polygon.streaming.simulator")

# How often the feed wakes up. Short enough that a test waiting for data does
# not wait long, long enough that frames hold several events.
TICK_SECONDS = 0.05
# After the loop was held up longer than this (a stopped process, a starved
# machine), markets skip ahead instead of generating the whole gap in one tick.
MAX_CATCH_UP_SECONDS = 2.0


def wanted_symbols(cluster: StreamCluster, topics: Iterable[str]) -> set[str]:
    """The symbols ``topics`` ask for; ``EV.*`` means the cluster's default universe."""
    symbols: set[str] = set()
    for topic in topics:
        symbol = topic.partition(".")[2]
        if symbol == WILDCARD:
            symbols.update(default_symbols(cluster))
        elif symbol:
            symbols.add(symbol)
    return symbols


def _event_time(event: Event) -> int:
    # Bars carry no ``t``: they happen at the end of their window.
    time = event["t"] if "t" in event else event["e"]
    assert isinstance(time, int)
    return time


class Feed:
    """Generates the market for what the sessions want, and hands it to them."""

    def __init__(
        self,
        clock: MarketClock,
        factory: Callable[[StreamCluster], EventFactory],
        sessions: Callable[[], list[Session]],
        rate: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._factory = factory
        self._sessions = sessions
        self._rate = rate
        self._markets: dict[tuple[StreamCluster, str], SymbolMarket] = {}
        # What some session wanted on the previous tick: a symbol new to it
        # opens with a whole first second; a resumed one (after a stall, a
        # pause of the rate, a loop held up) starts where it is.
        self._wanted_before: set[tuple[StreamCluster, str]] = set()

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.tick()
            except Exception:
                # A bug here must not end the feed silently for every session.
                logger.exception("market data generation failed")

    def tick(self) -> None:
        rate = self._rate()
        sessions = [s for s in self._sessions() if s.authenticated and s.subscriptions]
        wanted: set[tuple[StreamCluster, str]] = set()
        for session in sessions:
            symbols = wanted_symbols(session.cluster, session.subscriptions)
            wanted.update((session.cluster, symbol) for symbol in symbols)
        new, self._wanted_before = wanted - self._wanted_before, wanted
        for key, market in self._markets.items():
            if market.is_open and (key not in wanted or rate <= 0):
                market.close()
        if not wanted or rate <= 0:
            return
        now = self._clock.now_ms_float()
        by_cluster: dict[StreamCluster, list[list[Event]]] = {}
        for cluster, symbol in sorted(wanted):
            events = self._advance(cluster, symbol, now, rate, (cluster, symbol) in new)
            if events:
                by_cluster.setdefault(cluster, []).append(events)
        for cluster, streams in by_cluster.items():
            # Symbols interleaved in time order, as on the live feed.
            merged = list(heapq.merge(*streams, key=_event_time))
            for session in sessions:
                if session.cluster is cluster:
                    mine = [event for event in merged if session.wants(event)]
                    if mine:
                        session.offer(mine)

    def _advance(
        self, cluster: StreamCluster, symbol: str, now: float, rate: float, new: bool
    ) -> list[Event]:
        market = self._markets.get((cluster, symbol))
        if market is None:
            market = self._markets[cluster, symbol] = SymbolMarket(self._factory(cluster), symbol)
        behind = now - market.now
        if market.is_open and behind > MAX_CATCH_UP_SECONDS * 1000 * self._clock.speed:
            logger.debug("market %s fell %.0f ms behind: skipping ahead", symbol, behind)
            market.close()
        if not market.is_open:
            return market.open(now, rate, backfill=new)
        return market.advance(now, rate)


__all__ = ["Feed", "wanted_symbols"]
