"""The asyncio client: the streaming engine on the caller's own event loop."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from typing_extensions import Self

from polygon.enums import StreamCluster, StreamHost, StreamServicePrefix
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
from polygon.streaming._client import ClientBase
from polygon.streaming._config import build_config, check_reconnect_options, resolve_api_key
from polygon.streaming._dispatch import BatchHandler, Handler, HandlerTable, event_code_of
from polygon.streaming._engine import StreamEngine
from polygon.streaming._protocol import Symbols
from polygon.streaming._subscriptions import DesiredSubscriptions, Request, commit, plan_request
from polygon.streaming.errors import PolygonStreamError, StreamClosedError
from polygon.streaming.sinks import Sink

logger = logging.getLogger("polygon.streaming.async_streaming")


class AsyncStreamClient(ClientBase, AsyncStreamMethods):
    """Streams real-time market data from one cluster, on the caller's event loop.

    Subscribe to streams with the ``subscribe_*`` methods, then run
    :meth:`handle_messages`. Subscriptions are kept as desired state and sent
    again after every reconnect; events are read by a background task into a
    bounded buffer, so slow handlers never stall the connection's keepalive.

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
        ping_interval: float | None = 20,
        ping_timeout: float | None = 19,
        max_message_size: int | None = 16 * 2**20,
        max_memory_queue: int | None = 32,
        read_limit: int = 2**16,
        write_limit: int = 2**16,
        *,
        open_timeout: float | None = 10,
        max_buffered_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        overflow: OverflowPolicy = "drop_oldest",
        reconnect_on_eviction: bool = False,
    ) -> None:
        """Create a client; it connects on the first subscribe or :meth:`handle_messages`.

        :param api_key: the API key; ``None`` reads ``POLYGON_API_KEY``, then
            ``MASSIVE_API_KEY``, from the environment when the client is created.
        :param cluster: a :class:`~polygon.enums.StreamCluster` or its name
            (``"stocks"``, ``"options"``, ``"forex"``, ``"crypto"``, ``"indices"``).
        :param host: a :class:`~polygon.enums.StreamHost`, a hostname (``wss://`` is
            used), or a full ``ws://``/``wss://`` base URL such as a local simulator's.
            The cluster is appended as the path.
        :param ping_interval: seconds between keepalive pings; ``None`` disables them.
        :param ping_timeout: seconds to wait for a pong before the connection is
            considered dead; ``None`` waits forever.
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
        self.cluster = config.cluster
        self.url = config.connection.url
        self.read_limit = read_limit
        self._subscriptions = DesiredSubscriptions()
        self._handlers = HandlerTable()
        self._buffer = EventBuffer(config.max_buffered_events, config.overflow)
        self._engine = StreamEngine(
            config.connection,
            key,
            self._subscriptions,
            self._buffer,
            reconnect_on_eviction=config.reconnect_on_eviction,
        )
        self._sinks: list[Sink] = []
        self._closed = False

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
        return self._buffer.stats

    # -- the stream ----------------------------------------------------------------------

    async def handle_messages(
        self,
        reconnect: bool = False,
        max_reconnection_attempts: int | None = 5,
        reconnection_delay: float = 5,
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
        every reconnect. A lost connection that had been up for a while is
        retried at once; the delays then start at ``reconnection_delay``.

        :param reconnect: run until closed, reconnecting as needed.
        :param max_reconnection_attempts: consecutive failed connection attempts
            after which the loop gives up; the count starts over once a
            connection authenticates. ``None`` retries forever.
        :param reconnection_delay: the first backoff delay, in seconds (floats
            allowed); each further failure doubles it, up to a minute.
        :raises ~polygon.streaming.errors.AuthenticationError: the key was
            rejected; never retried.
        :raises ~polygon.streaming.errors.MaxConnectionsError: another
            connection on the same key evicted this one (unless the client was
            made with ``reconnect_on_eviction=True``).
        :raises ~polygon.streaming.errors.ReconnectFailedError: gave up after
            ``max_reconnection_attempts`` failures.
        :raises ~polygon.streaming.errors.ConnectionLostError: without
            ``reconnect``, the connection was lost.
        :raises ~polygon.streaming.errors.StreamClosedError: the client was
            closed before the call.
        """
        self._check_open()
        if not reconnect:
            await self._handle_one_frame()
            return
        check_reconnect_options(max_reconnection_attempts, reconnection_delay)
        await self._run_supervised(max_reconnection_attempts, reconnection_delay)

    async def _handle_one_frame(self) -> None:
        # Frames already received are handled before any new connection is made,
        # so nothing received before a loss is skipped or reordered.
        if not len(self._buffer) and not self._engine.is_connected:
            await self._engine.connect()
        item = await self._buffer.get()
        if type(item) is list:
            await self._handlers.dispatch(item)
        elif isinstance(item, (ConnectionEnded, StreamFailed)) and item.error is not None:
            raise item.error

    async def _run_supervised(self, max_attempts: int | None, delay: float) -> None:
        supervisor = asyncio.get_running_loop().create_task(
            self._engine.run(max_attempts, delay), name="polygon-stream-supervisor"
        )
        supervisor.add_done_callback(self._on_supervisor_done)
        dispatch = self._handlers.dispatch
        get = self._buffer.get
        # While this loop waits with nothing queued, the reader may run plain
        # handlers itself (they block the loop whichever task calls them).
        self._buffer.direct = self._handlers.dispatch_if_sync
        try:
            while True:
                item: Item = await get()
                if type(item) is list:
                    await dispatch(item)
                elif item is CLOSED:
                    return
                elif isinstance(item, StreamFailed):
                    raise item.error
                # ConnectionEnded: the supervisor is already reconnecting.
        finally:
            self._buffer.direct = None
            if not supervisor.done():
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)

    def _on_supervisor_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            self._buffer.put_marker(StreamFailed(error))

    # -- subscriptions -------------------------------------------------------------------

    async def _subscribe(
        self,
        stream: str,
        symbols: Symbols,
        handler_function: Handler | None,
        force_uppercase_symbols: bool,
    ) -> None:
        self._check_open()
        request = plan_request("subscribe", stream, self.cluster, symbols, force_uppercase_symbols)
        if handler_function is not None:
            self._handlers.set(request.stream.event_code, handler_function)
        await self._apply(request)

    async def _unsubscribe(
        self,
        stream: str,
        symbols: Symbols,
        force_uppercase_symbols: bool,
    ) -> None:
        self._check_open()
        request = plan_request(
            "unsubscribe", stream, self.cluster, symbols, force_uppercase_symbols
        )
        await self._apply(request)

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

    def add_batch_handler(self, handler_function: BatchHandler) -> None:
        """Also call ``handler_function`` once per frame, with the list of its events.

        The fastest way to consume a firehose: one call per frame instead of one
        per event. The list is in arrival order and may mix event codes and
        status events; it is the client's own list, so copy it to keep it past
        the call. While a batch handler is set, only handlers given explicitly
        (with ``handler_function=`` or :meth:`change_handler`) still run per
        event; the default logging handlers stay quiet. Effective from the next
        frame, also while :meth:`handle_messages` runs.

        :param handler_function: a function or coroutine function taking a list
            of events.
        :raises TypeError: ``handler_function`` is not callable.

        Example::

            def on_frame(events: list[dict]) -> None:
                writer.write_many(events)

            client.add_batch_handler(on_frame)
        """
        self._handlers.add_batch(handler_function)

    def remove_batch_handler(self, handler_function: BatchHandler) -> None:
        """Stop calling a batch handler added with :meth:`add_batch_handler`.

        :raises ValueError: it was not added.
        """
        self._handlers.remove_batch(handler_function)

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
        self._check_open()
        sink.attach(self.cluster)
        await sink.start()
        self._engine.add_tap(sink.offer)
        self._sinks.append(sink)

    def change_handler(
        self,
        service_prefix: StreamServicePrefix | str,
        handler_function: Handler,
    ) -> None:
        """Set the handler for one kind of event, effective from the next event.

        Works while :meth:`handle_messages` runs.

        :param service_prefix: a :class:`~polygon.enums.StreamServicePrefix` or
            an event code such as ``"T"``, ``"XQ"``, or ``"status"`` for status events.
        :param handler_function: a function or coroutine function taking one
            event (a dict).
        :raises TypeError: ``handler_function`` is not callable.
        :raises ValueError: ``service_prefix`` is neither an enum member nor a
            non-empty string.

        Example::

            client.change_handler(StreamServicePrefix.STOCK_TRADES, on_trade)
        """
        code = event_code_of(service_prefix)
        self._handlers.set(code, handler_function)

    # -- connection control --------------------------------------------------------------

    async def login(self, api_key: str | None = None) -> None:
        """Connect and authenticate now, instead of on the first subscribe.

        Not needed in normal use: subscribing or handling messages logs in.

        :param api_key: a key to use from now on instead of the one given at
            creation; if connected, the client reconnects with it.
        :raises ~polygon.streaming.errors.AuthenticationError: the key was rejected.
        :raises ~polygon.streaming.errors.StreamConnectionError: the server
            could not be reached.
        """
        self._check_open()
        if api_key is not None:
            self._engine.set_api_key(resolve_api_key(api_key))
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

    async def close_stream(self) -> None:
        """Close the connection and stop :meth:`handle_messages`. Idempotent.

        Callable from any coroutine, handlers included. Frames still waiting
        in the buffer are discarded. The client cannot be used afterwards.
        """
        self._closed = True
        self._handlers.stopped = True
        self._buffer.close()
        await self._engine.close()
        # After the engine: every event it read has been offered to the sinks.
        for sink in self._sinks:
            await sink.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StreamClosedError("the client was closed with close_stream(); create a new one")


__all__ = ["AsyncStreamClient"]
