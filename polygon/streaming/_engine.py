"""The async core shared by both clients.

It connects, authenticates, keeps the server's subscriptions equal to the
desired set, decodes frames into a buffer, and reconnects. With
:mod:`polygon.streaming._connection` (which reads the frames) it is the only
code that talks to websockets, and it never runs user code itself: handlers are
run by whoever consumes the buffer, so a slow handler cannot stall the reader
or the keepalive pings. (The asyncio client's consumer may take a frame straight
from the reader while it waits with nothing queued; see ``EventBuffer.direct``.)

Everything here runs on one event loop: the caller's for ``AsyncStreamClient``,
a background thread's for ``StreamClient``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from polygon.streaming import _protocol as proto
from polygon.streaming._backoff import MAX_DELAY, STABLE_CONNECTION_SECONDS, Backoff
from polygon.streaming._buffer import Batch, ConnectionEnded, OverflowPolicy
from polygon.streaming._connection import (
    ConnectionOptions as ConnectionOptions,  # re-exported: the clients' configuration
)
from polygon.streaming._connection import (
    FastConnection,
    Keepalive,
    Message,
    MessageHandler,
    connect,
)
from polygon.streaming._redact import RedactingLogger
from polygon.streaming._subscriptions import DesiredSubscriptions
from polygon.streaming.errors import (
    AuthenticationError,
    ConnectionLostError,
    MaxConnectionsError,
    ReconnectFailedError,
    ServerStatusError,
    StreamClosedError,
    StreamConnectionError,
)

logger = logging.getLogger("polygon.streaming.engine")


class FrameSink(Protocol):
    """Where the reader puts decoded frames (see :mod:`polygon.streaming._buffer`)."""

    overflow: OverflowPolicy
    # True when the consumer decodes plain data frames itself (put_raw_frames): a
    # consumer on another thread, so the reader's thread does less and events
    # are created where they are used.
    decode_in_consumer: bool

    def put(self, batch: Batch, frame: str) -> None: ...
    def put_raw_frames(self, frames: list[str]) -> None: ...
    def put_marker(self, marker: ConnectionEnded) -> None: ...
    def discard_connection_markers(self) -> None: ...
    def has_room(self) -> bool: ...
    async def wait_for_room(self) -> None: ...


@dataclasses.dataclass
class EngineStats:
    """Counters kept by the engine (frames, not events)."""

    frames: int = 0
    decode_errors: int = 0
    bad_frames: int = 0
    server_errors: int = 0
    connections: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    # Frames that may hold a status (proto.may_hold_status): counted apart so
    # that the rest, the data frames, need no counter of their own per frame.
    status_frames: int = 0

    @property
    def data_frames(self) -> int:
        """Frames that may hold data (not only statuses): a connection that
        received one delivered data, which makes it healthy for the reconnect policy."""
        return self.frames - self.status_frames


class StreamEngine:
    """One connection at a time to one cluster, and the reconnect loop around it."""

    def __init__(
        self,
        options: ConnectionOptions,
        api_key: str,
        subscriptions: DesiredSubscriptions,
        sink: FrameSink,
        *,
        reconnect_on_eviction: bool = False,
        lifecycle_level: int = logging.DEBUG,
    ) -> None:
        """Every option is given here; nothing is set on the engine afterwards.

        ``lifecycle_level`` is the level of the connect/login/reconnect messages
        (the blocking client's ``enable_connection_logs`` raises it to INFO).
        """
        self.options = options
        # The options of the connections opened now: run() may give its own keepalive.
        self._session_options = options
        self.subscriptions = subscriptions
        self.sink = sink
        self.reconnect_on_eviction = reconnect_on_eviction
        self.lifecycle_level = lifecycle_level
        self.stats = EngineStats()
        self.closed = False
        self.supervised = False
        self._ws: FastConnection | None = None
        self._live = False
        self._reader: asyncio.Task[None] | None = None
        # Set when our frame handler failed: the connection ends with this error.
        self._reader_failure: Exception | None = None
        # Backpressure: the task that resumes reading once the buffer has room.
        self._resuming: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._ended: asyncio.Future[BaseException | None] | None = None
        self._session_end: ServerStatusError | None = None
        self._connected_at = 0.0
        self._data_frames_at_start = 0
        self._connect_lock = asyncio.Lock()
        # The opening in progress (connect()), which close() cancels.
        self._opening: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._closed_event = asyncio.Event()
        # Called with every decoded frame on this loop, beside the buffer (sinks
        # that publish to a broker). They must not block; see _offer_to_taps.
        self._taps: list[Callable[[Batch, str | None], None]] = []
        self.set_api_key(api_key)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "connected" if self._live else "disconnected"
        return f"<StreamEngine {self.options.url} {state}>"

    @property
    def is_connected(self) -> bool:
        """Authenticated, with the desired subscriptions sent."""
        return self._live

    def add_tap(self, tap: Callable[[Batch, str | None], None]) -> None:
        """Offer every decoded frame to ``tap`` too, on this loop (a sink's ``offer``)."""
        self._taps.append(tap)

    def set_api_key(self, api_key: str) -> None:
        """Use ``api_key`` from the next login; websockets' log lines are redacted for it."""
        self._api_key = api_key
        self._ws_logger = RedactingLogger(
            logging.getLogger("polygon.streaming.websockets"), api_key
        )

    # -- connecting ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Open, authenticate and replay the desired subscriptions (no-op if connected).

        :meth:`close` aborts a connection being opened here at once: the call
        raises :class:`StreamClosedError` and leaves no socket open.
        """
        if self.closed:
            raise StreamClosedError("the stream was closed with close_stream()")
        async with self._connect_lock:
            if self._live or self.closed:
                if self.closed:
                    raise StreamClosedError("the stream was closed with close_stream()")
                return
            # In a task of its own, so that close() can cancel the opening without
            # cancelling the caller's task (which gets StreamClosedError instead).
            opening = asyncio.get_running_loop().create_task(
                self._open_and_login(), name="polygon-stream-connect"
            )
            self._opening = opening
            try:
                await asyncio.wait({opening})
            except asyncio.CancelledError:
                opening.cancel()
                await asyncio.gather(opening, return_exceptions=True)
                raise
            finally:
                self._opening = None
            if opening.cancelled() or self.closed:
                if not opening.cancelled() and opening.exception() is None:
                    await self.disconnect()
                raise StreamClosedError("the stream was closed while connecting")
            opening.result()

    async def _open_and_login(self) -> None:
        ws = await self._open()
        if self.closed:  # closed as the opening finished (see close())
            ws.abort()
            raise StreamClosedError("the stream was closed while connecting")
        try:
            await self._login(ws)
            if self.closed:
                raise StreamClosedError("the stream was closed while connecting")
        except asyncio.CancelledError:
            # Cancelled by close_stream(): a polite close could wait close_timeout
            # (5 s) for a server that is not answering the login either.
            ws.abort()
            raise
        except BaseException:
            await self._discard(ws)
            raise
        self._start_reading(ws)
        await self._replay(ws)

    async def _open(self) -> FastConnection:
        opts = self._session_options
        try:
            return await connect(opts, self._ws_logger)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise StreamConnectionError(
                f"{opts.url} refused the connection: HTTP {status}"
            ) from exc
        except (OSError, asyncio.TimeoutError, WebSocketException, ValueError) as exc:
            # Every error opening a connection can end in is a failed attempt: a
            # refused or reset socket, a redirect to a non-WebSocket URL (captive
            # portals), a malformed response. ValueError: a URL or port that
            # cannot be parsed (urllib, websockets' URI parser).
            raise StreamConnectionError(f"could not connect to {opts.url}: {exc!r}") from exc

    async def _login(self, ws: FastConnection) -> None:
        """Send the key and read frames until the server accepts or rejects it.

        A connection lost at any point of it (the server closing or resetting
        right after the upgrade) is a failed attempt: StreamConnectionError.
        """
        try:
            await ws.send(proto.auth_frame(self._api_key))
            await asyncio.wait_for(self._await_auth(ws), self.options.open_timeout)
        except asyncio.TimeoutError as exc:
            raise StreamConnectionError(
                f"{self.options.url} did not answer authentication in time"
            ) from exc
        except ConnectionClosed as exc:
            raise StreamConnectionError(
                f"{self.options.url} closed the connection during authentication: {exc}"
            ) from exc

    async def _await_auth(self, ws: FastConnection) -> None:
        while True:
            frame = await ws.next_message()
            events = self._decode(frame)
            if events is None:
                continue
            # Status frames of the login go to the user's status handler too, the
            # refusal included: it is put before the error is raised, so the handler
            # sees auth_failed just as it would mid-session.
            self.sink.put(events, frame)  # type: ignore[arg-type]
            statuses = proto.classify_statuses(events)
            if isinstance(statuses.session_end, AuthenticationError):
                raise statuses.session_end
            if statuses.authenticated:
                return

    def _start_reading(self, ws: FastConnection) -> None:
        loop = asyncio.get_running_loop()
        self._ws = ws
        self._session_end = None
        self._reader_failure = None
        self._ended = loop.create_future()
        self._connected_at = time.monotonic()
        self._data_frames_at_start = self.stats.data_frames
        self.stats.connections += 1
        self.sink.discard_connection_markers()
        ws.deliver_messages(*self._frame_handler(ws))
        self._reader = loop.create_task(self._read(ws, self._ended), name="polygon-stream-reader")

    async def _replay(self, ws: FastConnection) -> None:
        """Send the whole desired set; from here on, changes are sent as they are made."""
        async with self._send_lock:
            if ws is not self._ws:
                return
            topics = self.subscriptions.topics()
            self._live = True
            try:
                for frame in proto.subscription_frames("subscribe", topics):
                    await ws.send(frame)
            except ConnectionClosed:
                return
        logger.log(
            self.lifecycle_level,
            "connected to %s; subscribed to %d topics",
            self.options.url,
            len(topics),
        )

    async def _discard(self, ws: FastConnection) -> None:
        try:
            await asyncio.wait_for(ws.close(), self.options.close_timeout)
        except Exception:
            ws.abort()

    # -- subscriptions -------------------------------------------------------------------

    async def send_change(self, action: str, topics: list[str], raw: str | None) -> bool:
        """Put a subscribe/unsubscribe on the wire if connected; False if only recorded."""
        if not self._live:
            return False
        async with self._send_lock:
            ws = self._ws
            if ws is None or not self._live:
                return False
            if raw is not None:
                frames = [proto.raw_subscription_frame(action, raw)]
            else:
                frames = proto.subscription_frames(action, topics)
            try:
                for frame in frames:
                    await ws.send(frame)
            except ConnectionClosed:
                return False
            return True

    # -- reading -------------------------------------------------------------------------

    def _frame_handler(self, ws: FastConnection) -> tuple[MessageHandler, Callable[[], None]]:
        """What runs for every message of ``ws``, and after each read of it, inside
        its read (``FastConnection.buffer_updated``): it routes each frame to the
        consumer raw or decoded, then applies backpressure.

        The hot path. It must not raise (a failure of ours ends the connection
        with the error, which is reported and reconnected).
        """
        has_room = self.sink.has_room
        put = self.sink.put
        taps = self._taps
        stats = self.stats
        loads = orjson.loads
        may_hold_status = proto.may_hold_status
        backpressure = self.sink.overflow == "backpressure"
        raw_wanted = self.sink.decode_in_consumer
        raw: list[str] = []
        hand_over_raw = self._raw_hand_over(raw)
        decode_and_put = self._decoder(ws, hand_over_raw if raw_wanted else None)

        def on_frame(frame: Message) -> None:
            try:
                if type(frame) is not str:
                    decode_and_put(frame, False)  # binary: counted and logged there
                elif may_hold_status(frame):
                    stats.status_frames += 1
                    decode_and_put(frame, True)
                elif raw_wanted and not taps:
                    # A plain data frame for a consumer that decodes it itself.
                    stats.frames += 1
                    raw.append(frame)
                    if backpressure:
                        hand_over_raw()  # the buffer is checked frame by frame
                else:
                    # The common case of a consumer on this loop, inline (no call
                    # of ours per frame but the put): a text frame holding a list.
                    if raw:
                        hand_over_raw()
                    try:
                        events = loads(frame)
                    except orjson.JSONDecodeError:
                        events = None
                    if type(events) is list:
                        stats.frames += 1
                        put(events, frame)
                        if taps:
                            self._offer_to_taps(events, frame)
                    else:
                        decode_and_put(frame, False)  # decoded again, counted and logged
                if backpressure and not has_room():
                    self._pause_reading(ws)
            except Exception as exc:  # a bug of ours: report it, never hide it
                self._reader_failed(ws, exc)

        def at_read_end() -> None:
            try:
                hand_over_raw()
            except Exception as exc:
                self._reader_failed(ws, exc)

        return on_frame, at_read_end

    def _raw_hand_over(self, raw: list[str]) -> Callable[[], None]:
        """What hands the plain data frames collected in ``raw`` to a consumer on
        another thread that decodes them itself (``put_raw_frames``): the
        reader's thread does less.

        The frames of a read go over together at its end (one lock and one
        wake-up per read, not per frame), or before a frame that takes the other
        road, so the order stays.
        """
        put_raw_frames = self.sink.put_raw_frames

        def hand_over() -> None:
            if raw:
                put_raw_frames(raw)
                raw.clear()

        return hand_over

    def _decoder(
        self, ws: FastConnection, hand_over_raw: Callable[[], None] | None
    ) -> Callable[[Message, bool], None]:
        """Decode a frame here, act on its statuses, put it in the buffer and
        offer it to the taps (raw frames taken before it are handed over first).

        For the frames off the common road (a frame that may hold a status, a
        binary frame, one that is not a list): the plain data frames are
        decoded inline in :meth:`_frame_handler`.
        """
        put = self.sink.put
        taps = self._taps
        decode = self._decode

        def decode_and_put(frame: Message, maybe_status: bool) -> None:
            if hand_over_raw is not None:
                hand_over_raw()
            events = decode(frame)  # counted, and logged when it holds no events
            if events is None:
                return
            if maybe_status and self._scan_status(events):
                self._close_soon(ws)
            put(events, frame)  # type: ignore[arg-type]
            if taps:
                self._offer_to_taps(events, frame if type(frame) is str else None)

        return decode_and_put

    def _reader_failed(self, ws: FastConnection, exc: Exception) -> None:
        """A failure of ours while reading: end the connection with it."""
        logger.exception("the stream reader failed")
        self._reader_failure = exc
        ws.abort()

    async def _read(self, ws: FastConnection, ended: asyncio.Future[BaseException | None]) -> None:
        """Wait for one connection to end and report it; its frames come through
        :meth:`_frame_handler`, outside this task (the connection keeps itself alive)."""
        error: BaseException | None = None
        try:
            await ws.wait_closed()
            error = self._reader_failure or self._lost_error(ws)
        finally:
            if self._resuming is not None:
                self._resuming.cancel()
            self._reader_done(ws, ended, error)

    def _pause_reading(self, ws: FastConnection) -> None:
        """Backpressure: take no more frames, nor read the socket, until the
        buffer has room again (the rest of the read in progress waits too)."""
        if self._resuming is not None:
            return
        ws.pause_delivery()
        self._resuming = asyncio.get_running_loop().create_task(self._resume_reading(ws))

    async def _resume_reading(self, ws: FastConnection) -> None:
        try:
            await self.sink.wait_for_room()
        finally:
            self._resuming = None
        if not ws.is_closing():
            ws.resume_delivery()

    def _close_soon(self, ws: FastConnection) -> None:
        """Close ``ws`` after a status that ends the session (from a sync callback)."""
        task = asyncio.get_running_loop().create_task(ws.close())
        # The loop keeps only weak references to tasks: hold it until it is done.
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _offer_to_taps(self, events: list[Any], text: str | None) -> None:
        # A tap's failure is its own: it must never end the market-data stream.
        # The frame's text lets a sink publish the events without encoding them.
        for tap in self._taps:
            try:
                tap(events, text)
            except Exception:
                logger.exception("a frame tap raised; the stream goes on")

    def _decode(self, frame: str | bytes) -> list[Any] | None:
        self.stats.frames += 1
        return self.decode_events(frame)

    def decode_events(self, frame: str | bytes) -> list[Any] | None:
        """The events of a frame, or None (counted and logged) when it has none."""
        if type(frame) is not str:
            self.stats.bad_frames += 1
            logger.warning("ignored a binary (or not UTF-8) frame of %d bytes", len(frame))
            return None
        try:
            events = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.stats.decode_errors += 1
            logger.warning("ignored an undecodable frame: %.200r", frame)
            return None
        if type(events) is list:
            return events
        if type(events) is dict:
            # Not what the protocol says, but unambiguous: one event.
            return [events]
        self.stats.bad_frames += 1
        logger.warning("ignored a frame that is not a list of events: %.200r", frame)
        return None

    def _scan_status(self, events: list[Any]) -> bool:
        """Note statuses that end the session; True if this connection should close."""
        statuses = proto.classify_statuses(events)
        for message in statuses.server_errors:
            self.stats.server_errors += 1
            logger.warning("server error: %s", message)
        if statuses.session_end is not None:
            self._session_end = statuses.session_end
        if self._session_end is not None:
            logger.warning("server ended the session: %s", self._session_end)
            return True
        return False

    def _lost_error(self, ws: FastConnection) -> BaseException | None:
        if self._session_end is not None:
            return self._session_end
        if self.closed:
            return None
        if ws.keepalive_timed_out:
            return ConnectionLostError(
                f"{self.options.url} did not answer a keepalive ping within "
                f"{ws.options.ping_timeout:g} s"
            )
        exc = ws.close_exc
        received = exc.rcvd
        if received is None:
            sent = exc.sent
            if sent is not None:
                # The client closed it itself, e.g. 1009 for a frame over
                # max_message_size: that code is the one that says why.
                return ConnectionLostError(
                    f"connection to {self.options.url} lost: {exc}", sent.code, sent.reason
                )
            return ConnectionLostError(f"connection to {self.options.url} lost: {exc}")
        return ConnectionLostError(
            f"{self.options.url} closed the connection: {exc}", received.code, received.reason
        )

    def _reader_done(
        self,
        ws: FastConnection,
        ended: asyncio.Future[BaseException | None],
        error: BaseException | None,
    ) -> None:
        if self._ws is ws:
            self._ws = None
            self._live = False
        if self.closed:
            error = None
        if error is not None:
            logger.warning("%s", error)
        self.sink.put_marker(ConnectionEnded(error))
        if not ended.done():
            ended.set_result(error)

    async def wait_ended(self) -> BaseException | None:
        """Wait until the current connection ends; its error, or None."""
        ended = self._ended
        if ended is None:
            return None
        return await asyncio.shield(ended)

    # -- the reconnect loop -----------------------------------------------------------

    async def run(
        self,
        max_attempts: int | None,
        delay: float,
        reconnect: bool = True,
        keepalive: Keepalive | None = None,
        max_delay: float = MAX_DELAY,
    ) -> None:
        """Stay connected until closed; raise when giving up or on a fatal status.

        ``max_attempts`` consecutive failed connection attempts end the loop with
        :class:`ReconnectFailedError` (``None``: never give up). The count starts
        over once a connection authenticates. Without ``reconnect``, the first
        failure or loss is raised as it is. ``keepalive``, when given, is the
        keepalive of the connections this run opens (the blocking client takes
        it in ``start_stream_thread``); otherwise the options' is.

        The reconnect policy (``docs/reliability.rst``): a connection that was
        healthy (it delivered data, or stayed up ``STABLE_CONNECTION_SECONDS``)
        is followed by an immediate attempt and the backoff starts over; a
        failed attempt, or a connection that ended before delivering anything,
        waits the next delay: ``delay * 2**n`` with jitter, capped at
        ``max_delay``.
        """
        self._use_keepalive(keepalive)
        backoff = Backoff(delay, max_delay)
        failures = 0
        self.supervised = True
        try:
            while not self.closed:
                if not self._live:
                    try:
                        await self.connect()
                    except StreamConnectionError as exc:
                        if not reconnect:
                            raise
                        failures += 1
                        self.stats.failed_attempts += 1
                        if max_attempts is not None and failures >= max_attempts:
                            raise ReconnectFailedError(
                                f"gave up after {failures} failed connection attempts: {exc}",
                                failures,
                            ) from exc
                        pause = backoff.next_delay()
                        logger.warning("%s; retrying in %.2f s", exc, pause)
                        await self._pause(pause)
                        continue
                    failures = 0
                error = await self.wait_ended()
                if self.closed:
                    return
                self._raise_if_fatal(error)
                logger.log(self.lifecycle_level, "reconnecting to %s", self.options.url)
                if not reconnect:
                    if error is not None:
                        raise error
                    return
                self.stats.reconnects += 1
                if self._was_healthy():
                    backoff.reset()
                else:
                    pause = backoff.next_delay()
                    logger.log(
                        self.lifecycle_level,
                        "the connection ended before delivering data; reconnecting in %.2f s",
                        pause,
                    )
                    await self._pause(pause)
        except StreamClosedError:
            return
        finally:
            self.supervised = False

    def _was_healthy(self) -> bool:
        """Whether the connection that just ended delivered data or lived long."""
        if self.stats.data_frames > self._data_frames_at_start:
            return True
        return time.monotonic() - self._connected_at >= STABLE_CONNECTION_SECONDS

    def _use_keepalive(self, keepalive: Keepalive | None) -> None:
        options = self.options
        if keepalive is not None:
            options = dataclasses.replace(
                options, ping_interval=keepalive.interval, ping_timeout=keepalive.timeout
            )
        self._session_options = options

    def _raise_if_fatal(self, error: BaseException | None) -> None:
        if isinstance(error, AuthenticationError):
            raise error
        if isinstance(error, MaxConnectionsError) and not self.reconnect_on_eviction:
            raise error

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the stream is closed."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closed_event.wait(), seconds)

    # -- closing -------------------------------------------------------------------------

    async def disconnect(self) -> None:
        """Close the current connection (the engine stays usable)."""
        ws = self._ws
        if ws is not None:
            await self._discard(ws)
        reader = self._reader
        if reader is not None and not reader.done():
            await asyncio.wait({reader})

    async def close(self) -> None:
        """Close for good: the socket, the reader, and any reconnect loop. Idempotent."""
        self.closed = True
        self._closed_event.set()
        opening = self._opening
        # Cancelled again until it ends: on Python < 3.12, asyncio.wait_for may
        # swallow a cancellation that arrives as its inner task finishes.
        while opening is not None and not opening.done():
            opening.cancel()
            await asyncio.wait({opening}, timeout=0.05)
        await self.disconnect()
