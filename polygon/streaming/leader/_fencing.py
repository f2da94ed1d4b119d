"""Sinks that publish only while their publisher holds the lease."""

from __future__ import annotations

from typing import Any

from polygon.enums import StreamCluster
from polygon.streaming.leader._lease import LeaderTerm
from polygon.streaming.sinks import Sink

Event = dict[str, Any]


class FencedSink:
    """A :class:`~polygon.streaming.sinks.Sink` that publishes only during ``term``.

    While the lease is certainly held, frames pass to ``sink``. From the moment
    it is not (``term.lost``, or its validity ran out), frames are refused, and
    closing discards what ``sink`` still buffers instead of flushing it, so a
    deposed publisher puts nothing more into the broker. Refused and discarded
    events are counted in ``sink.stats.dropped``. A write the sink had already
    sent when the lease was lost is not recalled; it reaches the broker before
    the lease can expire there (see :doc:`/scaling`).
    """

    def __init__(self, sink: Sink, term: LeaderTerm) -> None:
        self.sink = sink
        self.term = term
        self._closed = False

    def attach(self, cluster: StreamCluster) -> None:
        self.sink.attach(cluster)

    def offer(self, events: list[Event], frame: str | None = None) -> None:
        if self.term.is_valid():
            self.sink.offer(events, frame)
        else:
            stats = getattr(self.sink, "stats", None)
            if stats is not None:
                stats.dropped += len(events)

    async def start(self) -> None:
        await self.sink.start()

    async def close(self, timeout: float = 5.0) -> None:
        """Flush for at most ``timeout`` seconds while the lease lasts; discard after."""
        if self._closed:
            return
        self._closed = True
        await self.sink.close(timeout=min(timeout, self.term.remaining()))

    async def discard(self) -> None:
        """Close at once, dropping what is buffered (the lease is gone)."""
        if not self._closed:
            self._closed = True
            await self.sink.close(timeout=0)
