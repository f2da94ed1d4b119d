"""What every sink shares: a bounded buffer and one writer task that retries.

The engine offers each decoded frame to the sink on its event loop; offering
never waits. A single writer task drains the buffer in batches, in arrival
order, so the order of each symbol's events is kept. A batch leaves the buffer
only once the broker has accepted it; when a write fails, the sink reconnects
with backoff and writes the same batch again. Delivery is therefore
at-least-once: after a failure the broker may hold a batch twice, never zero
times. When the broker is slower than the feed and the buffer is full, new
events are refused and counted in ``stats.dropped``; the market-data
connection is never held up by a broker.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from typing_extensions import Self

from polygon.enums import StreamCluster
from polygon.streaming._backoff import Backoff
from polygon.streaming._channels import symbol_field

Event = dict[str, Any]

logger = logging.getLogger("polygon.streaming.sinks")


class Sink(Protocol):
    """What a client needs of a sink (see :class:`BufferedSink`)."""

    def attach(self, cluster: StreamCluster) -> None: ...
    def offer(self, events: list[Event]) -> None: ...
    async def start(self) -> None: ...
    async def close(self, timeout: float = 5.0) -> None: ...


@dataclass
class SinkStats:
    """Counters of a sink, in events (``failures`` and ``reconnects`` count attempts).

    :ivar offered: events offered by the client.
    :ivar published: events the broker accepted.
    :ivar dropped: events refused because the buffer was full, or left in the
        buffer when the sink was closed before it could publish them.
    :ivar failures: failed writes (each retried).
    :ivar reconnects: connections made to the broker after the first.
    :ivar backlog: events waiting in the buffer.
    """

    offered: int = 0
    published: int = 0
    dropped: int = 0
    failures: int = 0
    reconnects: int = 0
    backlog: int = 0


class EventSource(abc.ABC):
    """Base of the consumers: ``async for event in source`` inside ``async with source``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop: an ``async for`` over this source ends at its next read."""

    @abc.abstractmethod
    def _events(self) -> AsyncIterator[Event]:
        """The events, in order, until closed."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()


class BufferedSink(abc.ABC):
    """Base of the broker sinks: subclasses say how to connect, write and disconnect.

    :param max_buffered_events: events that may wait for the broker; beyond
        this, new events are refused and counted as dropped.
    :param batch_size: the most events written in one round trip.
    :param retry_delay: the first delay after a failed write, doubled per
        failure up to a minute.
    :param include_status: also publish status events (off: they describe this
        client's session, not the market).
    """

    def __init__(
        self,
        *,
        max_buffered_events: int = 100_000,
        batch_size: int = 500,
        retry_delay: float = 0.5,
        include_status: bool = False,
    ) -> None:
        if max_buffered_events < 1 or batch_size < 1:
            raise ValueError("max_buffered_events and batch_size must be positive")
        self.max_buffered_events = max_buffered_events
        self.batch_size = batch_size
        self.include_status = include_status
        self.cluster: StreamCluster | None = None
        self.stats = SinkStats()
        self._buffer: deque[Event] = deque()
        self._backoff = Backoff(retry_delay)
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._connected = False

    # -- what the subclasses implement -------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the connection to the broker (and create what must exist)."""

    @abc.abstractmethod
    async def _write(self, events: list[Event]) -> None:
        """Publish ``events`` in order; return only once the broker accepted all."""

    @abc.abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection; must not raise."""

    # -- the client's side ---------------------------------------------------------------

    def attach(self, cluster: StreamCluster) -> None:
        """Called by the client: the cluster names the events' topics."""
        self.cluster = cluster

    def offer(self, events: list[Event]) -> None:
        """Take a frame's events; never waits (called on the client's event loop)."""
        if not self.include_status:
            events = [e for e in events if type(e) is dict and e.get("ev") != "status"]
        if not events:
            return
        stats = self.stats
        stats.offered += len(events)
        room = self.max_buffered_events - len(self._buffer)
        if room < len(events):
            # Keep what was already accepted (it was promised at-least-once);
            # refuse what does not fit.
            stats.dropped += len(events) - max(room, 0)
            events = events[: max(room, 0)]
        self._buffer.extend(events)
        stats.backlog = len(self._buffer)
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        """Start the writer task on the running loop. Idempotent."""
        if self._writer is None:
            self._wake = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(
                self._write_forever(), name=f"polygon-sink-{type(self).__name__}"
            )

    async def close(self, timeout: float = 5.0) -> None:
        """Publish what is buffered (for at most ``timeout`` seconds), then stop."""
        self._closing = True
        writer = self._writer
        if writer is not None:
            if self._wake is not None:
                self._wake.set()
            done, _ = await asyncio.wait({writer}, timeout=timeout)
            if not done:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
        self.stats.dropped += len(self._buffer)
        self._buffer.clear()
        self.stats.backlog = 0
        await self._disconnect()
        self._connected = False

    # -- the writer ---------------------------------------------------------------------

    async def _write_forever(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if not self._buffer:
                if self._closing:
                    return
                wake.clear()
                await wake.wait()
                continue
            batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
            try:
                await self._ensure_connected()
                await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._recover(exc)
                continue
            for _ in batch:
                self._buffer.popleft()
            self.stats.published += len(batch)
            self.stats.backlog = len(self._buffer)
            self._backoff.reset()

    async def _ensure_connected(self) -> None:
        if not self._connected:
            await self._connect()
            if self.stats.failures:
                self.stats.reconnects += 1
            self._connected = True

    async def _recover(self, exc: Exception) -> None:
        self.stats.failures += 1
        self._connected = False
        await self._disconnect()
        delay = self._backoff.next_delay()
        logger.warning("%s: %s; retrying in %.2f s", type(self).__name__, exc, delay)
        if self._closing:
            # close() bounds how long we keep trying; a short pause keeps the
            # retries from spinning.
            await asyncio.sleep(min(delay, 0.05))
            return
        with contextlib.suppress(asyncio.TimeoutError):
            # Wake early only when closing, to flush or give up promptly.
            await asyncio.wait_for(self._until_closing(), delay)

    async def _until_closing(self) -> None:
        while not self._closing:
            assert self._wake is not None
            self._wake.clear()
            await self._wake.wait()

    def topic_fields(self, event: Event) -> dict[str, str]:
        """The fields a key or subject template may use: cluster, ev and sym."""
        code = str(event.get("ev", "unknown"))
        if self.cluster is None:
            return {"cluster": "unknown", "ev": code, "sym": "unknown"}
        symbol = event.get(symbol_field(self.cluster, code))
        return {
            "cluster": self.cluster.value,
            "ev": code,
            "sym": symbol if isinstance(symbol, str) else "unknown",
        }
