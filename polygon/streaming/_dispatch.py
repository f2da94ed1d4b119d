"""Routing decoded events to user handlers.

One handler per event code (``ev``). Events no handler was set for go to the
default handler, which prints them to standard output, as the older library's
default did: it is the only library code that prints (status events are
logged, not printed), and it stays quiet
whenever something else already shows every event (``on_message``, an
iterator, a batch handler). Whether a handler is a coroutine function
is decided once, when it is set, so the per-event path is one dictionary
lookup and one call. A handler that raises is logged with its traceback and
counted; the other handlers and later events go on.

For plain-function handlers the table is also kept as code -> function, with
every code of the protocol in it (the default handler, or a no-op, where no
handler was set): the per-event path is then ``calls[event["ev"]](event)``,
and a code missing from it (one the specification does not list, or an event
with no ``ev``) is sorted out only when that lookup raises.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from polygon.enums import StreamCluster, StreamServicePrefix
from polygon.streaming._channels import event_codes
from polygon.streaming.errors import ArgumentTypeError, ConfigurationError

Event = dict[str, Any]
SyncHandler = Callable[[Event], object]
AsyncHandler = Callable[[Event], Awaitable[object]]
Handler = SyncHandler | AsyncHandler
BatchHandler = Callable[[list[Event]], object]

STATUS = "status"

logger = logging.getLogger("polygon.streaming.dispatch")
message_logger = logging.getLogger("polygon.streaming.messages")


class _NoEventCode(ValueError):
    """An event whose ``ev`` is not a string (``null``, a number, a list)."""


def default_message_handler(event: Event) -> None:
    """The handler for events no handler was set for: prints each one to standard output.

    The only library code that prints: a script that subscribes without a
    handler sees its data, as documented. Set a handler (or ``on_message``, a
    batch handler, an iterator) to silence it.
    """
    code = event.get("ev")
    if type(code) is not str:
        # Checked here, off the hot path: only codes no handler matched get here.
        raise _NoEventCode(code)
    print(event, flush=True)  # noqa: T201 - the documented default handler prints


def default_status_handler(event: Event) -> None:
    """Logs status events (login, acknowledgements) at INFO, server errors at WARNING.

    Not printed: the client acts on the statuses that matter itself, and
    standard output stays the data's (a program piping events as JSON lines).
    """
    status = event.get("status")
    level = logging.WARNING if status == "error" else logging.INFO
    message_logger.log(level, "status %s: %s", status, event.get("message"))


def event_code_of(prefix: StreamServicePrefix | str) -> str:
    """The event code for a :class:`StreamServicePrefix` or a plain string."""
    if isinstance(prefix, StreamServicePrefix):
        return prefix.value
    if isinstance(prefix, str) and prefix:
        return prefix
    raise ConfigurationError(
        f"service_prefix must be a StreamServicePrefix or an event code, got {prefix!r}"
    )


def _skip(event: Event) -> None:
    """No handler here: a batch handler or an iterator has shown the event."""


# Every event code of the protocol, status included.
_KNOWN_CODES = tuple(
    dict.fromkeys(code for cluster in StreamCluster for code in (*event_codes(cluster), STATUS))
)


def check_handler(handler: object) -> None:
    if not callable(handler):
        raise ArgumentTypeError(f"handler_function must be callable, got {handler!r}")


class HandlerTable:
    """Event code -> ``(handler, is_async)``, with a default for unknown codes.

    Batch handlers get each frame's whole list of events in one call. While any
    is set, only handlers set explicitly for an event code still run per event:
    the batch handlers have seen every event, so the (printing) default stays quiet.
    """

    def __init__(self) -> None:
        self._table: dict[str, tuple[Handler, bool]] = {}
        self._explicit: dict[str, tuple[Handler, bool]] = {}
        self._default: tuple[Handler, bool] = (default_message_handler, False)
        self._table[STATUS] = (default_status_handler, False)
        self.batch_handlers: list[tuple[BatchHandler, bool]] = []
        # Whether a handler was set for an event code (set()): without one, and
        # without batch handlers, dispatching with explicit_only does nothing,
        # and an iterator skips the call (two Python calls per frame).
        self.has_explicit = False
        # all_sync(), kept current by every change: read once per frame.
        self._sync_only = True
        self.errors = 0
        self.bad_events = 0
        # Set when the client closes: no handler is called after that, even for
        # the rest of a frame already being dispatched.
        self.stopped = False
        # Called with (exception, event) instead of logging, e.g. a client's on_error.
        self.error_hook: Callable[[Exception, Event], None] | None = None
        # Code -> plain function, for dispatch_sync (see the module docstring).
        self._calls: dict[str, SyncHandler] = {}
        self._explicit_calls: dict[str, SyncHandler] = {}
        self._build_calls()

    @property
    def default(self) -> tuple[Handler, bool]:
        """``(handler, is_async)`` for codes with no handler of their own."""
        return self._default

    @default.setter
    def default(self, entry: tuple[Handler, bool]) -> None:
        self._default = entry
        self._sync_only = self.all_sync()
        self._build_calls()

    def check(self, handler: object) -> None:
        """Raise TypeError unless ``handler`` can be a handler here."""
        check_handler(handler)

    def set(self, code: str, handler: Handler) -> None:
        check_handler(handler)
        entry = (handler, is_async_callable(handler))
        self._table[code] = entry
        self._explicit[code] = entry
        self.has_explicit = True
        self._sync_only = self.all_sync()
        self._build_calls()

    def _build_calls(self) -> None:
        # Async handlers have entries too; dispatch_sync is only used when all
        # handlers are plain functions (or by a caller that runs no coroutines).
        default = self.default[0]
        calls: dict[str, Any] = dict.fromkeys(_KNOWN_CODES, default)
        calls.update((code, handler) for code, (handler, _) in self._table.items())
        explicit: dict[str, Any] = dict.fromkeys(_KNOWN_CODES, _skip)
        explicit.update((code, handler) for code, (handler, _) in self._explicit.items())
        self._calls = calls
        self._explicit_calls = explicit

    def all_sync(self) -> bool:
        """True when no handler (per-event, default or batch) is a coroutine function."""
        return not (
            self.default[1]
            or any(is_async for _, is_async in self._table.values())
            or any(is_async for _, is_async in self.batch_handlers)
        )

    def dispatch_if_sync(self, batch: list[Event]) -> bool:
        """Dispatch now if every handler is a plain function; False (nothing done) if not."""
        if not self._sync_only:
            return False
        self.dispatch_sync(batch)
        return True

    def add_batch(self, handler: BatchHandler) -> None:
        check_handler(handler)
        self.batch_handlers.append((handler, is_async_callable(handler)))
        self._sync_only = self.all_sync()

    def remove_batch(self, handler: BatchHandler) -> None:
        """Remove a batch handler; a ValueError if it was not added."""
        for index, (added, _) in enumerate(self.batch_handlers):
            if added == handler:
                del self.batch_handlers[index]
                self._sync_only = self.all_sync()
                return
        raise ConfigurationError(f"{handler!r} is not a batch handler of this client")

    def get(self, code: str) -> Handler:
        return self._table.get(code, self.default)[0]

    async def dispatch(self, batch: list[Event], explicit_only: bool = False) -> None:
        """Call each event's handler in order, awaiting async ones one at a time.

        ``explicit_only``: the caller shows every event elsewhere (an iterator),
        so only batch handlers and handlers set explicitly run.
        """
        if self.stopped:
            return
        if self.batch_handlers or explicit_only:
            await self.dispatch_batch_handlers(batch)
            if self._explicit and not self.stopped:
                await self._dispatch_explicit(batch)
            return
        lookup = self._table.get
        default = self.default
        for event in batch:
            if self.stopped:
                return
            try:
                handler, is_async = lookup(event["ev"], default)
                if is_async:
                    await handler(event)  # type: ignore[misc]
                else:
                    handler(event)
            except Exception as exc:
                self._handler_failed(event, exc)

    def dispatch_sync(self, batch: list[Event], explicit_only: bool = False) -> None:
        """Like :meth:`dispatch` for a caller with no event loop (sync handlers only).

        ``explicit_only``: the caller already shows every event elsewhere (an
        iterator, a raw-frame callback), so only handlers set explicitly run.
        """
        fallback: SyncHandler | None
        if self.stopped:
            return  # close_stream() was called (maybe by the frame's on_message)
        if self.batch_handlers or explicit_only:
            for handler, _ in self.batch_handlers:
                if self.stopped:
                    return
                self._call_batch(handler, batch)
            if not self._explicit or self.stopped:
                return
            calls, fallback = self._explicit_calls, None
        else:
            calls, fallback = self._calls, self.default[0]
        for event in batch:
            if self.stopped:
                return
            try:
                calls[event["ev"]](event)
            except Exception as exc:
                self._unrouted_or_failed(event, exc, calls, fallback)

    def _unrouted_or_failed(
        self,
        event: Event,
        exc: Exception,
        calls: dict[str, SyncHandler],
        fallback: SyncHandler | None,
    ) -> None:
        """dispatch_sync's slow path: a code with no entry, a bad event, or a
        handler that raised (even a KeyError: its code has an entry)."""
        code = event.get("ev") if isinstance(event, dict) else None
        if type(code) is str and code not in calls:
            if fallback is not None:
                try:
                    fallback(event)
                except Exception as failure:
                    self._handler_failed(event, failure)
            return
        self._handler_failed(event, exc)

    async def dispatch_one(self, event: Event, explicit_only: bool = False) -> None:
        """Call one event's handler (its explicit one only, with ``explicit_only``)."""
        if self.stopped:
            return
        try:
            if explicit_only:
                entry = self._explicit.get(event["ev"], _SKIP)
                if entry is _SKIP:
                    return
            else:
                entry = self._table.get(event["ev"], self.default)
            handler, is_async = entry
            if is_async:
                await handler(event)  # type: ignore[misc]
            else:
                handler(event)
        except Exception as exc:
            self._handler_failed(event, exc)

    async def dispatch_batch_handlers(self, batch: list[Event]) -> None:
        """Call every batch handler with ``batch`` (the per-event handlers are not called)."""
        for handler, is_async in self.batch_handlers:
            if self.stopped:
                return
            if is_async:
                try:
                    await handler(batch)  # type: ignore[misc]
                except Exception as exc:
                    self._batch_failed(exc)
            else:
                self._call_batch(handler, batch)

    async def _dispatch_explicit(self, batch: list[Event]) -> None:
        for event in batch:
            if self.stopped:
                return
            await self.dispatch_one(event, explicit_only=True)

    def _call_batch(self, handler: BatchHandler, batch: list[Event]) -> None:
        try:
            handler(batch)
        except Exception as exc:
            self._batch_failed(exc)

    def _batch_failed(self, exc: Exception) -> None:
        self._report(exc, {}, "a batch handler raised; the stream goes on")

    def _handler_failed(self, event: object, exc: Exception) -> None:
        # An ``ev`` that is not a string is as good as none: an unhashable one made
        # the lookup raise, any other one reached the default handler, which raised.
        if not isinstance(event, dict) or type(event.get("ev")) is not str:
            self.bad_events += 1
            logger.warning("skipped an event with no 'ev' code: %.200r", event)
            return
        self._report(
            exc, event, f"handler for {event.get('ev')!r} events raised; the stream goes on"
        )

    def _report(self, exc: Exception, event: Event, message: str) -> None:
        """Count a handler's exception and hand it to the error hook, or log it."""
        self.errors += 1
        hook = self.error_hook
        if hook is not None:
            try:
                hook(exc, event)
                return
            except Exception:
                logger.exception("the error callback raised")
        logger.error("%s", message, exc_info=(type(exc), exc, exc.__traceback__))


# "No handler here" in the explicit-only lookups (a batch handler saw the event).
_SKIP: tuple[Handler, bool] = (default_message_handler, False)


def is_async_callable(handler: object) -> bool:
    """True for coroutine functions, and callable objects whose __call__ is one."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - looking for an async __call__
    return call is not None and inspect.iscoroutinefunction(call)
