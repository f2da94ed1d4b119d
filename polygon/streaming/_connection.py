"""The WebSocket connection: our own asyncio I/O around websockets' sans-I/O protocol.

websockets publishes its protocol as a sans-I/O object,
:class:`websockets.client.ClientProtocol`, for libraries that own their
sockets (its guide "Integrate the Sans-I/O layer"). :class:`FastConnection`
is such an integration: an :class:`asyncio.BufferedProtocol` that opens the
TCP (and TLS) connection, feeds what it reads to the protocol, writes what the
protocol wants written, and implements around it what websockets' own asyncio
client would: the opening timeout, keepalive pings, the closing timeout,
write-buffer limits and pausing the reads (backpressure). Only the methods and
attributes websockets documents for that layer are used.

One thing it does beside the protocol, for speed: websockets parses every frame
with a general, generator-based parser. For a feed of small unfragmented text
frames that costs about as much as decoding the JSON in them
(``docs/performance.rst``). So, once the connection is open, plain text frames
(FIN set, no extension bits, unmasked, within ``max_size``) are cut out of the
bytes just read and handed to a callback in the same call, as many as the read
holds. Every other frame (ping, pong, close, binary, fragmented, masked or
malformed) goes to websockets' protocol as its exact bytes, at a frame
boundary, so pongs, the closing handshake and protocol errors (1002, 1009)
behave exactly as websockets decides. The messages the protocol parses reach
the same callback, in order. The protocol is given the handshake response and
not one byte past it, so it never holds half a frame when the short road starts.

The callback can stop the flow at once with
:meth:`FastConnection.pause_delivery` (its buffer is full): the rest of the
read waits here, and reading stops, until :meth:`FastConnection.resume_delivery`.

Before a callback is set (during the login), messages queue here and are read
with :meth:`FastConnection.next_message`; ``max_memory_queue`` bounds that
queue: reading pauses when it holds that many messages and resumes at a
quarter of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl as ssl_module
import sys
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from websockets.client import ClientProtocol
from websockets.exceptions import (
    ConnectionClosed,
    InvalidStatus,
    SecurityError,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

# A received message: str for a text frame, bytes for a binary one or for text
# that is not valid UTF-8 (the consumer counts and skips those).
Message = str | bytes
MessageHandler = Callable[[Message], None]
if TYPE_CHECKING:  # LoggerAdapter is subscriptable at run time from Python 3.11 only
    Logger = logging.Logger | logging.LoggerAdapter[Any]

# FIN set, RSV bits clear, opcode TEXT: the only first byte the short road takes.
_FIN_TEXT = 0x80 | Opcode.TEXT.value
_DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
_NO_LIMIT = 2**63
# Every read of the socket lands in one buffer of this size, reused: what
# data_received() gets instead is a new bytes object per read, and on a busy
# feed the allocator often gives a 256 KiB one fresh pages from the kernel
# (tens of thousands of page faults a second). asyncio reads this much too.
READ_BUFFER_SIZE = 256 * 1024
# As websockets' own client: redirects followed per opening, at most.
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} polygon-streaming"


@dataclass(frozen=True)
class ConnectionOptions:
    """How to open and keep one WebSocket connection (every limit in one place)."""

    url: str
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 19.0
    max_message_size: int | None = 16 * 2**20
    max_memory_queue: int | None = 32
    write_limit: int = 2**16
    open_timeout: float | None = 10.0
    close_timeout: float | None = 5.0


@dataclass(frozen=True)
class Keepalive:
    """Ping every ``interval`` s (None: never); the peer is dead once a pong is
    ``timeout`` s late (None: never)."""

    interval: float | None
    timeout: float | None


def _missing(frame: bytearray, max_size: int) -> tuple[int, bool]:
    """Bytes missing from the start of a frame: (how many, whether they complete
    it). Only the header is known to be missing while it is incomplete; a masked
    or oversized header is complete as it is (the long road takes it)."""
    size = len(frame)
    if size < 2:
        return 2 - size, False
    length = frame[1]
    if length < 126:
        header = 2
    elif length == 126:
        header = 4
    elif length == 127:
        header = 10
    else:
        return 0, True
    if size < header:
        return header - size, False
    if header > 2:
        length = int.from_bytes(frame[2:header], "big")
    if length > max_size:
        return 0, True
    return header + length - size, True


def _text_or_bytes(payload: Any) -> Message:
    try:
        return str(payload, "utf-8")
    except UnicodeDecodeError:
        return bytes(payload)


async def connect(
    options: ConnectionOptions,
    logger: Logger | None = None,
    *,
    ssl: ssl_module.SSLContext | None = None,
    create_connection: type[FastConnection] | None = None,
) -> FastConnection:
    """Open a connection to ``options.url``: TCP, TLS for ``wss://``, the opening
    handshake (following up to ten redirects), all within ``open_timeout``.

    Raises what websockets raises for a bad URI or a refused handshake
    (:class:`~websockets.exceptions.InvalidURI`,
    :class:`~websockets.exceptions.InvalidHandshake` and its subclasses),
    :class:`OSError` for the network, :class:`TimeoutError` on the deadline.
    """
    factory = FastConnection if create_connection is None else create_connection
    return await asyncio.wait_for(
        _follow_redirects(options, logger, ssl, factory), options.open_timeout
    )


async def _follow_redirects(
    options: ConnectionOptions,
    logger: Logger | None,
    ssl: ssl_module.SSLContext | None,
    factory: type[FastConnection],
) -> FastConnection:
    url = options.url
    for _ in range(MAX_REDIRECTS + 1):
        try:
            return await _open(url, options, logger, ssl, factory)
        except InvalidStatus as exc:
            url = _redirect_target(url, exc)
    raise SecurityError(f"more than {MAX_REDIRECTS} redirects")


def _redirect_target(url: str, refusal: InvalidStatus) -> str:
    """Where a 3xx answer sends us, or ``refusal`` raised when it is no redirect."""
    response = refusal.response
    location = response.headers.get("Location")
    if response.status_code not in _REDIRECT_STATUSES or location is None:
        raise refusal
    target = urllib.parse.urljoin(url, location)
    if parse_uri(url).secure and not parse_uri(target).secure:
        raise SecurityError(f"cannot follow a redirect to the insecure URI {target}")
    return target


async def _open(
    url: str,
    options: ConnectionOptions,
    logger: Logger | None,
    ssl: ssl_module.SSLContext | None,
    factory: type[FastConnection],
) -> FastConnection:
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, max_size=options.max_message_size, logger=logger)
    loop = asyncio.get_running_loop()
    tls: ssl_module.SSLContext | bool | None = None
    if uri.secure:
        tls = True if ssl is None else ssl
    _, connection = await loop.create_connection(
        lambda: factory(protocol, options), uri.host, uri.port, ssl=tls
    )
    try:
        await connection.handshake()
    except BaseException:
        connection.abort()
        raise
    return connection


class FastConnection(asyncio.BufferedProtocol):
    """One WebSocket connection: websockets' protocol with our I/O around it, and
    a callback for messages (see the module docstring).

    As an :class:`asyncio.BufferedProtocol` it has asyncio's transports read
    into one reused buffer (:meth:`get_buffer`, :meth:`buffer_updated`); uvloop's
    call :meth:`data_received` instead, which takes the same road.
    """

    def __init__(self, protocol: ClientProtocol, options: ConnectionOptions) -> None:
        self.protocol = protocol
        self.options = options
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._read_buffer = bytearray(READ_BUFFER_SIZE)
        self._read_view = memoryview(self._read_buffer)
        self._on_message: MessageHandler | None = None
        self._at_read_end: Callable[[], None] | None = None
        self._inbox: deque[Message] = deque()
        self._inbox_waiter: asyncio.Future[None] | None = None
        # Bytes of a frame not complete yet (the short road's own buffer).
        self._partial = bytearray()
        # The handshake response read so far, to find where it ends.
        self._handshake_bytes = bytearray()
        # Parts of a fragmented message the protocol is passing us.
        self._fragments: list[bytes] | None = None
        self._fragment_is_text = False
        # Set for good once the protocol must see every byte (a frame over
        # max_size, a masked frame, a refused handshake, or the connection
        # leaving OPEN).
        self._long_road = False
        limit = options.max_message_size
        self._max_size = _NO_LIMIT if limit is None else limit
        # Before a callback is set, max_memory_queue bounds the inbox: reading
        # pauses at the high-water mark and resumes at the low one (or once a
        # callback takes over).
        self._inbox_high = options.max_memory_queue
        self._inbox_low = 0 if self._inbox_high is None else self._inbox_high // 4
        self._inbox_paused = False
        # Set by pause_delivery() (the callback's buffer is full); _reading is
        # its opposite as an event, and _pauses counts the pauses, for the
        # keepalive (a pong cannot be read while paused).
        self._delivery_paused = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._pauses = 0
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._close_timer: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._keepalive: asyncio.Task[None] | None = None
        self._pong: tuple[bytes, asyncio.Future[None]] | None = None
        # Set when this end gave up on the connection: a keepalive ping unanswered.
        self.keepalive_timed_out = False

    # -- state -----------------------------------------------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        assert self._transport is not None, "not connected"
        return self._transport

    @property
    def state(self) -> State:
        """The WebSocket state, as websockets' protocol keeps it."""
        return self.protocol.state

    @property
    def close_exc(self) -> ConnectionClosed:
        """Why the connection closed (valid once :meth:`wait_closed` returned)."""
        return self.protocol.close_exc

    def is_closing(self) -> bool:
        """True once the socket is closing or closed."""
        return self._transport is None or self._transport.is_closing()

    async def wait_closed(self) -> None:
        """Return once the TCP connection is closed."""
        await asyncio.shield(self._closed)

    # -- opening ---------------------------------------------------------------------

    async def handshake(self) -> None:
        """Send the opening request, wait for the response; raise if refused."""
        protocol = self.protocol
        request = protocol.connect()
        request.headers["User-Agent"] = USER_AGENT
        protocol.send_request(request)
        self._send_data()
        await asyncio.shield(self._opened)
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        interval = self.options.ping_interval
        if interval is not None:
            self._keepalive = self._loop.create_task(
                self._keep_alive(interval, self.options.ping_timeout),
                name="polygon-stream-keepalive",
            )

    # -- the consumer's side ----------------------------------------------------------

    def deliver_messages(
        self, handler: MessageHandler, at_read_end: Callable[[], None] | None = None
    ) -> None:
        """Call ``handler`` with every message from now on, queued ones first.

        ``at_read_end`` is called after the messages of each read (and of each
        flush of queued ones), so the consumer can hand them on in one go. Both
        are called from the read (``buffer_updated``): they must not block, nor
        raise.
        """
        self._on_message = handler
        self._at_read_end = at_read_end
        # Resumed first: the handler may pause delivery itself (backpressure).
        self._resume_inbox()
        self._flush_inbox()
        self._read_ended()

    def pause_delivery(self) -> None:
        """Hand over nothing more, and read nothing more, until :meth:`resume_delivery`.

        Called by the callback (a full buffer): the rest of the read in progress
        is kept here, so not even one more frame is handed over.
        """
        self._delivery_paused = True
        self._pauses += 1
        self._reading.clear()
        self.transport.pause_reading()

    def resume_delivery(self) -> None:
        """Hand over what was kept, in order, then read the socket again."""
        self._delivery_paused = False
        self._flush_inbox()
        if self._partial and not self._delivery_paused and not self._long_road:
            self._cut(self._partial, 0, len(self._partial))
        self._read_ended()
        if not self._delivery_paused:
            self._reading.set()
            self.transport.resume_reading()

    def _read_ended(self) -> None:
        at_read_end = self._at_read_end
        if at_read_end is not None:
            at_read_end()

    def _flush_inbox(self) -> None:
        handler = self._on_message
        while handler is not None and self._inbox and not self._delivery_paused:
            handler(self._inbox.popleft())

    async def next_message(self) -> Message:
        """The next message (before :meth:`deliver_messages`); raises
        :class:`~websockets.exceptions.ConnectionClosed` once the connection is
        closed and nothing is left."""
        while not self._inbox:
            if self._closed.done():
                raise self.protocol.close_exc
            self._inbox_waiter = self._loop.create_future()
            try:
                await self._inbox_waiter
            finally:
                self._inbox_waiter = None
        message = self._inbox.popleft()
        if len(self._inbox) <= self._inbox_low:
            self._resume_inbox()
        return message

    def _deliver(self, message: Message) -> None:
        handler = self._on_message
        if handler is not None and not self._delivery_paused:
            handler(message)
            return
        inbox = self._inbox
        inbox.append(message)
        self._wake_reader()
        high = self._inbox_high
        if handler is not None:
            return  # delivery is paused: so is reading, until it resumes
        if high is not None and len(inbox) >= high and not self._inbox_paused:
            self._inbox_paused = True
            self.transport.pause_reading()

    def _resume_inbox(self) -> None:
        if self._inbox_paused:
            self._inbox_paused = False
            self.transport.resume_reading()

    def _wake_reader(self) -> None:
        waiter = self._inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- sending ---------------------------------------------------------------------

    async def send(self, message: str) -> None:
        """Send a text message; wait while the write buffer is over ``write_limit``.

        Raises :class:`~websockets.exceptions.ConnectionClosed` when the
        connection is closing or closed (once it is closed, to say why).
        """
        if self.protocol.state is not State.OPEN:
            await self.wait_closed()
            raise self.protocol.close_exc
        self.protocol.send_text(message.encode())
        self._send_data()
        if self._write_paused:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (if not started) and wait until the TCP
        connection is closed: at most ``close_timeout``, then it is aborted."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._send_data()
            self._expect_close()
        await self.wait_closed()

    def abort(self) -> None:
        """Close the TCP connection at once, without a closing handshake."""
        if self._transport is not None:
            self._transport.abort()

    def _send_data(self) -> None:
        """Write what the protocol has to send (the guide's "Send data")."""
        transport = self._transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                # The protocol ends its side of the stream: half-close.
                try:
                    transport.write_eof()
                except Exception:  # uvloop may raise RuntimeError; the end is near anyway
                    transport.close()
            else:
                transport.close()  # TLS cannot half-close

    def _expect_close(self) -> None:
        """The guide's "Expect TCP connection to close": abort if it does not,
        ``close_timeout`` from now."""
        timeout = self.options.close_timeout
        if self._close_timer is None and timeout is not None and not self._closed.done():
            self._close_timer = self._loop.call_later(timeout, self.abort)

    # -- keepalive -------------------------------------------------------------------

    async def _keep_alive(self, interval: float, timeout: float | None) -> None:
        """Ping every ``interval`` s; abort the socket when a pong is ``timeout`` s late.

        websockets' own keepalive, on a missing pong, sends a close frame and then
        waits ``close_timeout`` for the silent peer to answer it; aborting at
        once notices the loss ``ping_interval + ping_timeout`` after the last
        sign of life, as documented.
        """
        while True:
            await asyncio.sleep(interval)
            if self.protocol.state is not State.OPEN:
                return
            pong = self._send_ping()
            if timeout is None:
                continue
            if not await self._pong_in_time(pong, timeout):
                self.keepalive_timed_out = True
                self.abort()
                return

    async def _pong_in_time(self, pong: asyncio.Future[None], timeout: float) -> bool:
        """Wait for ``pong``; False when it is ``timeout`` s late *while we read*.

        A pong is read only while reading runs. While we paused reading
        ourselves (backpressure: the consumer's buffer is full) the pong may
        wait unread in the socket: a paused reader is not a dead peer. So the
        deadline does not run while paused; it starts over, whole, on resume.
        """
        while True:
            pauses = self._pauses
            await self._reading.wait()
            try:
                await asyncio.wait_for(asyncio.shield(pong), timeout)
                return True
            except asyncio.TimeoutError:
                if self._delivery_paused or self._pauses != pauses:
                    continue  # we paused within the deadline: it starts over on resume
                return False

    def _send_ping(self) -> asyncio.Future[None]:
        payload = os.urandom(4)
        pong: asyncio.Future[None] = self._loop.create_future()
        self._pong = (payload, pong)
        self.protocol.send_ping(payload)
        self._send_data()
        return pong

    def _pong_received(self, payload: bytes) -> None:
        expected = self._pong
        if expected is not None and expected[0] == payload:
            self._pong = None
            if not expected[1].done():
                expected[1].set_result(None)

    # -- asyncio.BufferedProtocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not subclass asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(self.options.write_limit)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        if self._long_road or self.protocol.state is not State.OPEN:
            # The handshake, or the protocol sees every byte: it keeps what it is given.
            self._read(bytes(self._read_view[:nbytes]))
        else:
            self._read_open(self._read_buffer, nbytes)
        self._read_ended()

    def data_received(self, data: bytes) -> None:
        # uvloop calls this, with a new bytes object per read, for any subclass of
        # asyncio.Protocol, buffered or not.
        self._read(data)
        self._read_ended()

    def eof_received(self) -> None:
        # The guide's "Receive data": the end of the stream. Returning None lets
        # the transport close itself: nothing is written after the peer's EOF.
        self.protocol.receive_eof()
        self._process_events()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drain_waiters()

    def connection_lost(self, exc: Exception | None) -> None:
        # receive_eof() is idempotent: the protocol's state is CLOSED from here.
        self.protocol.receive_eof()
        self.protocol.data_to_send()  # nothing can be written any more
        if self._close_timer is not None:
            self._close_timer.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self._opened.done():
            self._opened.set_result(None)  # handshake_exc says why
        if not self._closed.done():
            self._closed.set_result(None)
        self._release_drain_waiters()
        # Nothing is read any more; the read buffer (256 KiB, a new one per
        # reconnection) need not wait for this object to be collected.
        self._read_buffer = bytearray()
        self._read_view = memoryview(self._read_buffer)
        self._wake_reader()

    def _release_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- the long road: websockets' protocol -------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Give the protocol bytes that begin at a frame boundary (or the handshake)."""
        self.protocol.receive_data(data)
        self._process_events()

    def _process_events(self) -> None:
        """The guide's "Receive events", then "Send data" (websockets answers pings
        and close frames itself) and "Expect TCP connection to close"."""
        protocol = self.protocol
        for event in protocol.events_received():
            if isinstance(event, Frame):
                if event.opcode in _DATA_OPCODES:
                    self._assemble(event)
                elif event.opcode is Opcode.PONG:
                    self._pong_received(bytes(event.data))
            elif isinstance(event, Response) and not self._opened.done():
                self._opened.set_result(None)
        if protocol.handshake_exc is not None and not self._opened.done():
            self._opened.set_result(None)  # a response websockets could not parse
        self._send_data()
        if protocol.close_expected():
            self._expect_close()

    def _assemble(self, frame: Frame) -> None:
        """Data frames the protocol parsed: whole messages, or their fragments."""
        if frame.opcode is not Opcode.CONT:
            self._fragments = []
            self._fragment_is_text = frame.opcode is Opcode.TEXT
        fragments = self._fragments
        if fragments is None:  # the protocol refuses a stray continuation itself
            return
        fragments.append(bytes(frame.data))
        if not frame.fin:
            return
        self._fragments = None
        payload = b"".join(fragments)
        self._deliver(_text_or_bytes(payload) if self._fragment_is_text else payload)

    def _read(self, data: bytes) -> None:
        if self._long_road:
            self._feed(data)
            return
        state = self.protocol.state
        if state is State.CONNECTING:
            data = self._after_handshake(data)
            if not data:
                return
            state = self.protocol.state
        if state is not State.OPEN:
            self._take_long_road(data)
            return
        self._read_open(data, len(data))

    def _after_handshake(self, data: bytes) -> bytes:
        """Give the protocol the handshake response, and no byte past it.

        Frames the server sends right behind its response must reach the short
        road whole: the protocol's parser would keep half a frame to itself.
        """
        seen = self._handshake_bytes
        seen += data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._feed(data)
            return b""
        cut = len(data) - (len(seen) - (end + 4))
        self._handshake_bytes = bytearray()
        self._feed(data[:cut])
        return data[cut:]

    def _take_long_road(self, data: bytes) -> None:
        """From now on the protocol sees every byte (first what the short road kept)."""
        self._long_road = True
        pending = bytes(self._partial) + data
        self._partial.clear()
        if pending:
            self._feed(pending)

    # -- the short road ----------------------------------------------------------------

    def _read_open(self, data: bytes | bytearray, end: int) -> None:
        """The first ``end`` bytes of ``data``, read on the open connection (the
        short road); nothing refers to ``data`` once this returns."""
        partial = self._partial
        offset = 0
        if partial:
            # Complete the frame begun in the last read with just the bytes it
            # lacks, rather than copying the whole read behind it.
            offset = self._complete_partial(data, end)
            if offset < 0:
                return
            if not self._cut(partial, 0, len(partial)):
                self._feed(bytes(memoryview(data)[offset:end]))
                return
            if self._delivery_paused:
                partial += memoryview(data)[offset:end]
                return
        self._cut(data, offset, end)

    def _complete_partial(self, data: bytes | bytearray, end: int) -> int:
        """Move into ``_partial`` the bytes of ``data[:end]`` that complete its frame
        (or the header the long road must see); how many, or -1 if all did not."""
        partial = self._partial
        taken = 0
        with memoryview(data) as view:
            while True:
                missing, whole = _missing(partial, self._max_size)
                if taken + missing > end:
                    partial += view[taken:end]
                    return -1
                partial += view[taken : taken + missing]
                taken += missing
                if whole:
                    return taken

    def _cut(self, buffer: bytes | bytearray, position: int, size: int) -> bool:
        """Hand over the whole frames in ``buffer[position:size]``, keep the start
        of an incomplete one; False once the long road is taken."""
        handler = self._on_message or self._deliver
        partial = self._partial
        rest: bytes | None = None
        with memoryview(buffer) as view:
            while size - position >= 2:
                first = buffer[position]
                length = buffer[position + 1]
                if length < 126:
                    start = position + 2
                elif length == 126:
                    if size - position < 4:
                        break
                    length = (buffer[position + 2] << 8) | buffer[position + 3]
                    start = position + 4
                elif length == 127:
                    if size - position < 10:
                        break
                    length = int.from_bytes(view[position + 2 : position + 10], "big")
                    start = position + 10
                else:
                    rest = bytes(view[position:size])  # masked: the protocol refuses it (1002)
                    break
                if length > self._max_size:
                    # The protocol fails the connection on this header (1009); it
                    # must see it now, not after we buffered a huge frame.
                    rest = bytes(view[position:size])
                    break
                end = start + length
                if end > size:
                    break
                if first == _FIN_TEXT and self._fragments is None:
                    handler(_text_or_bytes(view[start:end]))
                else:
                    # Control, binary or fragmented: the protocol's parser is at a
                    # frame boundary (it has only ever seen whole frames).
                    self._feed(bytes(view[position:end]))
                    if self.protocol.state is not State.OPEN:
                        rest = bytes(view[end:size])
                        break
                position = end
                if self._delivery_paused:
                    break  # what follows is kept (below) for resume_delivery()
            if rest is None and buffer is not partial and position < size:
                partial += view[position:size]  # the start of the next frame, or more
        if rest is not None:
            partial.clear()
            self._take_long_road(rest)
            return False
        if buffer is partial:
            del partial[:position]
        return True
