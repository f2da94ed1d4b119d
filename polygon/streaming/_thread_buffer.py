"""The buffer that carries frames from the event-loop thread to a consumer thread.

Frames cross threads whole, never one event at a time, and a waiting consumer
takes everything buffered in one go, so the cost of waking a thread is paid
per burst, not per event. The producer (the reader, on the loop thread) never
blocks: with ``"drop_oldest"`` it drops and counts; with ``"backpressure"`` it
awaits a future that the consumer resolves through ``call_soon_threadsafe``.

Frames the consumer decodes itself (``put_raw_frames``) are counted only when their
count matters. Counting the events of a 10 kB frame means searching all of it
(about 8 µs, a tenth of decoding it), and the consumer learns the count for free
when it decodes. So while the buffer cannot be over its limit even if every
waiting frame were packed with the smallest possible events, frames go in
uncounted; the first frame that could take it over the limit has every waiting
frame counted, and from then on frames are counted as they come, until the
consumer catches up. The limit and the drop counts stay exact; :attr:`stats`
counts the uncounted frames when read.

A short uncounted frame (up to ``COUNT_ON_TAKE_CHARS``) is counted when the
consumer takes it, under the lock the take holds anyway: searching a few hundred
characters costs less than settling the frame after decoding it, a call that
takes the lock once more. Longer frames are settled by the consumer
(:meth:`settle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import deque

from polygon.streaming._buffer import (
    CLOSED,
    DEFAULT_MAX_BUFFERED_EVENTS,
    UNCOUNTED,
    Batch,
    BufferStats,
    ConnectionEnded,
    Frame,
    OverflowPolicy,
    RawFrame,
    StreamFailed,
    ThreadItem,
    UncountedFrame,
    check_buffer_options,
    drop_oldest,
    events_in,
)

__all__ = ["UNCOUNTED", "Frame", "RawFrame", "ThreadEventBuffer", "UncountedFrame"]

# The consumer takes at most 1/CHUNKS_PER_LIMIT of the limit at a time.
CHUNKS_PER_LIMIT = 16


def count_events(frame: str) -> int:
    """The events in a raw frame, counted by their codes.

    Every event of the protocol is an object with an ``"ev"`` key, and those
    four characters, quotes included, cannot occur inside a JSON string (its
    quotes would be escaped).
    """
    return frame.count('"ev"')


# No event is shorter than ``{"ev":""}`` and its comma: a frame of n characters
# holds at most n // MIN_EVENT_CHARS events.
MIN_EVENT_CHARS = 10

# Uncounted frames up to this long (about 9 trades) are counted when taken, not
# settled after decoding: here ``str.count`` over 1,024 characters took about
# 1.3 us, a settle (a call, a lock round trip) about 1 us, and the settle it
# replaced (a Condition and contextlib.suppress) 2.8 us.
COUNT_ON_TAKE_CHARS = 1024

# A Frame built without the NamedTuple constructor, a Python function that
# costs twice this: ``_new_tuple(Frame, (events, text))`` is ``Frame(events, text)``.
_new_tuple = tuple.__new__


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
        self._stats = BufferStats()
        # Characters of the uncounted frames waiting here (see the module docstring),
        # and how many they are: they sit at the end of the queue, or near it, so
        # counting them walks back from the end this far, never the whole queue.
        self._uncounted_chars = 0
        self._uncounted_frames = 0
        # Uncounted frames taken and not yet counted by the consumer (settle), in
        # the order taken: they are received and delivered, for stats.
        self._unsettled: deque[str] = deque()
        # What one take hands the consumer at most: the frames it is working
        # through count against memory too, so they stay a small share of the limit.
        self.chunk_events = max(1, max_events // CHUNKS_PER_LIMIT)
        # Uncounted frames up to this long are counted when taken (not settled).
        self.count_on_take_chars = COUNT_ON_TAKE_CHARS
        self._items: deque[ThreadItem] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiting = 0
        self._closed = False
        # With defer_wakeups (a producer on an event loop), a waiting consumer is
        # woken once at the end of the loop's current iteration instead of once
        # per frame: frames read in one burst cost one cross-thread wake-up.
        self._defer = defer_wakeups
        self._wake_scheduled = False
        # Raw frame text costs memory per buffered frame: kept only when wanted.
        self.keep_raw = True
        # Plain data frames come undecoded (put_raw_frames): the consumer decodes them.
        self.decode_in_consumer = decode_in_consumer
        self._room: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        # Producers on a thread waiting for room (put_blocking, backpressure).
        self._producers_waiting = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dropped(self) -> int:
        """Events dropped so far (cheap: no lock, no counting)."""
        return self._stats.dropped

    @property
    def backlog(self) -> int:
        """Events waiting (the counted ones; cheap: no lock)."""
        return self._stats.backlog

    # -- producer side (the loop thread) ------------------------------------------

    @property
    def stats(self) -> BufferStats:
        """A snapshot of the counters, uncounted frames counted."""
        with self._cond:
            stats = dataclasses.replace(self._stats)
            if self._uncounted_chars:
                waiting = sum(count_events(item) for item in self._items if type(item) is str)
                stats.received += waiting
                stats.backlog += waiting
            taken = sum(count_events(frame) for frame in self._unsettled)
            stats.received += taken
            stats.delivered += taken
        return stats

    def put_raw_frames(self, frames: list[str]) -> None:
        """Add frames the consumer will decode (and count, when it can), in
        order: all of one read under one lock, with one wake-up."""
        if self.overflow != "drop_oldest":
            for frame in frames:
                self._append((count_events(frame), frame))
            return
        with self._cond:
            if self._closed:
                return
            for frame in frames:
                chars = self._uncounted_chars + len(frame)
                if self._stats.backlog + chars // MIN_EVENT_CHARS > self.max_events:
                    # It could go over the limit: count what waits, then this frame.
                    self._count_uncounted()
                    count = count_events(frame)
                    self._add_locked((count, frame), count)
                else:
                    self._uncounted_chars = chars
                    self._uncounted_frames += 1
                    self._items.append(frame)
            wake_later = self._wake_locked()
        if wake_later:
            asyncio.get_running_loop().call_soon(self._wake_consumer)

    def settle(self, frame: str, count: int) -> None:
        """The consumer decoded an uncounted ``frame`` it took: ``count`` events."""
        # The condition's lock itself: entering the condition is a Python call.
        with self._lock:
            unsettled = self._unsettled
            # Frames are decoded in the order taken: it is the first one.
            if unsettled and unsettled[0] is frame:
                unsettled.popleft()
            else:
                with contextlib.suppress(ValueError):
                    unsettled.remove(frame)
            self._stats.received += count
            self._stats.delivered += count

    def put(self, batch: Batch, frame: str = "") -> None:
        self._append(_new_tuple(Frame, (batch, frame if self.keep_raw else "")))

    def put_from_thread(self, batch: Batch, frame: str = "") -> None:
        """Add a frame from a producer on a plain thread (no event loop).

        With ``overflow="backpressure"`` it waits until the buffer has room (or
        is closed), so the bound holds and nothing is lost: the producer slows
        down instead, and so does whatever feeds it.
        """
        item = Frame(batch, frame if self.keep_raw else "")
        with self._cond:
            if self.overflow == "backpressure" and not self._closed and not self.has_room():
                self._producers_waiting += 1
                try:
                    self._cond.wait_for(lambda: self._closed or self.has_room())
                finally:
                    self._producers_waiting -= 1
            if self._closed:
                return
            self._add_locked(item, events_in(item))
            if self._waiting:
                self._cond.notify_all()

    def _append(self, item: Frame | RawFrame) -> None:
        with self._cond:
            if self._closed:
                return
            self._add_locked(item, events_in(item))
            if not self._wake_locked():
                return
        asyncio.get_running_loop().call_soon(self._wake_consumer)

    def _add_locked(self, item: Frame | RawFrame, count: int) -> None:
        stats = self._stats
        stats.received += count
        stats.backlog += count
        self._items.append(item)
        if stats.backlog > self.max_events and self.overflow == "drop_oldest":
            self._count_uncounted()
            self._items = drop_oldest(self._items, stats, self.max_events)

    def _count_uncounted(self) -> None:
        """Count every waiting frame (the buffer may be about to go over its limit).

        The uncounted frames are the last ones put, but for a decoded frame or a
        marker put after them: walking back from the end, the walk stops at the
        last of them, so its cost does not grow with what was counted before.
        """
        left = self._uncounted_frames
        if not left:
            return
        stats = self._stats
        items = self._items
        index = len(items)
        while left and index:
            index -= 1
            item = items[index]
            if type(item) is str:
                count = count_events(item)
                stats.received += count
                stats.backlog += count
                items[index] = (count, item)
                left -= 1
        self._uncounted_chars = 0
        self._uncounted_frames = 0

    def _wake_locked(self) -> bool:
        """Wake a waiting consumer; True if the wake-up is to be deferred (the
        caller schedules it once the lock is released)."""
        if not self._waiting:
            return False
        if not self._defer:
            self._cond.notify()
            return False
        if self._wake_scheduled:
            return False
        self._wake_scheduled = True
        return True

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
        # Uncounted frames are only kept with drop_oldest, which never asks.
        return self._stats.backlog < self.max_events

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
            self._count_uncounted()  # they were received, and are discarded now
            self._items.clear()
            self._stats.backlog = 0
            self._items.append(CLOSED)
            self._cond.notify_all()
        self._release_producer()

    # -- consumer side ------------------------------------------------------------------

    def take_all(self, timeout: float | None = None) -> list[ThreadItem]:
        """What is buffered, up to ``chunk_events`` events, waiting up to ``timeout``.

        Returns ``[]`` after the timeout. Frames come as :class:`Frame`, or to
        decode as :class:`RawFrame` or, uncounted (longer than
        ``count_on_take_chars``), their text, for :meth:`settle`; markers as
        themselves. ``CLOSED`` stays in the buffer, so every consumer sees it.
        """
        with self._cond:
            if not self._items:
                self._waiting += 1
                try:
                    self._cond.wait_for(lambda: bool(self._items), timeout)
                finally:
                    self._waiting -= 1
            items = self._items
            taken: list[ThreadItem] = []
            delivered = 0  # counted events that were waiting
            counted_now = 0  # events of short frames counted as they are taken
            limit = self.chunk_events
            short = self.count_on_take_chars
            taken_bound = 0
            while items and delivered + counted_now + taken_bound < limit:
                item = items[0]
                if item is CLOSED:
                    taken.append(item)  # and left in place
                    break
                items.popleft()
                if type(item) is str:
                    chars = len(item)
                    self._uncounted_chars -= chars
                    self._uncounted_frames -= 1
                    if chars <= short:
                        count = count_events(item)
                        counted_now += count
                        taken.append((count, item))
                        continue
                    # Counted by the consumer (settle); its bound limits the take.
                    self._unsettled.append(item)
                    taken_bound += chars // MIN_EVENT_CHARS
                else:
                    delivered += events_in(item)
                taken.append(item)
            stats = self._stats
            stats.backlog -= delivered
            stats.delivered += delivered + counted_now
            stats.received += counted_now
            if self._producers_waiting and delivered:
                self._cond.notify_all()
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
