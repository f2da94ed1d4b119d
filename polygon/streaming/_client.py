"""The half both clients share: the wiring of engine, handlers and subscriptions,
the subscribe/unsubscribe plumbing, handler changes, and the older library's names.

Each client keeps only what differs: how it runs the engine (on the caller's
loop, or on a background thread) and how it hands events to user code.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from polygon.enums import StreamCluster, StreamHost, StreamServicePrefix
from polygon.streaming._buffer import BufferStats
from polygon.streaming._config import ClientConfig, resolve_api_key
from polygon.streaming._dispatch import BatchHandler, Handler, HandlerTable, event_code_of
from polygon.streaming._engine import FrameSink, StreamEngine
from polygon.streaming._protocol import Symbols
from polygon.streaming._stats import StreamStats, collect
from polygon.streaming._subscriptions import DesiredSubscriptions, Request, plan_request
from polygon.streaming.errors import StreamClosedError
from polygon.streaming.sinks import Sink

# The older library's module constants, kept for scripts that pass them as ``host``.
HOST = StreamHost.REAL_TIME.value
DELAYED_HOST = StreamHost.DELAYED.value


def ensure_prefix(symbol: str, _prefix: str = "O:") -> str:
    """``symbol`` upper-cased, with ``_prefix`` in front unless it is there already.

    The older library's helper, kept with its behaviour: ``"*"`` is returned as
    it is. The clients do not need it (they add and drop prefixes themselves,
    see :ref:`symbol-rules`).

    Example::

        ensure_prefix("tsla120110c00123000")   # 'O:TSLA120110C00123000'
        ensure_prefix("btc-usd", _prefix="X:")  # 'X:BTC-USD'
    """
    upper = symbol.upper()
    if symbol == "*" or upper.startswith(_prefix):
        return upper
    return f"{_prefix}{upper}"


class HandlerChanged:
    """What ``change_handler()`` returns: the change is already made.

    Awaiting it is allowed (older scripts do) and optional: it is not a
    coroutine, so leaving it unawaited never warns.
    """

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that finishes at once: ``await`` returns None

    def __repr__(self) -> str:
        return "<HandlerChanged>"


HANDLER_CHANGED = HandlerChanged()


class ClientBase:
    """State and methods both clients have; each builds its buffer and calls :meth:`_wire`."""

    cluster: StreamCluster
    url: str
    _subscriptions: DesiredSubscriptions
    _handlers: HandlerTable
    _engine: StreamEngine
    _sinks: list[Sink]

    def _wire(
        self,
        config: ClientConfig,
        api_key: str,
        buffer: FrameSink,
        *,
        lifecycle_level: int = logging.DEBUG,
    ) -> None:
        """Build what every client has, from its checked configuration.

        ``lifecycle_level`` is the level of the engine's connect/login/reconnect
        messages (the blocking client's ``enable_connection_logs`` raises it).
        """
        self.cluster = config.cluster
        self.url = config.connection.url
        self._subscriptions = DesiredSubscriptions()
        self._handlers = HandlerTable()
        self._engine = StreamEngine(
            config.connection,
            api_key,
            self._subscriptions,
            buffer,
            reconnect_on_eviction=config.reconnect_on_eviction,
            lifecycle_level=lifecycle_level,
        )
        self._sinks = []

    # -- what each client says about itself ------------------------------------------

    def _buffer_stats(self) -> BufferStats:
        raise NotImplementedError

    def _is_closed(self) -> bool:
        raise NotImplementedError

    def _check_handler(self, handler: object) -> None:
        """Refuse a handler this client cannot call (TypeError)."""
        self._handlers.check(handler)

    # -- state ---------------------------------------------------------------------------

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

    @staticmethod
    def _login_key(key: str | None, api_key: str | None) -> str | None:
        """The key given to ``login`` under either name, checked; None for none."""
        given = key if key is not None else api_key
        return None if given is None else resolve_api_key(given)

    def _check_open(self) -> None:
        if self._is_closed():
            raise StreamClosedError("the client was closed with close_stream(); create a new one")

    # -- subscriptions -------------------------------------------------------------------

    def _plan(
        self,
        action: str,
        stream: str,
        symbols: Symbols,
        force_uppercase_symbols: bool,
        handler_function: Handler | None = None,
    ) -> Request:
        """Check a subscribe/unsubscribe call; set its handler. Raises before anything changes."""
        self._check_open()
        if handler_function is not None:
            self._check_handler(handler_function)
        request = plan_request(action, stream, self.cluster, symbols, force_uppercase_symbols)
        if handler_function is not None:
            self._handlers.set(request.stream.event_code, handler_function)
        return request

    # -- handlers ------------------------------------------------------------------------

    def change_handler(
        self,
        service_prefix: StreamServicePrefix | str,
        handler_function: Handler,
    ) -> HandlerChanged:
        """Set the handler for one kind of event, effective from the next event.

        Works while the stream runs. The change is made by the call itself; the
        call returns an awaitable that is already done, so both spellings work
        (``await client.change_handler(...)`` as older scripts write it, or a plain
        call) and neither warns.

        :param service_prefix: a :class:`~polygon.enums.StreamServicePrefix` or
            an event code such as ``"T"``, ``"XQ"``, or ``"status"`` for status events.
        :param handler_function: a function taking one event (a dict); for
            :class:`~polygon.streaming.async_streaming.AsyncStreamClient` also a
            coroutine function. :class:`~polygon.streaming.streaming.StreamClient`
            calls it on its dispatcher thread and refuses coroutine functions.
        :raises TypeError: ``handler_function`` is not a handler this client can call.
        :raises ValueError: ``service_prefix`` is neither an enum member nor a
            non-empty string.

        Example::

            client.change_handler(StreamServicePrefix.STOCK_TRADES, on_trade)
            await client.change_handler("status", on_status)  # the same, awaited
        """
        code = event_code_of(service_prefix)
        self._check_handler(handler_function)
        self._handlers.set(code, handler_function)
        return HANDLER_CHANGED

    def add_batch_handler(self, handler_function: BatchHandler) -> None:
        """Also call ``handler_function`` once per frame, with the list of its events.

        The fastest way to consume a firehose: one call per frame instead of one
        per event. The list is in arrival order and may mix event codes and
        status events; it is the client's own list, so copy it to keep it past
        the call. While a batch handler is set, only handlers given explicitly
        (with ``handler_function=`` or :meth:`change_handler`) still run per
        event; the default (printing) handlers stay quiet. Effective from the
        next frame, also while the stream runs.

        :param handler_function: a function taking a list of events; for
            :class:`~polygon.streaming.async_streaming.AsyncStreamClient` also a
            coroutine function (:class:`~polygon.streaming.streaming.StreamClient`
            runs it on its dispatcher thread and refuses coroutine functions).
        :raises TypeError: ``handler_function`` is not a handler this client can call.

        Example::

            def on_frame(events: list[dict]) -> None:
                writer.write_many(events)

            client.add_batch_handler(on_frame)
        """
        self._check_handler(handler_function)
        self._handlers.add_batch(handler_function)

    def remove_batch_handler(self, handler_function: BatchHandler) -> None:
        """Stop calling a batch handler added with :meth:`add_batch_handler`.

        :raises ValueError: it was not added.
        """
        self._handlers.remove_batch(handler_function)

    # -- sinks ---------------------------------------------------------------------------

    def _attach_sink(self, sink: Sink) -> None:
        """The checks of ``add_sink`` in both clients; each then starts it its own way."""
        self._check_open()
        sink.attach(self.cluster)


__all__ = ["DELAYED_HOST", "HOST", "ClientBase", "HandlerChanged", "ensure_prefix"]
