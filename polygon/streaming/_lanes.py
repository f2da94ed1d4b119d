"""Bounded concurrency for the asyncio client's handlers (``handler_concurrency=N``).

Events are sorted into one lane per symbol; a lane runs its events one after
the other, so the order is kept per symbol, and at most ``N`` handler calls
run at once across all lanes. Batch handlers still see whole frames, in order,
before the frame's events enter their lanes.

The consumer that feeds the lanes (``handle_messages``) waits once more than
``max_pending`` events are waiting in lanes; the socket reader never waits on
the lanes: it keeps filling the client's bounded buffer, whose overflow policy
applies as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from polygon.enums import StreamCluster
from polygon.streaming._channels import symbol_field
from polygon.streaming._dispatch import STATUS, Event, HandlerTable


class HandlerLanes:
    """Runs per-event handlers up to ``concurrency`` at a time, in order per symbol."""

    def __init__(
        self,
        handlers: HandlerTable,
        cluster: StreamCluster,
        concurrency: int,
        max_pending: int,
    ) -> None:
        self._handlers = handlers
        self._cluster = cluster
        self._slots = asyncio.Semaphore(concurrency)
        self._max_pending = max_pending
        self._lanes: dict[str, deque[Event]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending = 0
        self._room: asyncio.Event | None = None

    @property
    def pending(self) -> int:
        """Events waiting in lanes or being handled."""
        return self._pending

    def _lane_of(self, event: Event) -> str:
        code = event.get("ev")
        if code == STATUS or type(code) is not str:
            return STATUS
        return str(event.get(symbol_field(self._cluster, code), ""))

    async def dispatch(self, batch: list[Event], explicit_only: bool = False) -> None:
        """Hand a frame's events to their lanes; wait while too many are pending."""
        handlers = self._handlers
        if handlers.batch_handlers or explicit_only:
            await handlers.dispatch_batch_handlers(batch)
            explicit_only = True
        for event in batch:
            key = self._lane_of(event) if type(event) is dict else STATUS
            lane = self._lanes.get(key)
            self._pending += 1
            if lane is not None:
                lane.append(event)
                continue
            lane = self._lanes[key] = deque([event])
            task = asyncio.get_running_loop().create_task(self._drain(key, lane, explicit_only))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        while self._pending > self._max_pending and not handlers.stopped:
            self._room = self._room or asyncio.Event()
            await self._room.wait()

    async def _drain(self, key: str, lane: deque[Event], explicit_only: bool) -> None:
        try:
            while lane:
                async with self._slots:
                    await self._handlers.dispatch_one(lane[0], explicit_only)
                lane.popleft()
                self._pending -= 1
                room = self._room
                if room is not None and self._pending <= self._max_pending:
                    self._room = None
                    room.set()
        finally:
            del self._lanes[key]

    async def join(self) -> None:
        """Wait until every event handed over so far has been handled."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel(self) -> None:
        """Stop every lane; events still waiting in them are dropped."""
        # Not the caller's own lane (close_stream() called from a handler).
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        self._pending = 0
        room, self._room = self._room, None
        if room is not None:
            room.set()
