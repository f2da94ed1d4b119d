"""``async for`` over an :class:`~polygon.streaming.async_streaming.AsyncStreamClient`.

An iterator reads the stream in one of two ways:

- **directly**, when no ``handle_messages(reconnect=True)`` loop runs: it takes
  frames from the client's buffer itself (one task at a time), running the
  explicit handlers of each frame before yielding it;
- **as a tap** of a running ``handle_messages`` loop: the loop handles each frame
  and then puts a copy in the iterator's own bounded buffer.

The iterators are plain classes, not async generators: leaving one with
``break`` needs no finalisation, so a new iterator can read the stream at once
and gets the events of a frame the previous one left unread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

from polygon.streaming._buffer import (
    CLOSED,
    ConnectionEnded,
    EventBuffer,
    Item,
    StreamFailed,
)
from polygon.streaming._dispatch import STATUS, Event


class Taps:
    """The iterators fed by a running ``handle_messages`` loop, each with its own buffer."""

    def __init__(self) -> None:
        self._buffers: list[EventBuffer] = []
        # Events dropped by taps that are gone (stats keeps counting them).
        self._retired_drops = 0
        # True while a handle_messages(reconnect=True) loop runs and feeds taps.
        self.active = False
        # Called when taps come or go (the loop decides how it dispatches).
        self.on_change: Callable[[], None] | None = None

    def __bool__(self) -> bool:
        return bool(self._buffers)

    def add(self, max_events: int) -> EventBuffer | None:
        """A new tap, or None when no loop runs to feed it."""
        if not self.active:
            return None
        tap = EventBuffer(max_events, "drop_oldest")
        self._buffers.append(tap)
        self._changed()
        return tap

    def remove(self, tap: EventBuffer) -> None:
        if tap in self._buffers:
            self._buffers.remove(tap)
            self._retired_drops += tap.stats.dropped
            self._changed()

    @property
    def dropped(self) -> int:
        """Events the taps dropped (their consumers fell behind), gone ones included."""
        return self._retired_drops + sum(tap.stats.dropped for tap in self._buffers)

    def put(self, batch: list[Event]) -> None:
        for tap in self._buffers:
            tap.put(batch)

    def loop_stopped(self, error: BaseException | None) -> None:
        """The feeding loop ended: taps get its error, or are told to read directly."""
        self.active = False
        for tap in self._buffers:
            tap.put_marker(StreamFailed(error) if error is not None else ConnectionEnded(None))

    def close(self) -> None:
        self.active = False
        for tap in self._buffers:
            tap.close()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class AsyncBatchIterator:
    """Each frame's events as one list (see the module docstring)."""

    def __init__(
        self,
        next_direct: Callable[[], Awaitable[Item]],
        taps: Taps,
        pending: deque[Event],
        include_status: bool,
        tap_size: int,
    ) -> None:
        self._next_direct = next_direct
        self._taps = taps
        self._shared_pending = pending
        self._include_status = include_status
        self._tap_size = tap_size
        self._own_pending: deque[Event] = deque()
        self._tap: EventBuffer | None = None
        self._done = False

    @property
    def pending(self) -> deque[Event]:
        """Events taken but not yet yielded: shared by the direct readers of a client
        (a later iterator gets them), this iterator's own as a tap."""
        return self._shared_pending if self._tap is None else self._own_pending

    def __aiter__(self) -> AsyncBatchIterator:
        return self

    async def __anext__(self) -> list[Event]:
        if self._done:
            raise StopAsyncIteration
        while True:
            if self._tap is None and self._shared_pending:
                events = list(self._shared_pending)
                self._shared_pending.clear()
            else:
                item = await self._next_item()
                if type(item) is not list:
                    self._on_marker(item)
                    continue
                events = item
            if not self._include_status:
                events = [e for e in events if type(e) is not dict or e.get("ev") != STATUS]
            if events:
                return events

    async def _next_item(self) -> Item:
        if self._tap is None:
            self._tap = self._taps.add(self._tap_size)
        if self._tap is not None:
            return await self._tap.get()
        return await self._next_direct()

    def _on_marker(self, item: Item) -> None:
        """Stop at CLOSED, raise a failure; a loop that stopped feeding: read directly."""
        if item is CLOSED:
            self._finish()
            raise StopAsyncIteration
        if isinstance(item, StreamFailed):
            self._finish()
            raise item.error
        if isinstance(item, ConnectionEnded) and self._tap is not None:
            self._detach()
        # A ConnectionEnded read directly: the reconnect loop is already at work.

    def _detach(self) -> None:
        if self._tap is not None:
            self._taps.remove(self._tap)
            self._tap = None

    def _finish(self) -> None:
        self._done = True
        self._detach()

    async def aclose(self) -> None:
        """Stop feeding this iterator (also done when it is garbage collected)."""
        self._finish()

    def __del__(self) -> None:
        # A tap nobody reads would only fill up: let it go with its iterator.
        if self._tap is not None:
            self._taps.remove(self._tap)


class AsyncEventIterator:
    """Decoded events one by one, over an :class:`AsyncBatchIterator`."""

    def __init__(self, batches: AsyncBatchIterator) -> None:
        self._batches = batches

    def __aiter__(self) -> AsyncEventIterator:
        return self

    async def __anext__(self) -> Event:
        queue = self._batches.pending
        while not queue:
            batch = await self._batches.__anext__()
            queue = self._batches.pending
            queue.extend(batch)
        return queue.popleft()

    async def aclose(self) -> None:
        await self._batches.aclose()
