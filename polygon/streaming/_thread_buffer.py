"""The buffer that carries frames from the event-loop thread to a consumer thread.

Frames cross threads whole, never one event at a time, and a waiting consumer
takes everything buffered in one go, so the cost of waking a thread is paid
per burst, not per event. The producer (the reader, on the loop thread) never
blocks: with ``"drop_oldest"`` it drops and counts; with ``"backpressure"`` it
awaits a future that the consumer resolves through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from typing import Any

from polygon.streaming._buffer import (
    CLOSED,
    DEFAULT_MAX_BUFFERED_EVENTS,
    Batch,
    BufferStats,
    ConnectionEnded,
    OverflowPolicy,
    StreamFailed,
    check_buffer_options,
    drop_oldest,
    events_in,
)

# The consumer takes at most 1/CHUNKS_PER_LIMIT of the limit at a time.
CHUNKS_PER_LIMIT = 16

# A frame as the consumer sees it: its events, and its raw text when kept.
Frame = tuple[Batch, str]


class ThreadEventBuffer:
    """A FIFO of frames and markers, bounded in events, consumed on another thread."""

    def __init__(
        self,
        max_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        overflow: OverflowPolicy = "drop_oldest",
        defer_wakeups: bool = False,
        decode_in_consumer: bool = False,
    ) -> None:
        check_buffer_options(max_events, overflow)
        self.max_events = max_events
        self.overflow = overflow
        self.stats = BufferStats()
        # What one take hands the consumer at most: the frames it is working
        # through count against memory too, so they stay a small share of the limit.
        self.chunk_events = max(1, max_events // CHUNKS_PER_LIMIT)
        self._items: deque[Any] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0
        self._closed = False
        # With defer_wakeups (a producer on an event loop), a waiting consumer is
        # woken once at the end of the loop's current iteration instead of once
        # per frame: frames read in one burst cost one cross-thread wake-up.
        self._defer = defer_wakeups
        self._wake_scheduled = False
        # Raw frame text costs memory per buffered frame: kept only when wanted.
        self.keep_raw = True
        # Plain data frames come undecoded (put_raw): the consumer decodes them.
        self.decode_in_consumer = decode_in_consumer
        self._room: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- producer side (the loop thread) ------------------------------------------

    def put_raw(self, frame: str) -> None:
        """Add a frame the consumer will decode; its events are counted by their codes."""
        # Every event of the protocol is an object with an "ev" key, and the
        # four characters "ev" with their quotes cannot occur in a JSON string
        # value (its quotes would be escaped), so this counts events exactly.
        self._append((frame.count('"ev"'), frame))

    def put(self, batch: Batch, frame: str = "") -> None:
        self._append((batch, frame if self.keep_raw else ""))

    def _append(self, item: tuple[Any, str]) -> None:
        count = events_in(item)
        with self._cond:
            if self._closed:
                return
            stats = self.stats
            stats.received += count
            stats.backlog += count
            self._items.append(item)
            if stats.backlog > self.max_events and self.overflow == "drop_oldest":
                self._items = drop_oldest(self._items, stats, self.max_events)
            if not self._waiting:
                return
            if not self._defer:
                self._cond.notify()
                return
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        asyncio.get_running_loop().call_soon(self._wake_consumer)

    def _wake_consumer(self) -> None:
        with self._cond:
            self._wake_scheduled = False
            self._cond.notify()

    def put_marker(self, marker: ConnectionEnded | StreamFailed) -> None:
        with self._cond:
            if not self._closed:
                self._items.append(marker)
                self._cond.notify_all()

    def discard_connection_markers(self) -> None:
        """Keep them: the blocking client only reports losses (``on_error``), and a
        loss healed before a busy consumer reached its marker is still a loss the
        user was promised to hear about. (The asyncio buffer discards them, because
        there a marker makes ``handle_messages()`` raise.)"""

    def has_room(self) -> bool:
        return self.stats.backlog < self.max_events

    async def wait_for_room(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed and not self.has_room():
            future = loop.create_future()
            with self._cond:
                self._room = (loop, future)
                # Re-check under the lock: the consumer may have made room already.
                if self._closed or self.has_room():
                    self._room = None
                    return
            await future

    def close(self) -> None:
        """Consumers get ``CLOSED`` next; what is still buffered is discarded."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self.stats.backlog = 0
            self._items.append(CLOSED)
            self._cond.notify_all()
        self._release_producer()

    # -- consumer side ------------------------------------------------------------------

    def take_all(self, timeout: float | None = None) -> list[Any]:
        """What is buffered, up to ``chunk_events`` events, waiting up to ``timeout``.

        Returns ``[]`` after the timeout. Frames come as ``(events, raw)`` pairs;
        markers as themselves. ``CLOSED`` stays in the buffer, so every consumer
        sees it.
        """
        with self._cond:
            if not self._items:
                self._waiting += 1
                try:
                    self._cond.wait_for(lambda: bool(self._items), timeout)
                finally:
                    self._waiting -= 1
            items = self._items
            taken: list[Any] = []
            delivered = 0
            limit = self.chunk_events
            while items and delivered < limit:
                item = items[0]
                taken.append(item)
                if item is CLOSED:
                    break
                items.popleft()
                delivered += events_in(item)
            self.stats.backlog -= delivered
            self.stats.delivered += delivered
        if self._room is not None:
            self._release_producer()
        return taken

    def _release_producer(self) -> None:
        with self._cond:
            room, self._room = self._room, None
        if room is not None:
            loop, future = room
            # RuntimeError: the loop is already closed; nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
