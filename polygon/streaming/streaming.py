"""The blocking client: the streaming engine on a background thread's event loop.

Three kinds of thread meet here:

- the **loop thread** (``polygon-stream-loop``) runs the engine: the socket,
  keepalive, reconnects. No user code ever runs on it.
- the **dispatcher thread** (``polygon-stream-dispatch``), started by
  :meth:`StreamClient.start_stream_thread`, runs the callbacks and handlers.
- **your threads** call subscribe/unsubscribe (marshalled onto the loop, always
  with a timeout), iterate with :meth:`StreamClient.iter_messages`, and close.

Frames cross from the loop thread in whole batches through a bounded buffer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Literal

from typing_extensions import Self

from polygon.enums import StreamCluster, StreamHost
from polygon.streaming import _interrupt
from polygon.streaming._buffer import (
    CLOSED,
    DEFAULT_MAX_BUFFERED_EVENTS,
    BufferStats,
    ConnectionEnded,
    Event,
    Frame,
    OverflowPolicy,
    RawFrame,
    StreamFailed,
    ThreadItem,
    UncountedFrame,
)
from polygon.streaming._client import DELAYED_HOST, HOST, ClientBase, ensure_prefix
from polygon.streaming._config import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_MAX_MEMORY_QUEUE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_OVERFLOW,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_THREAD_MAX_RECONNECTION_ATTEMPTS,
    DEFAULT_THREAD_RECONNECTION_DELAY,
    DEFAULT_WRITE_LIMIT,
    build_config,
    keepalive_option,
    reconnect_options,
    resolve_api_key,
    seconds_option,
)
from polygon.streaming._connection import Keepalive
from polygon.streaming._dispatch import SyncHandler, check_handler, is_async_callable
from polygon.streaming._drops import DropReporter
from polygon.streaming._protocol import Symbols
from polygon.streaming._subscriptions import Request, commit
from polygon.streaming._sync_methods import SyncStreamMethods
from polygon.streaming._thread_buffer import ThreadEventBuffer
from polygon.streaming._thread_loop import LoopThread
from polygon.streaming.errors import (
    ArgumentTypeError,
    ConnectionLostError,
    PolygonStreamError,
    SlowConsumerWarning,
    StreamBusyError,
    StreamClosedError,
    StreamConnectionError,
)
from polygon.streaming.sinks import Sink

logger = logging.getLogger("polygon.streaming.streaming")

OnMessage = Callable[["StreamClient", str], object]
OnError = Callable[["StreamClient", BaseException], object]
OnClose = Callable[["StreamClient", "int | None", str], object]

CLOSE_CODE_NORMAL = 1000


def _without_status(frames: Iterator[list[Event]]) -> Iterator[list[Event]]:
    """The frames without their status events; frames left empty are skipped."""
    for events in frames:
        events = [e for e in events if e.get("ev") != "status"]
        if events:
            yield events


@dataclasses.dataclass(frozen=True)
class _Remainder:
    """Events of a frame taken from the buffer but not yet yielded (after a break)."""

    __slots__ = ("events",)
    events: list[Event]


# A frame's events and raw text, on the thread that decoded it (a Frame is one too).
DecodedFrame = tuple[list[Event], str]

# What an iterator reading the buffer directly has taken and not handled yet.
Pending = deque[ThreadItem | _Remainder]


class StreamClient(ClientBase, SyncStreamMethods):
    """Streams real-time market data from one cluster, without ``async``.

    The connection lives on a background thread; callbacks and handlers run on a
    dispatcher thread, so a slow callback never stalls the connection's
    keepalive. Use callbacks with :meth:`start_stream_thread` (the stream then
    keeps the process alive until :meth:`close_stream` or Ctrl-C), or iterate::

        with StreamClient(None, "stocks") as client:
            client.subscribe_stock_trades(["AAPL"])
            for event in client.iter_messages():
                print(event)
    """

    def __init__(
        self,
        api_key: str | None,
        cluster: StreamCluster | str,
        host: StreamHost | str = StreamHost.REAL_TIME,
        on_message: OnMessage | None = None,
        on_close: OnClose | None = None,
        on_error: OnError | None = None,
        enable_connection_logs: bool = False,
        *,
        reconnect: bool = True,
        max_reconnection_attempts: int | Literal[False] | None = (
            DEFAULT_THREAD_MAX_RECONNECTION_ATTEMPTS
        ),
        reconnection_delay: float = DEFAULT_THREAD_RECONNECTION_DELAY,
        max_reconnection_delay: float | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_memory_queue: int | None = DEFAULT_MAX_MEMORY_QUEUE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        open_timeout: float | None = DEFAULT_OPEN_TIMEOUT,
        max_buffered_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        overflow: OverflowPolicy = DEFAULT_OVERFLOW,
        reconnect_on_eviction: bool = False,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        """Create a client; :meth:`start_stream_thread` or :meth:`iter_messages` connects it.

        :param api_key: the API key; ``None`` reads ``POLYGON_API_KEY``, then
            ``MASSIVE_API_KEY``, from the environment.
        :param cluster: a :class:`~polygon.enums.StreamCluster` or its name.
        :param host: a :class:`~polygon.enums.StreamHost`, a hostname, or a
            ``ws://``/``wss://`` base URL; the cluster is appended as the path.
        :param on_message: ``on_message(client, message)``, called with every raw
            text frame as received (status frames included). While it is set,
            events with no handler of their own skip the default (printing)
            handler: this callback has seen them. The first argument is the
            client, where the older library passed its socket: ``ws.close()``
            works on both.
        :param on_close: ``on_close(client, close_code, close_message)``, called once
            when the stream stops for good: closed by :meth:`close_stream` or
            Ctrl-C (code 1000) or stopped by an error (the error's close code, if
            any).
        :param on_error: ``on_error(client, error)``, called with exceptions raised
            by callbacks and handlers, with each lost connection (before the
            reconnect), and with the error that stops the stream. Without it, these
            are logged. It also gets a
            :class:`~polygon.streaming.errors.SlowConsumerWarning` when events
            were dropped (at most one per 5 s, beside a WARNING log line).
        :param enable_connection_logs: log connects, logins and reconnects at INFO on
            the ``polygon.streaming`` loggers (otherwise at DEBUG). Logging itself
            is configured by the application, never by the library.
        :param reconnect: reconnect after a lost connection (default).
        :param max_reconnection_attempts: consecutive failed connection attempts
            after which the stream stops with
            :class:`~polygon.streaming.errors.ReconnectFailedError` (default 10;
            ``None`` or ``False`` retries forever).
        :param reconnection_delay: the first backoff delay in seconds (default 2),
            doubled per failure, with jitter. A connection that delivered data
            is followed by an immediate attempt and the backoff starts over (see
            :ref:`reconnect-policy`).
        :param max_reconnection_delay: the longest backoff delay, in seconds;
            ``None``: the default, 60. :meth:`start_stream_thread` may set it too.
        :param max_message_size: the largest frame accepted, in bytes.
        :param max_memory_queue: frames that may wait while the client logs in
            before it stops reading the socket until they are read. Once logged
            in, frames go from the socket straight to the buffer that
            ``max_buffered_events`` bounds.
        :param write_limit: the high-water mark of the write buffer, in bytes.
        :param open_timeout: seconds allowed to connect and authenticate.
        :param max_buffered_events: events that may wait for the consumer before
            the ``overflow`` policy applies.
        :param overflow: ``"drop_oldest"`` (default; counted in :attr:`stats`) or
            ``"backpressure"`` (stop reading until the consumer catches up).
        :param reconnect_on_eviction: reconnect after a ``max_connections``
            eviction (off by default: two clients on one key would evict each other
            forever).
        :param call_timeout: the longest a subscribe/unsubscribe call or
            :meth:`close_stream` waits for the loop thread.
        :raises ~polygon.streaming.errors.ConfigurationError: a bad argument, or no
            API key anywhere.
        :raises TypeError: a callback is not callable.
        """
        key = resolve_api_key(api_key)
        config = build_config(
            cluster,
            host,
            ping_interval=DEFAULT_PING_INTERVAL,
            ping_timeout=DEFAULT_PING_TIMEOUT,
            max_message_size=max_message_size,
            max_memory_queue=max_memory_queue,
            write_limit=write_limit,
            open_timeout=open_timeout,
            max_buffered_events=max_buffered_events,
            overflow=overflow,
            reconnect_on_eviction=reconnect_on_eviction,
        )
        retry = reconnect_options(
            max_reconnection_attempts, reconnection_delay, max_reconnection_delay
        )
        # Checked here: a bad value would otherwise surface later, in another thread.
        seconds_option("call_timeout", call_timeout, allow_none=False)
        for name, callback in (
            ("on_message", on_message),
            ("on_close", on_close),
            ("on_error", on_error),
        ):
            if callback is not None and not callable(callback):
                raise ArgumentTypeError(f"{name} must be callable, got {callback!r}")
        self.on_close = on_close
        self.on_error = on_error
        self._reconnect = reconnect
        self._retry = retry
        self._call_timeout = call_timeout
        self._buffer = ThreadEventBuffer(
            config.max_buffered_events,
            config.overflow,
            defer_wakeups=True,
            decode_in_consumer=True,
        )
        self._wire(
            config,
            key,
            self._buffer,
            lifecycle_level=logging.INFO if enable_connection_logs else logging.DEBUG,
        )
        self._handlers.error_hook = self._handler_error
        self.on_message = on_message
        self._loop_thread = LoopThread("polygon-stream-loop")
        self._dispatcher: threading.Thread | None = None
        self._iterating = False
        # Drops of iterator buffers that are gone (stats keeps counting them).
        self._retired_tap_drops = 0
        # Set by close_stream() only (a failure stops the stream too, but its
        # error is still raised by the iterators).
        self._close_called = False
        # Dropped events are reported (on_error, a WARNING), not only counted.
        self._drops = DropReporter(self._report_drops)
        # One slot per running iter_messages(): the frame it is yielding from (or
        # None between frames), emptied by close_stream().
        self._yielding: list[list[list[Event] | None]] = []
        self._pending: Pending = deque()
        self._taps: list[ThreadEventBuffer] = []
        self._state_lock = threading.RLock()
        self._closing = False
        self._close_reported = False
        # The same error can end a connection and then the stream (an eviction):
        # it is reported once.
        self._last_reported: BaseException | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close_stream()

    # -- state ---------------------------------------------------------------------------

    @property
    def on_message(self) -> Callable[[StreamClient, str], object] | None:
        # Spelled out, not OnMessage: Sphinx cannot render an alias in a property's type.
        """The raw-frame callback; settable at any time (frames are kept raw only for it)."""
        return self._on_message

    @on_message.setter
    def on_message(self, callback: Callable[[StreamClient, str], object] | None) -> None:
        self._on_message = callback
        self._buffer.keep_raw = callback is not None

    def _is_closed(self) -> bool:
        return self._closing

    def _buffer_stats(self) -> BufferStats:
        # Every event dropped anywhere counts: the iterators' own buffers too
        # (those fed beside start_stream_thread), also once they are gone.
        stats = self._buffer.stats
        with self._state_lock:
            taps = list(self._taps)
            stats.dropped += self._retired_tap_drops
        for tap in taps:
            stats.dropped += tap.stats.dropped
        return stats

    def _check_drops(self) -> None:
        """Report events dropped anywhere since the last report (rate-limited)."""
        buffer = self._buffer
        total = buffer.dropped + self._retired_tap_drops
        for tap in tuple(self._taps):
            total += tap.dropped
        self._drops.check(total, buffer.backlog, buffer.max_events)

    def _report_drops(self, warning: SlowConsumerWarning) -> None:
        on_error = self.on_error
        if on_error is not None:
            on_error(self, warning)

    # -- starting ------------------------------------------------------------------------

    def start_stream_thread(
        self,
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        ping_payload: str = "",
        skip_utf8_validation: bool = True,
        max_reconnection_delay: float | None = None,
    ) -> None:
        """Start the stream on its background threads, and return at once.

        Connects, logs in and sends the subscriptions recorded so far; from then
        on callbacks and handlers run on the dispatcher thread. Calling it again
        does nothing.

        From here on the stream keeps the process alive, as the older library's
        did: a script may let its main code return and the callbacks go on,
        until :meth:`close_stream` is called (from a callback, a signal handler,
        another thread) or the stream stops for good. Ctrl-C closes it cleanly
        (``on_close`` is called; see :ref:`ctrl-c`).

        :param ping_interval: seconds between keepalive pings (default 20);
            ``0`` or ``None`` sends none.
        :param ping_timeout: seconds to wait for a pong before reconnecting
            (default 19); ``0`` or ``None`` waits forever.
        :param ping_payload: accepted for compatibility with the older callback
            client; websockets sends its own keepalive payloads.
        :param skip_utf8_validation: accepted for compatibility; websockets
            always validates text frames.
        :param max_reconnection_delay: the longest backoff delay, in seconds;
            ``None`` keeps the client's (default 60).
        :raises RuntimeError: :meth:`iter_messages` is consuming the stream.
        :raises ~polygon.streaming.errors.ConfigurationError: ``ping_interval`` or
            ``ping_timeout`` is not a number of seconds >= 0 or ``None``.
        """
        # Checked first, even when already started: a bad value must not reach the
        # loop thread, where it would only fail the connection.
        ping_interval = keepalive_option("ping_interval", ping_interval)
        ping_timeout = keepalive_option("ping_timeout", ping_timeout)
        if max_reconnection_delay is not None:
            retry = self._retry
            self._retry = reconnect_options(retry.max_attempts, retry.delay, max_reconnection_delay)
        with self._state_lock:
            self._check_open()
            if self._iterating:
                raise StreamBusyError(
                    "iter_messages() is consuming this stream; callbacks run on its thread"
                )
            self._start_loop(ping_interval, ping_timeout)
            if self._dispatcher is None:
                # Not a daemon: it keeps the interpreter alive until the stream
                # is closed, as the older library's stream thread did.
                self._dispatcher = threading.Thread(
                    target=self._dispatch_forever, name="polygon-stream-dispatch", daemon=False
                )
                self._dispatcher.start()
                _interrupt.keep_alive(self)

    def _start_loop(self, ping_interval: float | None, ping_timeout: float | None) -> None:
        if self._loop_thread.running:
            return
        self._loop_thread.start()
        # Sinks start first (the loop runs callbacks in order): none misses an event.
        for sink in self._sinks:
            self._loop_thread.submit(self._start_sink(sink))
        self._loop_thread.submit(self._supervise(Keepalive(ping_interval, ping_timeout)))

    async def _start_sink(self, sink: Sink) -> None:
        await sink.start()
        self._engine.add_tap(sink.offer)

    async def _supervise(self, keepalive: Keepalive) -> None:
        retry = self._retry
        try:
            await self._engine.run(
                retry.max_attempts,
                retry.delay,
                reconnect=self._reconnect,
                keepalive=keepalive,
                max_delay=retry.max_delay,
            )
        except Exception as exc:
            self._buffer.put_marker(StreamFailed(exc))

    # -- consuming -----------------------------------------------------------------------

    def _dispatch_forever(self) -> None:
        buffer = self._buffer
        while True:
            self._check_drops()
            for item in buffer.take_all():
                if self._closing and item is not CLOSED:
                    continue  # closed while these were being taken: drop them
                kind = type(item)
                if kind is str or kind is Frame or kind is tuple:  # tuple: a RawFrame
                    frame = self._decoded(item)  # type: ignore[arg-type]
                    if frame is None:
                        continue
                    # An iterator or on_message already shows every event: only
                    # handlers set explicitly run, not the printing defaults.
                    self._deliver(frame, bool(self._taps) or self._on_message is not None)
                    if self._taps:
                        for tap in tuple(self._taps):
                            # Waits for room with backpressure: the bound holds.
                            tap.put_from_thread(*frame)
                elif not self._on_marker(item):
                    return

    def _decoded(self, item: Frame | RawFrame | UncountedFrame) -> DecodedFrame | None:
        """A frame's events and text, decoding it here if the loop thread did not.

        A plain pair, not a :class:`Frame`: it never leaves this thread, and a
        named tuple costs some 0.4 µs more to make, per frame.
        """
        if type(item) is Frame:
            return item
        if type(item) is str:
            events = self._engine.decode_events(item)
            # Settled before any handler runs: a handler may read the stats.
            self._buffer.settle(item, 0 if events is None else len(events))
            return None if events is None else (events, item)
        text = item[1]
        events = self._engine.decode_events(text)
        return None if events is None else (events, text)

    def _deliver(self, frame: DecodedFrame, explicit_only: bool) -> None:
        """Run the callbacks of one frame: ``on_message``, then each event's handler."""
        events, raw = frame
        on_message = self._on_message
        if on_message is not None:
            try:
                on_message(self, raw)
            except Exception as exc:
                self._report(exc)
        self._handlers.dispatch_sync(events, explicit_only)

    def _on_marker(self, item: object) -> bool:
        """Handle a marker; False when the consumer should stop."""
        if item is CLOSED:
            return False
        if isinstance(item, StreamFailed):
            self._report(item.error)
            for tap in tuple(self._taps):
                tap.put_marker(item)
            self._stop_after_failure(item.error)
            return False
        if isinstance(item, ConnectionEnded) and item.error is not None:
            self._report(item.error)
        return True

    def iter_messages(self, include_status: bool = True) -> Iterator[Event]:
        """Yield decoded events one by one, starting the stream if needed.

        Blocks for the next event. Ends when :meth:`close_stream` is called from
        any thread; can be left with ``break`` (without a dispatcher thread, events
        not yet yielded are kept for the next iteration). While iterating, callbacks
        and handlers still run: on the dispatcher thread if
        :meth:`start_stream_thread` started it, otherwise on the iterating thread
        just before each frame's events are yielded.

        Events with no handler of their own skip the default (printing) handler
        while an iterator runs: the iterator shows them.

        :param include_status: also yield status events (``ev == "status"``).
        :raises ~polygon.streaming.errors.PolygonStreamError: the error that
            stopped the stream (authentication failed, eviction, gave up
            reconnecting).
        :raises RuntimeError: another iterator is already consuming the stream
            directly.
        """
        with self._consuming() as (frames, pending):
            if not include_status:
                frames = _without_status(frames)
            # Registered once per iteration, not per frame: at one event per
            # frame the frame's own bookkeeping is a fair share of its cost.
            slot: list[list[Event] | None] = [None]
            self._yielding.append(slot)
            try:
                for events in frames:
                    if self._close_called:
                        return  # close_stream() in the loop body: nothing more
                    # close_stream() empties the frame being yielded, which ends
                    # the yield from below at once (no check of ours per event).
                    slot[0] = events
                    rest = iter(events)
                    try:
                        # yield from: the iterator is resumed in C, not once per
                        # event through a loop of ours.
                        yield from rest
                    except GeneratorExit:
                        remainder = list(rest)  # what the caller did not get
                        if remainder:
                            pending.appendleft(_Remainder(remainder))
                        raise
                    slot[0] = None
            finally:
                with contextlib.suppress(ValueError):
                    self._yielding.remove(slot)

    def iter_batches(self, include_status: bool = True) -> Iterator[list[Event]]:
        """Yield the events of each frame as one list, starting the stream if needed.

        The same as :meth:`iter_messages`, a frame at a time: the fastest way to
        consume a firehose, since nothing is done per event on the way.

        :param include_status: keep status events in the lists (frames left
            empty without them are skipped).
        :raises ~polygon.streaming.errors.PolygonStreamError: the error that
            stopped the stream.
        :raises RuntimeError: another iterator is already consuming the stream
            directly.
        """
        with self._consuming() as (frames, _):
            yield from frames if include_status else _without_status(frames)

    @contextlib.contextmanager
    def _consuming(self) -> Iterator[tuple[Iterator[list[Event]], Pending]]:
        """Register an iterator as a consumer: directly, or as a tap of the dispatcher."""
        with self._state_lock:
            self._check_open()
            self._start_loop(DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT)
            tap = None
            if self._dispatcher is not None:
                tap = ThreadEventBuffer(self._buffer.max_events, self._buffer.overflow)
                self._taps.append(tap)
            elif self._iterating:
                raise StreamBusyError("another iterator is already consuming this stream")
            else:
                self._iterating = True
        pending: Pending = self._pending if tap is None else deque()
        try:
            yield self._frames(tap, pending), pending
        finally:
            with self._state_lock:
                if tap is not None:
                    self._taps.remove(tap)
                    self._retired_tap_drops += tap.stats.dropped
                    tap.close()  # a dispatcher waiting for its room goes on
                else:
                    self._iterating = False

    def _frames(self, tap: ThreadEventBuffer | None, pending: Pending) -> Iterator[list[Event]]:
        """Each frame's events in order, running callbacks first when consuming directly."""
        direct = tap is None
        source = self._buffer if tap is None else tap
        handlers = self._handlers
        while not self._close_called:  # frames taken before close_stream() are not yielded
            if not pending:
                self._check_drops()
                pending.extend(source.take_all())
                continue
            item = pending.popleft()
            kind = type(item)
            if kind is str or kind is Frame or kind is tuple:  # tuple: a RawFrame
                frame = self._decoded(item)  # type: ignore[arg-type]
                if frame is None:
                    continue
                # With no callback of the user's to run, _deliver would do nothing.
                if direct and (
                    self._on_message is not None or handlers.batch_handlers or handlers.has_explicit
                ):
                    self._deliver(frame, explicit_only=True)
                yield frame[0]
            elif type(item) is _Remainder:
                yield item.events
            elif isinstance(item, StreamFailed):
                if direct:
                    self._on_marker(item)
                raise item.error
            elif item is CLOSED or (direct and not self._on_marker(item)):
                return

    # -- subscriptions -------------------------------------------------------------------

    def _subscribe(
        self,
        stream: str,
        symbols: Symbols,
        handler_function: SyncHandler | None,
        force_uppercase_symbols: bool,
    ) -> None:
        request = self._plan(
            "subscribe", stream, symbols, force_uppercase_symbols, handler_function
        )
        self._apply(request)

    def _unsubscribe(
        self,
        stream: str,
        symbols: Symbols,
        force_uppercase_symbols: bool,
    ) -> None:
        self._apply(self._plan("unsubscribe", stream, symbols, force_uppercase_symbols))

    def _apply(self, request: Request) -> None:
        with self._state_lock:
            if not self._loop_thread.running:
                # Recorded now; sent whole when the stream starts.
                commit(self._subscriptions, request)
                return
        coro = self._apply_on_loop(request)
        if self._loop_thread.in_loop_thread():
            self._loop_thread.submit(coro)
            return
        try:
            # Not cancelled on timeout: the change must still be recorded (and
            # sent when the loop gets to it), as the error below promises.
            self._loop_thread.call(coro, self._call_timeout, cancel=False)
        except TimeoutError as exc:
            raise StreamConnectionError(
                f"the {request.action} request was not on the wire after {self._call_timeout} s; "
                "it is recorded and will be sent on the next connection"
            ) from exc

    async def _apply_on_loop(self, request: Request) -> None:
        # Recording and sending both happen on the loop thread, so a reconnect's
        # replay either includes this change or runs before it is sent.
        change = commit(self._subscriptions, request)
        if not change.is_empty:
            await self._engine.send_change(change.action, change.topics, change.raw)

    def _check_handler(self, handler: object) -> None:
        check_sync_handler(handler)

    def add_sink(self, sink: Sink) -> None:
        """Publish every event this client receives through ``sink``, to a broker.

        The sink runs on the client's event-loop thread and gets each frame as
        it is read, before any callback; it never holds up the connection (see
        :mod:`polygon.streaming.sinks`). Added before the stream starts, it
        starts with it. :meth:`close_stream` flushes and closes it.

        :param sink: a :class:`~polygon.streaming.sinks.Sink`, e.g.
            :class:`~polygon.streaming.sinks.nats.NatsJetStreamSink`.
        """
        self._attach_sink(sink)
        with self._state_lock:
            self._sinks.append(sink)
            running = self._loop_thread.running
        if running:
            self._loop_thread.call(self._start_sink(sink), self._call_timeout)

    # -- connection control --------------------------------------------------------------

    def login(self, key: str | None = None, *, api_key: str | None = None) -> None:
        """Connect and authenticate now, instead of when the stream starts.

        Not needed in normal use. Starts the loop thread (not the dispatcher) if
        it is not running, and returns once logged in.

        :param key: a key to use from now on instead of the one given at
            creation (the older library's name); if connected, the client
            reconnects with it.
        :param api_key: the same as ``key``.
        :raises ~polygon.streaming.errors.AuthenticationError: the key was rejected.
        :raises ~polygon.streaming.errors.StreamConnectionError: the server
            could not be reached, or the loop thread did not answer in time.
        """
        resolved = self._login_key(key, api_key)
        with self._state_lock:
            self._check_open()
            if resolved is not None:
                # Set before the loop starts: its first connection uses it.
                self._engine.set_api_key(resolved)
            self._start_loop(DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT)
        self._call_on_loop(self._login_on_loop(resolved is not None), "login")

    async def _login_on_loop(self, new_key: bool) -> None:
        if new_key:
            await self._engine.disconnect()  # a connection made with the older key
        await self._engine.connect()

    def reconnect(self) -> tuple[bool, str]:
        """Drop the current connection (if any) and connect again, as the async client does.

        The subscriptions are sent again and the handlers stay as they are.

        :returns: ``(True, message)`` when the new connection is authenticated,
            ``(False, message)`` saying why it is not.
        """
        if self._closing:
            return False, "the client was closed with close_stream()"
        try:
            with self._state_lock:
                self._start_loop(DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT)
            self._call_on_loop(self._reconnect_on_loop(), "reconnect")
        except PolygonStreamError as exc:
            return False, str(exc)
        return True, f"reconnected to {self.url}"

    async def _reconnect_on_loop(self) -> None:
        await self._engine.disconnect()
        await self._engine.connect()

    def _call_on_loop(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``coro`` on the loop thread, waiting ``call_timeout`` for it to connect."""
        timeout = self._call_timeout + (self._engine.options.open_timeout or 0)
        try:
            self._loop_thread.call(coro, timeout)
        except TimeoutError as exc:
            raise StreamConnectionError(f"{what} did not finish within {timeout:g} s") from exc

    # -- closing -------------------------------------------------------------------------

    def close_stream(self, *args: object, **kwargs: object) -> None:
        """Close the socket, stop the loop and join every thread the client started.

        Idempotent, and callable from any thread, callbacks included (the
        dispatcher thread then ends as soon as the callback returns). Calls
        ``on_close(client, 1000, ...)`` once. The client cannot be used afterwards.

        Any arguments are accepted and ignored, so it can be given to
        ``signal.signal`` as it is, as older scripts do::

            signal.signal(signal.SIGTERM, client.close_stream)
        """
        with self._state_lock:
            already = self._closing
            self._closing = True
            self._close_called = True
        self._handlers.stopped = True
        self._buffer.close()
        for tap in list(self._taps):
            tap.close()
        for slot in list(self._yielding):
            events = slot[0]
            if events is not None:
                events.clear()  # nothing more is yielded from a frame being yielded
        if not already:
            self._stop_engine()
        _interrupt.forget(self)
        dispatcher = self._dispatcher
        if dispatcher is not None and dispatcher is not threading.current_thread():
            dispatcher.join(self._call_timeout)
        self._report_close(CLOSE_CODE_NORMAL, "closed by the client")

    def close(self) -> None:
        """The same as :meth:`close_stream`.

        Callbacks get the client as their first argument, where the older
        library passed its socket, so ``ws.close()`` in an older callback closes
        the stream as it did.
        """
        self.close_stream()

    def _stop_engine(self) -> None:
        thread = self._loop_thread
        if thread.running:
            if thread.in_loop_thread():
                thread.submit(self._engine.close())
            else:
                try:
                    thread.call(self._engine.close(), self._call_timeout)
                except (TimeoutError, RuntimeError):
                    logger.warning("the connection did not close in time; stopping anyway")
                # After the engine: every event it read has been offered to the sinks.
                for sink in self._sinks:
                    try:
                        thread.call(sink.close(), self._call_timeout)
                    except (TimeoutError, RuntimeError):
                        logger.warning("a sink did not close in time; stopping anyway")
        thread.stop(self._call_timeout)

    def _stop_after_failure(self, error: BaseException) -> None:
        with self._state_lock:
            self._closing = True
        self._handlers.stopped = True
        self._stop_engine()
        _interrupt.forget(self)
        code = error.code if isinstance(error, ConnectionLostError) else None
        self._report_close(code, str(error))

    def _report_close(self, code: int | None, message: str) -> None:
        with self._state_lock:
            if self._close_reported:
                return
            self._close_reported = True
        if self.on_close is not None:
            try:
                self.on_close(self, code, message)
            except Exception:
                logger.exception("on_close raised")

    def _report(self, error: BaseException) -> None:
        if error is self._last_reported:
            return
        self._last_reported = error
        on_error = self.on_error
        if on_error is None:
            logger.error("stream error: %s", error, exc_info=error)
            return
        try:
            on_error(self, error)
        except Exception:
            logger.exception("on_error raised")

    def _handler_error(self, exc: Exception, event: Event) -> None:
        self._report(exc)

    def _check_open(self) -> None:
        if self._closing:
            raise StreamClosedError("the client was closed; create a new one")


def check_sync_handler(handler: object) -> None:
    """StreamClient handlers are plain functions: they run on a thread with no loop."""
    check_handler(handler)
    if is_async_callable(handler):
        raise ArgumentTypeError(
            f"handler_function {handler!r} is a coroutine function; StreamClient calls plain "
            "functions (use AsyncStreamClient for async handlers)"
        )


__all__ = ["DELAYED_HOST", "HOST", "StreamClient", "ensure_prefix"]
