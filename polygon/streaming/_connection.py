"""The WebSocket connection: websockets' asyncio client with a short road for data.

websockets reads every frame through a general, generator-based parser, queues
each message in an assembler and wakes a task for every ``recv()``. For a feed
of small unfragmented text frames that road costs about as much as decoding
the JSON in them, and it is why a bare ``recv()`` loop is slower than it needs
to be (``docs/performance.rst``).

:class:`FastConnection` keeps websockets for all of the protocol but the
common case. Once the connection is open, plain text frames (FIN set, no
extension bits, unmasked, within ``max_size``) are cut out of the bytes just
read and handed to a callback in the same call, as many as the read holds.
Every other frame (ping, pong, close, binary, fragmented, masked or malformed)
goes to websockets' own protocol as its exact bytes, at a frame boundary, so
pongs, the closing handshake and protocol errors (1002, 1009) behave exactly as
they do without us. Messages websockets assembles that way reach the same
callback, in order.

websockets parses the handshake response, and not one byte past it: frames
written right behind the response take the short road too, so websockets'
parser never holds half a frame when the short road starts.

The callback can stop the flow at once with
:meth:`FastConnection.pause_delivery` (its buffer is full): the rest of the
read waits here, and reading stops, until :meth:`FastConnection.resume_delivery`.

Before a callback is set (during the login), messages queue here and are read
with :meth:`FastConnection.next_message`; ``recv()`` is not used. websockets'
``max_queue`` bounds that queue as it bounds its own: reading pauses when it is
full.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import Event, State

# A received message: str for a text frame, bytes for a binary one or for text
# that is not valid UTF-8 (the consumer counts and skips those).
Message = str | bytes
MessageHandler = Callable[[Message], None]

# FIN set, RSV bits clear, opcode TEXT: the only first byte the short road takes.
_FIN_TEXT = 0x80 | Opcode.TEXT.value
_NO_LIMIT = 2**63
# Every read of the socket lands in one buffer of this size, reused: what
# data_received() gets instead is a new bytes object per read, and on a busy
# feed the allocator often gives a 256 KiB one fresh pages from the kernel
# (tens of thousands of page faults a second). asyncio reads this much too.
READ_BUFFER_SIZE = 256 * 1024


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


class FastConnection(ClientConnection, asyncio.BufferedProtocol):
    """A :class:`~websockets.asyncio.client.ClientConnection` that hands messages
    to a callback (see the module docstring).

    As an :class:`asyncio.BufferedProtocol` it has asyncio's transports read
    into one reused buffer (:meth:`get_buffer`, :meth:`buffer_updated`); uvloop's
    call :meth:`data_received` instead, which takes the same road.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
        # Parts of a fragmented message websockets is passing us.
        self._fragments: list[bytes] | None = None
        self._fragment_is_text = False
        # Set for good once websockets must see every byte (a frame over
        # max_size, a masked frame, a refused handshake, or the connection
        # leaving OPEN).
        self._long_road = False
        # Newer websockets call it max_message_size (a fragment limit beside
        # it); older ones max_size.
        protocol = self.protocol
        limit = getattr(protocol, "max_message_size", getattr(protocol, "max_size", None))
        self._max_size = _NO_LIMIT if limit is None else limit
        # Before a callback is set, websockets' max_queue bounds the inbox: reading
        # pauses at the high-water mark and resumes at the low one (or once a
        # callback takes over).
        high: int | None = getattr(self, "max_queue_high", None)
        low: int | None = getattr(self, "max_queue_low", None)
        self._inbox_high = high
        self._inbox_low = (high // 4 if high is not None else 0) if low is None else low
        self._inbox_paused = False
        # Set by pause_delivery() (the callback's buffer is full).
        self._delivery_paused = False

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
        self.transport.pause_reading()

    def resume_delivery(self) -> None:
        """Hand over what was kept, in order, then read the socket again."""
        self._delivery_paused = False
        self._flush_inbox()
        if self._partial and not self._delivery_paused and not self._long_road:
            self._cut(self._partial, 0, len(self._partial))
        self._read_ended()
        if not self._delivery_paused:
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
            if self.protocol.state is State.CLOSED:
                raise self.protocol.close_exc
            self._inbox_waiter = self.loop.create_future()
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

    # -- asyncio.BufferedProtocol ----------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        if self._long_road or self.protocol.state is not State.OPEN:
            # The handshake, or websockets sees every byte: it keeps what it is given.
            self._read(bytes(self._read_view[:nbytes]))
        else:
            self._read_open(self._read_buffer, nbytes)
        self._read_ended()

    def data_received(self, data: bytes) -> None:
        # uvloop calls this, with a new bytes object per read, for any subclass of
        # asyncio.Protocol (websockets' connection is one), buffered or not.
        self._read(data)
        self._read_ended()

    def _read(self, data: bytes) -> None:
        if self._long_road:
            super().data_received(data)
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
                super().data_received(bytes(memoryview(data)[offset:end]))
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
                    rest = bytes(view[position:size])  # masked: websockets refuses it (1002)
                    break
                if length > self._max_size:
                    # websockets fails the connection on this header (1009); it
                    # must see it now, not after we buffered a huge frame.
                    rest = bytes(view[position:size])
                    break
                end = start + length
                if end > size:
                    break
                if first == _FIN_TEXT and self._fragments is None:
                    handler(_text_or_bytes(view[start:end]))
                else:
                    # Control, binary or fragmented: websockets' parser is at a
                    # frame boundary (it has only ever seen whole frames).
                    super().data_received(bytes(view[position:end]))
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

    def _after_handshake(self, data: bytes) -> bytes:
        """Give websockets the handshake response, and no byte past it.

        Frames the server sends right behind its response must reach the short
        road whole: websockets' parser may keep half a frame to itself.
        """
        seen = self._handshake_bytes
        seen += data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            super().data_received(data)
            return b""
        cut = len(data) - (len(seen) - (end + 4))
        self._handshake_bytes = bytearray()
        super().data_received(data[:cut])
        return data[cut:]

    def _take_long_road(self, data: bytes) -> None:
        """From now on websockets sees every byte (first what the short road kept)."""
        self._long_road = True
        pending = bytes(self._partial) + data
        self._partial.clear()
        if pending:
            super().data_received(pending)

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode in DATA_OPCODES:
            self._assemble(event)
            return
        super().process_event(event)

    def _assemble(self, frame: Frame) -> None:
        """Data frames websockets parsed itself: whole messages, or their fragments."""
        if frame.opcode is not Opcode.CONT:
            self._fragments = []
            self._fragment_is_text = frame.opcode is Opcode.TEXT
        fragments = self._fragments
        if fragments is None:  # websockets refuses a stray continuation itself
            return
        fragments.append(bytes(frame.data))
        if not frame.fin:
            return
        self._fragments = None
        payload = b"".join(fragments)
        self._deliver(_text_or_bytes(payload) if self._fragment_is_text else payload)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # Nothing is read any more. websockets' objects refer to each other, so the
        # connection may wait for the cyclic garbage collector; its read buffer
        # (256 KiB, a new one per reconnection) need not.
        self._read_buffer = bytearray()
        self._read_view = memoryview(self._read_buffer)
        self._wake_reader()
