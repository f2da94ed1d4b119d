"""What both clients share: who they talk to, what they want, and their counters."""

from __future__ import annotations

from polygon.enums import StreamCluster
from polygon.streaming._buffer import BufferStats
from polygon.streaming._dispatch import HandlerTable
from polygon.streaming._engine import StreamEngine
from polygon.streaming._stats import StreamStats, collect
from polygon.streaming._subscriptions import DesiredSubscriptions


class ClientBase:
    """State read the same way in both clients; each sets these in its constructor."""

    cluster: StreamCluster
    url: str
    _subscriptions: DesiredSubscriptions
    _handlers: HandlerTable
    _engine: StreamEngine

    def _buffer_stats(self) -> BufferStats:
        raise NotImplementedError

    def _is_closed(self) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "closed" if self._is_closed() else "connected" if self.is_connected else "idle"
        return f"<{type(self).__name__} {self.cluster.value} {self.url} {state}>"

    @property
    def is_connected(self) -> bool:
        """True while a connection is authenticated and its subscriptions are live.

        False from the moment ``close_stream()`` is called.
        """
        return not self._is_closed() and self._engine.is_connected

    @property
    def subscriptions(self) -> list[str]:
        """The desired topics (``"T.AAPL"``), in the order they were first asked for."""
        return self._subscriptions.topics()

    @property
    def stats(self) -> StreamStats:
        """A snapshot of the client's counters (see :class:`~polygon.streaming.StreamStats`)."""
        return collect(self._engine.stats, self._buffer_stats(), self._handlers)
