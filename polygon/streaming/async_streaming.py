"""The asyncio client: the streaming engine on the caller's own event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Literal

from typing_extensions import Self

from polygon.enums import StreamCluster, StreamHost
from polygon.streaming._async_iter import AsyncBatchIterator, AsyncEventIterator, Taps
from polygon.streaming._async_methods import AsyncStreamMethods
from polygon.streaming._buffer import (
    CLOSED,
    DEFAULT_MAX_BUFFERED_EVENTS,
    BufferStats,
    ConnectionEnded,
    EventBuffer,
    Item,
    OverflowPolicy,
    StreamFailed,
)
from polygon.streaming._client import DELAYED_HOST, HOST, ClientBase, ensure_prefix
from polygon.streaming._config import (
    DEFAULT_HANDLER_CONCURRENCY,
    DEFAULT_MAX_MEMORY_QUEUE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_RECONNECTION_ATTEMPTS,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_OVERFLOW,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_READ_LIMIT,
    DEFAULT_RECONNECTION_DELAY,
    DEFAULT_WRITE_LIMIT,
    ReconnectOptions,
    build_config,
    concurrency_option,
    reconnect_options,
    resolve_api_key,
)
from polygon.streaming._dispatch import Event, Handler
from polygon.streaming._drops import DropReporter
from polygon.streaming._lanes import HandlerLanes
from polygon.streaming._protocol import Symbols
from polygon.streaming._subscriptions import Request, commit
from polygon.streaming.errors import ArgumentTypeError, PolygonStreamError, SlowConsumerWarning
from polygon.streaming.sinks import Sink

logger = logging.getLogger("polygon.streaming.async_streaming")

# How long close_stream() lets a running handler finish before cancelling it
# (so that handle_messages() returns even while a handler is stuck).
HANDLER_GRACE_SECONDS = 1.0


class AsyncStreamClient(ClientBase, AsyncStreamMethods):
    """Streams real-time market data from one cluster, on the caller's event loop.

    Subscribe to streams with the ``subscribe_*`` methods, then run
    :meth:`handle_messages`, or iterate with ``async for``. Subscriptions are
    kept as desired state and sent again after every reconnect; events are read
    by a background task into a bounded buffer, so slow handlers never stall the
    connection's keepalive.

    Example::

        async with AsyncStreamClient(None, "stocks") as client:
            await client.subscribe_stock_trades(["AAPL"], handler_function=print)
            await client.handle_messages(reconnect=True)
    """

    def __init__(
        self,
        api_key: str | None,
        cluster: StreamCluster | str,
        host: StreamHost | str = StreamHost.REAL_TIME,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_memory_queue: int | None = DEFAULT_MAX_MEMORY_QUEUE,
        read_limit: int = DEFAULT_READ_LIMIT,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        *,
        open_timeout: float | None = DEFAULT_OPEN_TIMEOUT,
        max_buffered_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        overflow: OverflowPolicy = DEFAULT_OVERFLOW,
        reconnect_on_eviction: bool = False,
        handler_concurrency: int = DEFAULT_HANDLER_CONCURRENCY,
    ) -> None:
        """Create a client; it connects on the first subscribe or :meth:`handle_messages`.

        :param api_key: the API key; ``None`` reads ``POLYGON_API_KEY``, then
            ``MASSIVE_API_KEY``, from the environment when the client is created.
        :param cluster: a :class:`~polygon.enums.StreamCluster` or its name
            (``"stocks"``, ``"options"``, ``"forex"``, ``"crypto"``, ``"indices"``).
        :param host: a :class:`~polygon.enums.StreamHost`, a hostname (``wss://`` is
            used), or a full ``ws://``/``wss://`` base URL such as a local simulator's.
            The cluster is appended as the path.
        :param ping_interval: seconds between keepalive pings (default 20);
            ``0`` or ``None`` sends none.
        :param ping_timeout: seconds to wait for a pong before the connection is
            considered dead (default 19); ``0`` or ``None`` waits forever.
        :param max_message_size: the largest frame accepted, in bytes. A larger frame
            ends the connection (close code 1009), which then reconnects.
        :param max_memory_queue: frames that may wait while the client logs in
            before it stops reading the socket until they are read. Once logged
            in, frames go from the socket straight to the buffer that
            ``max_buffered_events`` bounds.
        :param read_limit: accepted for compatibility with older releases; the
            websockets asyncio implementation has no separate read buffer to bound.
        :param write_limit: the high-water mark of the write buffer, in bytes.
        :param open_timeout: seconds allowed to open the connection and to
            authenticate.
        :param max_buffered_events: events that may wait for the handlers before the
            ``overflow`` policy applies.
        :param overflow: ``"drop_oldest"`` (default): keep reading and drop the
            oldest buffered frames, counted in :attr:`stats`; or ``"backpressure"``:
            stop reading until the handlers catch up (the server may then
            disconnect the client as a slow consumer).
        :param reconnect_on_eviction: reconnect after a ``max_connections``
            eviction. Off by default: two clients on one key that both reconnect
            evict each other forever.
        :param handler_concurrency: how many per-event handler calls may run at
            once. ``1`` (default) runs them one at a time, every event in order.
            With more, events are still handled in order per symbol, and at most
            ``max_buffered_events`` wait for a free slot (see
            :ref:`handler-concurrency`).
        :raises ~polygon.streaming.errors.ConfigurationError: a bad argument, or no
            API key anywhere.
        """
        key = resolve_api_key(api_key)
        config = build_config(
            cluster,
            host,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_message_size=max_message_size,
            max_memory_queue=max_memory_queue,
            write_limit=write_limit,
            open_timeout=open_timeout,
            max_buffered_events=max_buffered_events,
            overflow=overflow,
            reconnect_on_eviction=reconnect_on_eviction,
        )
        concurrency = concurrency_option(handler_concurrency)
        self.read_limit = read_limit
        self._buffer = EventBuffer(config.max_buffered_events, config.overflow)
        self._wire(config, key, self._buffer)
        self._closed = False
        # The task running handle_messages(reconnect=True), and whether
        # close_stream() cancelled its stuck handler.
        self._consumer: asyncio.Task[object] | None = None
        self._handler_cancelled = False
        self._error_handlers: list[Callable[[PolygonStreamError], object]] = []
        # Dropped events are reported (error handlers, a WARNING), not only counted.
        self._drops = DropReporter(self._report_drops)
        self._taps = Taps()
        # Events of a frame an iterator took but has not yielded yet (after a break).
        self._pending: deque[Event] = deque()
        self._supervisor: asyncio.Task[None] | None = None
        self._lanes: HandlerLanes | None = None
        if concurrency > 1:
            self._lanes = HandlerLanes(
                self._handlers, self.cluster, concurrency, config.max_buffered_events
            )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close_stream()

    # -- state ---------------------------------------------------------------------------

    def _is_closed(self) -> bool:
        return self._closed

    def _buffer_stats(self) -> BufferStats:
        # The iterators' own buffers drop events too: every drop counts.
        stats = dataclasses.replace(self._buffer.stats)
        stats.dropped += self._taps.dropped
        return stats

    def add_error_handler(self, handler: Callable[[PolygonStreamError], object]) -> None:
        """Also call ``handler(error)`` with reports the stream goes on after.

        Today: a :class:`~polygon.streaming.errors.SlowConsumerWarning` when
        events were dropped because the consumer fell behind (at most one per
        5 s, beside a WARNING log line), with the numbers. A plain function,
        called on the event loop; what it raises is logged.

        Example::

            client.add_error_handler(lambda error: metrics.incr("dropped", error.dropped))
        """
        if not callable(handler):
            raise ArgumentTypeError(f"an error handler must be callable, got {handler!r}")
        self._error_handlers.append(handler)

    def _check_drops(self) -> None:
        buffer = self._buffer
        total = buffer.stats.dropped + self._taps.dropped
        self._drops.check(total, buffer.stats.backlog, buffer.max_events)

    def _report_drops(self, warning: SlowConsumerWarning) -> None:
        for handler in tuple(self._error_handlers):
            try:
                handler(warning)
            except Exception:
                logger.exception("an error handler raised")

    # -- the stream ----------------------------------------------------------------------

    async def handle_messages(
        self,
        reconnect: bool = False,
        max_reconnection_attempts: int | Literal[False] | None = DEFAULT_MAX_RECONNECTION_ATTEMPTS,
        reconnection_delay: float = DEFAULT_RECONNECTION_DELAY,
        max_reconnection_delay: float | None = None,
    ) -> None:
        """Receive events and call their handlers.

        Without ``reconnect``, each call connects and logs in if needed, then
        handles one frame (all the events in it), so a loop of your own works::

            while True:
                await client.handle_messages()

        If the connection was lost, the frames received before the loss are
        handled first, then the call raises the loss; the next call connects
        again and sends the subscriptions again.

        With ``reconnect=True`` it runs until :meth:`close_stream` is called
        (from any coroutine, or a handler), reconnecting after every loss with
        exponential backoff and jitter, and sending the subscriptions again after
        every reconnect. A lost connection that had delivered data (or been up
        for 5 s) is retried at once and the backoff starts over; failed attempts,
        and connections that end before delivering anything, wait
        ``reconnection_delay``, then twice that, and so on up to
        ``max_reconnection_delay`` (see :ref:`reconnect-policy`). A loop
        ended by :meth:`close_stream` returns ``None``, also when the close came
        before the loop got to run (a task created just before the close).

        :param reconnect: run until closed, reconnecting as needed.
        :param max_reconnection_attempts: consecutive failed connection attempts
            after which the loop gives up; the count starts over once a
            connection authenticates. ``None`` or ``False`` retries forever.
        :param reconnection_delay: the first backoff delay, in seconds (floats
            allowed); each further failure doubles it.
        :param max_reconnection_delay: the longest backoff delay, in seconds;
            ``None``: the default, 60.
        :raises ~polygon.streaming.errors.AuthenticationError: the key was
            rejected; never retried.
        :raises ~polygon.streaming.errors.MaxConnectionsError: another
            connection on the same key evicted this one (unless the client was
            made with ``reconnect_on_eviction=True``).
        :raises ~polygon.streaming.errors.ReconnectFailedError: gave up after
            ``max_reconnection_attempts`` failures.
        :raises ~polygon.streaming.errors.ConnectionLostError: without
            ``reconnect``, the connection was lost.
        :raises ~polygon.streaming.errors.StreamClosedError: without
            ``reconnect``, the client was closed before the call (so that a
            ``while True`` loop around it ends).
        :raises RuntimeError: another task is already reading this client's
            stream (``handle_messages()`` or an iterator).
        """
        if not reconnect:
            self._check_open()
            await self._handle_one_frame()
            return
        options = reconnect_options(
            max_reconnection_attempts, reconnection_delay, max_reconnection_delay
        )
        if self._closed:
            return
        await self._run_supervised(options)

    async def _handle_one_frame(self) -> None:
        # Frames already received are handled before any new connection is made,
        # so nothing received before a loss is skipped or reordered.
        if not len(self._buffer) and not self._engine.is_connected:
            await self._engine.connect()
        item = await self._buffer.get()
        self._check_drops()
        if type(item) is list:
            await self._dispatch(item)
        elif isinstance(item, (ConnectionEnded, StreamFailed)) and item.error is not None:
            raise item.error

    async def _dispatch(self, batch: list[Event]) -> None:
        # Iterators fed from this loop show every event: the defaults stay quiet.
        taps = self._taps
        explicit_only = bool(taps)
        lanes = self._lanes
        if lanes is None:
            await self._handlers.dispatch(batch, explicit_only)
        else:
            await lanes.dispatch(batch, explicit_only)
        if taps:
            taps.put(batch)

    def _start_supervisor(self, options: ReconnectOptions) -> asyncio.Task[None]:
        """The reconnect loop, started once and shared by handle_messages and iterators."""
        supervisor = self._supervisor
        if supervisor is None or supervisor.done():
            supervisor = asyncio.get_running_loop().create_task(
                self._engine.run(options.max_attempts, options.delay, max_delay=options.max_delay),
                name="polygon-stream-supervisor",
            )
            supervisor.add_done_callback(self._on_supervisor_done)
            self._supervisor = supervisor
        return supervisor

    async def _run_supervised(self, options: ReconnectOptions) -> None:
        self._consumer = asyncio.current_task()
        try:
            await self._consume_supervised(options)
        except asyncio.CancelledError:
            if not self._handler_cancelled:
                raise
            # close_stream() cancelled a handler stuck past the grace period:
            # the loop ends as a closed loop does, by returning.
            task = asyncio.current_task()
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
        finally:
            self._consumer = None

    async def _consume_supervised(self, options: ReconnectOptions) -> None:
        supervisor = self._start_supervisor(options)
        get = self._buffer.get
        error: BaseException | None = None
        # While this loop waits with nothing queued, the reader may run plain
        # handlers itself (they block the loop whichever task calls them).
        self._taps.active = True
        self._taps.on_change = self._direct_allowed
        self._direct_allowed()
        try:
            check_drops = self._check_drops
            while True:
                item: Item = await get()
                check_drops()
                if type(item) is list:
                    await self._dispatch(item)
                elif item is CLOSED:
                    return
                elif isinstance(item, StreamFailed):
                    error = item.error
                    raise error
                # ConnectionEnded: the supervisor is already reconnecting.
        finally:
            self._buffer.direct = None
            self._taps.on_change = None
            self._taps.loop_stopped(error)
            if not supervisor.done():
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
            if self._lanes is not None and not self._closed:
                await self._lanes.join()

    def _direct_allowed(self) -> None:
        """The reader may run plain handlers itself only while no iterator is fed."""
        if self._lanes is None and not self._taps:
            self._buffer.direct = self._handlers.dispatch_if_sync
        else:
            self._buffer.direct = None

    def _on_supervisor_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            self._buffer.put_marker(StreamFailed(error))

    # -- iterating -----------------------------------------------------------------------

    def iter_messages(self, include_status: bool = True) -> AsyncEventIterator:
        """Iterate over decoded events with ``async for``, starting the stream if needed.

        The same rules as :meth:`StreamClient.iter_messages
        <polygon.streaming.streaming.StreamClient.iter_messages>`: it ends when
        :meth:`close_stream` is called, raises the error that stopped the stream,
        and can be left with ``break`` (events of a frame not yet yielded are kept
        for the next iteration). Handlers still run: handlers set explicitly run
        just before their frame's events are yielded; the default (printing)
        handlers stay quiet, since the iterator shows every event. While
        :meth:`handle_messages` runs in another task, the iterator gets a copy of
        every frame it handles; otherwise one task at a time reads the stream
        directly, reconnecting with the defaults of :meth:`handle_messages`.

        :param include_status: also yield status events (``ev == "status"``).
        :raises ~polygon.streaming.errors.PolygonStreamError: the error that
            stopped the stream (authentication failed, eviction, gave up
            reconnecting).
        :raises RuntimeError: another task is already reading the stream directly.

        Example::

            async for event in client.iter_messages(include_status=False):
                print(event["sym"], event["p"])
        """
        return AsyncEventIterator(self._batches(include_status))

    def iter_batches(self, include_status: bool = True) -> AsyncBatchIterator:
        """Iterate with ``async for`` over each frame's events as one list.

        The same as :meth:`iter_messages`, a frame at a time: the fastest way to
        consume a firehose.

        :param include_status: keep status events in the lists (frames left
            empty without them are skipped).
        :raises ~polygon.streaming.errors.PolygonStreamError: the error that
            stopped the stream.
        :raises RuntimeError: another task is already reading the stream directly.
        """
        return self._batches(include_status)

    def _batches(self, include_status: bool) -> AsyncBatchIterator:
        return AsyncBatchIterator(
            self._next_frame,
            self._taps,
            self._pending,
            include_status,
            self._buffer.max_events,
        )

    async def _next_frame(self) -> Item:
        """The next item of the stream for an iterator reading it directly."""
        self._check_open()
        self._start_supervisor(
            ReconnectOptions(DEFAULT_MAX_RECONNECTION_ATTEMPTS, DEFAULT_RECONNECTION_DELAY)
        )
        item = await self._buffer.get()
        self._check_drops()
        if type(item) is list:
            await self._handlers.dispatch(item, explicit_only=True)
        return item

    # -- subscriptions -------------------------------------------------------------------

    async def _subscribe(
        self,
        stream: str,
        symbols: Symbols,
        handler_function: Handler | None,
        force_uppercase_symbols: bool,
    ) -> None:
        request = self._plan(
            "subscribe", stream, symbols, force_uppercase_symbols, handler_function
        )
        await self._apply(request)

    async def _unsubscribe(
        self,
        stream: str,
        symbols: Symbols,
        force_uppercase_symbols: bool,
    ) -> None:
        await self._apply(self._plan("unsubscribe", stream, symbols, force_uppercase_symbols))

    async def _apply(self, request: Request) -> None:
        # Recording and the connected check happen with no await between them,
        # so a reconnect's replay either includes this change or sees it sent.
        change = commit(self._subscriptions, request)
        engine = self._engine
        if engine.is_connected:
            if not change.is_empty:
                await engine.send_change(change.action, change.topics, change.raw)
        elif not engine.supervised:
            # Connecting sends the whole desired set, this change included.
            await engine.connect()
        # Otherwise the reconnect loop is between connections: it was recorded.

    async def add_sink(self, sink: Sink) -> None:
        """Publish every event this client receives through ``sink``, to a broker.

        The sink gets each frame as it is read, before any handler runs, on
        this event loop; it never holds up the connection (see
        :mod:`polygon.streaming.sinks`). :meth:`close_stream` flushes and
        closes it.

        :param sink: a :class:`~polygon.streaming.sinks.Sink`, e.g.
            :class:`~polygon.streaming.sinks.redis.RedisStreamsSink`.

        Example::

            await client.add_sink(RedisStreamsSink("redis://localhost:6379/0"))
        """
        self._attach_sink(sink)
        await sink.start()
        self._engine.add_tap(sink.offer)
        self._sinks.append(sink)

    # -- connection control --------------------------------------------------------------

    async def login(self, key: str | None = None, *, api_key: str | None = None) -> None:
        """Connect and authenticate now, instead of on the first subscribe.

        Not needed in normal use: subscribing or handling messages logs in.

        :param key: a key to use from now on instead of the one given at
            creation (the older library's name); if connected, the client
            reconnects with it.
        :param api_key: the same as ``key``.
        :raises ~polygon.streaming.errors.AuthenticationError: the key was rejected.
        :raises ~polygon.streaming.errors.StreamConnectionError: the server
            could not be reached.
        """
        self._check_open()
        new_key = self._login_key(key, api_key)
        if new_key is not None:
            self._engine.set_api_key(new_key)
            await self._engine.disconnect()
        await self._engine.connect()

    async def reconnect(self) -> tuple[bool, str]:
        """Drop the current connection (if any) and connect again.

        The desired subscriptions are sent again and the handlers stay as they
        are. Frames already received are still handled. Meant for building a
        reconnect policy of your own around :meth:`handle_messages`.

        :returns: ``(True, message)`` when the new connection is authenticated,
            ``(False, message)`` saying why it is not.
        """
        if self._closed:
            return False, "the client was closed with close_stream()"
        await self._engine.disconnect()
        try:
            await self._engine.connect()
        except PolygonStreamError as exc:
            return False, str(exc)
        return True, f"reconnected to {self.url}"

    async def _stop_consumer(self) -> None:
        """Let a handle_messages() loop busy in a handler finish within
        HANDLER_GRACE_SECONDS, then cancel the handler: the loop returns."""
        consumer = self._consumer
        if consumer is None or consumer is asyncio.current_task() or consumer.done():
            return
        await asyncio.wait({consumer}, timeout=HANDLER_GRACE_SECONDS)
        if not consumer.done():
            logger.warning(
                "a handler was still running %.1f s after close_stream(); cancelling it",
                HANDLER_GRACE_SECONDS,
            )
            self._handler_cancelled = True
            consumer.cancel()
            await asyncio.wait({consumer})

    async def close_stream(self) -> None:
        """Close the connection and stop :meth:`handle_messages` and iterators. Idempotent.

        Callable from any coroutine, handlers included. Frames still waiting
        in the buffer are discarded. A connection being opened is aborted at
        once (the call opening it raises
        :class:`~polygon.streaming.errors.StreamClosedError`). A handler still
        running gets ``HANDLER_GRACE_SECONDS`` (1 s) to finish, then it is
        cancelled and :meth:`handle_messages` returns. The client cannot be
        used afterwards.
        """
        self._closed = True
        self._handlers.stopped = True
        self._buffer.close()
        self._taps.close()
        await self._engine.close()
        await self._stop_consumer()
        if self._lanes is not None:
            await self._lanes.cancel()
        # After the engine: every event it read has been offered to the sinks.
        for sink in self._sinks:
            await sink.close()


__all__ = ["DELAYED_HOST", "HOST", "AsyncStreamClient", "ensure_prefix"]
