"""The bounded buffer between the socket reader and whoever runs the handlers.

The reader puts one decoded frame (a list of events) at a time and never
waits on user code: when the consumer falls behind, the buffer either drops
the oldest frames and counts the events dropped (``"drop_oldest"``, the
default) or makes the reader wait for room (``"backpressure"``; the server may
then disconnect the client as a slow consumer).

Besides frames the buffer carries markers, in order with the frames:
:class:`ConnectionEnded` when a connection ends (the frames before it were all
received on that connection) and :class:`StreamFailed` when the reconnect loop
stops for good. This module holds the shared accounting; the asyncio and the
thread flavours differ only in how a waiting consumer is woken.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from polygon.streaming.errors import ConfigurationError, StreamBusyError

Event = dict[str, Any]
Batch = list[Event]
OverflowPolicy = Literal["drop_oldest", "backpressure"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("drop_oldest", "backpressure")

DEFAULT_MAX_BUFFERED_EVENTS = 100_000


@dataclass(frozen=True)
class ConnectionEnded:
    """A connection ended; ``error`` says how (``None`` when closed by us)."""

    error: BaseException | None


@dataclass(frozen=True)
class StreamFailed:
    """The stream stopped for good with ``error`` (given up, auth failed, evicted)."""

    error: BaseException


class _Closed:
    """The client was closed: consumers stop."""


CLOSED = _Closed()

Marker = ConnectionEnded | StreamFailed | _Closed
Item = Batch | Marker


class Frame(NamedTuple):
    """A decoded frame crossing to another thread: its events, and its raw text
    (``""`` when nobody asked for it)."""

    events: Batch
    text: str


# A counted frame crossing to another thread undecoded, which the consumer
# decodes: ``(event count, text)``. A plain tuple, not a NamedTuple like Frame:
# the reader makes one per frame while the consumer lags, and a NamedTuple
# costs several times a tuple to make (a tuple subclass is built twice over).
RawFrame = tuple[int, str]


# A frame crossing undecoded whose events the buffer has not needed to count
# (see :mod:`polygon.streaming._thread_buffer`) is its text itself: the most
# common item of a busy stream costs no allocation on the reader's thread.
UncountedFrame = str

# events_in() of an UncountedFrame.
UNCOUNTED = -1

# What a thread buffer carries: frames of any kind, and markers.
ThreadItem = Frame | RawFrame | UncountedFrame | Marker


@dataclass
class BufferStats:
    """Counters of what went through the buffer, in events."""

    received: int = 0
    delivered: int = 0
    dropped: int = 0
    backlog: int = 0


def check_buffer_options(max_buffered_events: int, overflow: str) -> None:
    bad_type = isinstance(max_buffered_events, bool) or not isinstance(max_buffered_events, int)
    if bad_type or max_buffered_events < 1:
        raise ConfigurationError(
            f"max_buffered_events must be a positive int, got {max_buffered_events!r}"
        )
    if overflow not in OVERFLOW_POLICIES:
        raise ConfigurationError(
            f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}; got {overflow!r}"
        )


def events_in(item: object) -> int:
    """Events in a buffered frame: a list of events, a :class:`Frame`, a
    :class:`RawFrame`, or ``UNCOUNTED`` for an uncounted frame; 0 for a marker."""
    kind = type(item)
    if kind is list:
        return len(item)  # type: ignore[arg-type]
    if kind is str:
        return UNCOUNTED
    if kind is tuple:  # a RawFrame, or an (events, text) pair
        first = item[0]  # type: ignore[index]
        return first if type(first) is int else len(first)
    if kind is Frame:
        return len(item[0])  # type: ignore[index]
    return 0


def is_frame(item: object) -> bool:
    """A frame (of any kind), not a marker."""
    return type(item) in _FRAME_TYPES


_FRAME_TYPES = (list, Frame, str, tuple)


def drop_oldest(items: deque[Any], stats: BufferStats, limit: int) -> deque[Any]:
    """Drop whole frames from the front until the backlog fits ``limit``.

    Markers are kept (they are few and carry meaning) and so is the newest
    frame. Returns the new deque; ``stats`` is updated in place.
    """
    kept: deque[Any] = deque()
    while stats.backlog > limit and len(items) > 1:
        item = items.popleft()
        count = events_in(item)
        if count or is_frame(item):
            stats.backlog -= count
            stats.dropped += count
        else:
            kept.append(item)
    kept.extend(items)
    return kept


class EventBuffer:
    """A FIFO of frames and markers, bounded in events, consumed on one event loop."""

    def __init__(
        self,
        max_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        overflow: OverflowPolicy = "drop_oldest",
    ) -> None:
        check_buffer_options(max_events, overflow)
        self.max_events = max_events
        self.overflow = overflow
        self.stats = BufferStats()
        self._items: deque[Item] = deque()
        self._closed = False
        self._consumer: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        # Set by a consumer that can take a frame synchronously (all its handlers
        # are plain functions): while it waits with nothing queued, a frame is
        # handed over right here, saving a task switch per frame. It returns
        # False to decline (an async handler appeared), and the frame is queued.
        self.direct: Callable[[Batch], bool] | None = None
        self.decode_in_consumer = False

    # -- producer side (the reader, on the event loop) -------------------------------

    def put(self, batch: Batch, frame: str = "") -> None:
        """Add one decoded frame; drop the oldest frames if over the limit.

        ``frame`` is the raw text, for consumers that want it; this one does not.
        """
        if self._closed:
            return
        count = len(batch)
        stats = self.stats
        stats.received += count
        direct = self.direct
        if direct is not None and self._consumer is not None and not self._items:
            # Counted as delivered first: a handler may read the stats.
            stats.delivered += count
            if direct(batch):
                return
            stats.delivered -= count
        stats.backlog += count
        self._items.append(batch)
        if stats.backlog > self.max_events and self.overflow == "drop_oldest":
            self._drop_oldest()
        self._wake_consumer()

    def put_raw_frames(self, frames: list[str]) -> None:
        """Not used: the reader decodes for this buffer (``decode_in_consumer`` is False)."""
        raise NotImplementedError("EventBuffer takes decoded frames")

    def put_marker(self, marker: ConnectionEnded | StreamFailed) -> None:
        if not self._closed:
            self._items.append(marker)
            self._wake_consumer()

    def has_room(self) -> bool:
        return self.stats.backlog < self.max_events

    async def wait_for_room(self) -> None:
        """With ``backpressure``, wait until the backlog is under the limit."""
        while not self._closed and not self.has_room():
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def discard_connection_markers(self) -> None:
        """Forget ConnectionEnded markers once a new connection healed the loss."""
        if any(isinstance(item, ConnectionEnded) for item in self._items):
            self._items = deque(i for i in self._items if not isinstance(i, ConnectionEnded))

    def close(self) -> None:
        """Stop: consumers get ``CLOSED`` next; what is still buffered is discarded."""
        self._closed = True
        self._items.clear()
        self.stats.backlog = 0
        self._items.append(CLOSED)
        self._wake_consumer()
        self._wake_producer()

    # -- consumer side ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    async def get(self) -> Item:
        """The next frame or marker, waiting for one. One consumer at a time."""
        if self._consumer is not None:
            raise StreamBusyError(
                "handle_messages() or an iterator is already running in another task and "
                "reading this stream; read it from one task only"
            )
        while not self._items:
            self._consumer = asyncio.get_running_loop().create_future()
            try:
                await self._consumer
            finally:
                self._consumer = None
        return self._take()

    def _take(self) -> Item:
        item = self._items[0]
        if item is CLOSED:
            return item
        self._items.popleft()
        if isinstance(item, list):
            stats = self.stats
            stats.backlog -= len(item)
            stats.delivered += len(item)
            if self._room is not None:
                self._wake_producer()
        return item

    # -- internals ----------------------------------------------------------------------

    def _drop_oldest(self) -> None:
        self._items = drop_oldest(self._items, self.stats, self.max_events)

    def _wake_consumer(self) -> None:
        waiter = self._consumer
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_producer(self) -> None:
        waiter = self._room
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
