"""What every sink shares: a bounded buffer and one writer task that retries.

The engine offers each decoded frame to the sink on its event loop; offering
never waits, and its only work per event is one pass in C that notes the
frame's event codes. A single writer task takes the buffered frames in
batches, in arrival order, so the order of each symbol's events is kept. A
batch leaves the buffer only once the broker has accepted it; when a write
fails, the sink reconnects with backoff and writes the very same batch again
(the same events under the same numbers), so the broker or the consumer can
recognise what it already has. Delivery is therefore at-least-once: after a
failure the broker may hold a batch twice, never zero times. When the broker
is slower than the feed and the buffer is full, new events are refused,
counted in ``stats.dropped`` and logged; the market-data connection is never
held up by a broker.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from operator import itemgetter
from types import TracebackType
from typing import Any, Literal, Protocol

import orjson
from typing_extensions import Self

from polygon.enums import StreamCluster
from polygon.streaming._backoff import Backoff
from polygon.streaming._channels import symbol_field
from polygon.streaming.errors import ConfigurationError

Event = dict[str, Any]
#: How a sink puts events in the broker: ``"batch"``, one entry (Redis) or
#: message (NATS) per key or subject per written batch, holding a JSON array of
#: events; ``"event"``, one entry or message per event, holding the event.
Packing = Literal["batch", "event"]
PACKINGS: tuple[Packing, ...] = ("batch", "event")

logger = logging.getLogger("polygon.streaming.sinks")

_event_code = itemgetter("ev")
# Drops are logged at most this often (seconds): a broker that stays away would
# otherwise cost a log line per frame.
DROP_LOG_INTERVAL = 10.0


class Sink(Protocol):
    """What a client needs of a sink (see :class:`BufferedSink`)."""

    def attach(self, cluster: StreamCluster) -> None: ...
    def offer(self, events: list[Event], frame: str | None = None) -> None: ...
    async def start(self) -> None: ...
    async def close(self, timeout: float = 5.0) -> None: ...


@dataclass
class SinkStats:
    """Counters of a sink, in events (``failures`` and ``reconnects`` count attempts).

    :ivar offered: events offered by the client.
    :ivar published: events the broker accepted.
    :ivar dropped: events refused because the buffer was full, left in the
        buffer when the sink was closed before it could publish them, or too
        large for the broker to take.
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


class Frame:
    """A frame's events as buffered.

    :ivar code: their one event code, or ``None`` when they have several (or
        one that is not a string).
    :ivar size: the number of events.
    :ivar events: the events, or ``None`` when only the text was kept.
    :ivar text: the frame as received (a JSON array of exactly these events),
        or ``None``.

    Keeping only the text when it is enough spares the buffer a dict per
    event, and the garbage collector the walk over them.
    """

    __slots__ = ("code", "events", "size", "text")

    def __init__(
        self, code: str | None, size: int, events: list[Event] | None, text: str | None
    ) -> None:
        self.code = code
        self.size = size
        self.events = events
        self.text = text

    def decoded(self) -> list[Event]:
        """The events (decoded from the text again if only the text was kept)."""
        if self.events is None:
            self.events = orjson.loads(self.text or "[]")
        return self.events

    def split(self, at: int) -> tuple[Frame, Frame]:
        """The first ``at`` events, and the rest (without the text, which no longer fits)."""
        events = self.decoded()
        return (
            Frame(self.code, at, events[:at], None),
            Frame(self.code, self.size - at, events[at:], None),
        )


class Batch:
    """Frames taken from the buffer together, and written (again, after a failure) as one.

    :ivar frames: the frames, in arrival order.
    :ivar first: the sink's number for the first event: a sink numbers its
        events 0, 1, 2, ... in the order the client received them.
    :ivar size: the number of events.
    :ivar refused: events the writer could not put in the broker at all (an
        event larger than the broker takes); counted as dropped, not published.
    """

    __slots__ = ("first", "frames", "refused", "size")

    def __init__(self, frames: list[Frame], first: int, size: int) -> None:
        self.frames = frames
        self.first = first
        self.size = size
        self.refused = 0

    def events(self) -> list[Event]:
        """Every event, in order."""
        events: list[Event] = []
        for frame in self.frames:
            events.extend(frame.decoded())
        return events


def check_packing(packing: str) -> None:
    """Raise :class:`~polygon.streaming.errors.ConfigurationError` unless ``packing`` is known."""
    if packing not in PACKINGS:
        raise ConfigurationError(f"packing must be 'batch' or 'event', not {packing!r}")


class BufferedSink(abc.ABC):
    """Base of the broker sinks: subclasses say how to connect, write and disconnect.

    :param max_buffered_events: events that may wait for the broker; beyond
        this, new events are refused and counted as dropped.
    :param batch_size: the most events written in one round trip. The writer
        takes what arrived while its last write was on the way, up to this,
        so batches grow with the rate of the feed.
    :param retry_delay: the first delay after a failed write, doubled per
        failure up to a minute.
    :param include_status: also publish status events (off: they describe this
        client's session, not the market).
    """

    def __init__(
        self,
        *,
        max_buffered_events: int = 100_000,
        batch_size: int = 50_000,
        retry_delay: float = 0.5,
        include_status: bool = False,
    ) -> None:
        if max_buffered_events < 1:
            raise ConfigurationError(
                f"max_buffered_events must be positive, not {max_buffered_events!r}"
            )
        if batch_size < 1:
            raise ConfigurationError(f"batch_size must be positive, not {batch_size!r}")
        self.max_buffered_events = max_buffered_events
        self.batch_size = batch_size
        self.include_status = include_status
        self.cluster: StreamCluster | None = None
        self.stats = SinkStats()
        self._frames: deque[Frame] = deque()
        # Events in the buffer, the batch being written included.
        self._buffered = 0
        # The batch being written: kept as it is until the broker accepted it.
        self._pending: Batch | None = None
        self._next_number = 0
        self._backoff = Backoff(retry_delay)
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._connected = False
        self._drop_logged_at: float | None = None
        # Whether the writer needs the events themselves, or only the frame's
        # text when there is one (a subclass that only joins texts says False).
        self._keeps_events = True

    # -- what the subclasses implement -------------------------------------------------

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Open the connection to the broker (and create what must exist)."""

    @abc.abstractmethod
    async def _write(self, batch: Batch) -> None:
        """Publish ``batch`` in order; return only once the broker accepted all of it.

        After a failure it is called again with the same batch: what it writes
        must depend on the batch alone, so that the repeats can be recognised.
        """

    @abc.abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection; must not raise."""

    # -- the client's side ---------------------------------------------------------------

    def attach(self, cluster: StreamCluster) -> None:
        """Called by the client: the cluster names the events' topics."""
        self.cluster = cluster

    def offer(self, events: list[Event], frame: str | None = None) -> None:
        """Take a frame's events; never waits (called on the client's event loop).

        ``frame``, the frame's text as received, lets the sink publish the
        events without encoding them again.
        """
        if not events:
            return
        if type(frame) is not str or (frame[:1] != "[" and frame.lstrip()[:1] != "["):
            frame = None  # only a JSON array's text can stand for the events
        try:
            # One pass in C; a TypeError means an element that is not a JSON
            # object, which no broker entry should carry (a KeyError, one
            # without an event code: rare enough for the slow way).
            codes = set(map(_event_code, events))
        except (TypeError, KeyError):
            events = [e for e in events if type(e) is dict]
            codes = {e.get("ev") for e in events}
            frame = None
        if "status" in codes and not self.include_status:
            events = [e for e in events if e.get("ev") != "status"]
            codes.discard("status")
            frame = None
        if not events:
            return
        code = next(iter(codes)) if len(codes) == 1 else None
        if type(code) is not str:
            code = None
        if frame is not None and not self._keeps_events:
            # The text is all the writer needs: no dict is kept alive.
            self._buffer(Frame(code, len(events), None, frame))
        else:
            # A copy: the client hands the same list to batch handlers, which
            # may change it.
            self._buffer(Frame(code, len(events), list(events), frame))

    def _buffer(self, frame: Frame) -> None:
        stats = self.stats
        count = frame.size
        stats.offered += count
        room = self.max_buffered_events - self._buffered
        if room < count:
            # Keep what was already accepted (it was promised at-least-once);
            # refuse what does not fit.
            self._refuse(count - max(room, 0))
            if room <= 0:
                return
            frame, _ = frame.split(room)
            count = room
        self._frames.append(frame)
        self._buffered += count
        stats.backlog = self._buffered
        if self._wake is not None:
            self._wake.set()

    def _refuse(self, count: int) -> None:
        self.stats.dropped += count
        now = time.monotonic()
        if self._drop_logged_at is None or now - self._drop_logged_at > DROP_LOG_INTERVAL:
            self._drop_logged_at = now
            logger.warning(
                "%s: the buffer of %d events is full; %d events dropped so far",
                type(self).__name__,
                self.max_buffered_events,
                self.stats.dropped,
            )

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
        if self._buffered:
            logger.warning(
                "%s: closed with %d events not published", type(self).__name__, self._buffered
            )
        self.stats.dropped += self._buffered
        self._frames.clear()
        self._pending = None
        self._buffered = 0
        self.stats.backlog = 0
        await self._disconnect()
        self._connected = False

    # -- the writer ---------------------------------------------------------------------

    async def _write_forever(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            batch = self._pending
            if batch is None:
                if not self._frames:
                    if self._closing:
                        return
                    if not self._connected:
                        # Connect before the first events, not when they wait.
                        await self._connect_early()
                        continue
                    wake.clear()
                    await wake.wait()
                    continue
                batch = self._pending = self._take_batch()
            try:
                await self._ensure_connected()
                batch.refused = 0
                await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._recover(exc)
                continue
            self._written(batch)

    def _take_batch(self) -> Batch:
        """The next frames, up to ``batch_size`` events (the last may be split)."""
        frames: list[Frame] = []
        size, limit, buffered = 0, self.batch_size, self._frames
        while buffered and size < limit:
            frame = buffered[0]
            room = limit - size
            if frame.size > room:
                head, buffered[0] = frame.split(room)
                frames.append(head)
                size += room
                break
            buffered.popleft()
            frames.append(frame)
            size += frame.size
        batch = Batch(frames, self._next_number, size)
        self._next_number += size
        return batch

    def _written(self, batch: Batch) -> None:
        self._pending = None
        self._buffered -= batch.size
        stats = self.stats
        stats.published += batch.size - batch.refused
        stats.dropped += batch.refused
        stats.backlog = self._buffered
        self._backoff.reset()

    async def _connect_early(self) -> None:
        try:
            await self._ensure_connected()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._recover(exc)

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
