"""FastConnection against a raw WebSocket server on 127.0.0.1: exact bytes, real sockets.

:class:`~polygon.streaming._connection.FastConnection` cuts plain text frames out
of the bytes it reads and hands every other frame to websockets' parser as exact
bytes, at frame boundaries. That split is where it can go wrong: a frame cut
across reads, a control frame between data frames, a fragmented message, a frame
websockets must refuse (1002, 1009), the hand-over from the queue read with
``next_message()`` to the callback of ``deliver_messages()``. A websockets server
sends only well-formed frames, in writes of its own choosing, so these tests run
a tiny server that writes exactly the bytes each test chooses, when it chooses,
and reads and unmasks what the client sends back (pongs, close frames).

The client is FastConnection through :class:`Recorder`, a subclass that only
notes where each read ended: a test waits until the client has read a write
before making the next one (so a split really is a split, and everything
written has been handled before the test looks), with a deadline instead of a
sleep.

Every test runs on asyncio's own loop and on uvloop's; both have their
transports read into FastConnection's buffer (``get_buffer``,
``buffer_updated``). The tests of the ``server`` fixture run once more with
every read handed over as a new ``bytes`` object (``data_received``, what a
loop does for a protocol it does not take for a buffered one) through
:class:`UnbufferedRecorder`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import random
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import pytest
import trustme
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    InvalidURI,
    SecurityError,
)
from websockets.protocol import State

from polygon.streaming._connection import (
    READ_BUFFER_SIZE,
    ConnectionOptions,
    FastConnection,
    Message,
    connect,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(10)]


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": request.param == "uvloop"}


OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Seconds: the deadline for anything a test waits on.
WITHIN = 5.0


# -- frames -----------------------------------------------------------------------------


def frame(
    opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False, masked: bool = False
) -> bytes:
    """A frame as a server would write it (or, with ``masked``, as it must not)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        header = bytes([first, mask_bit | length])
    elif length < 2**16:
        header = bytes([first, mask_bit | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first, mask_bit | 127]) + length.to_bytes(8, "big")
    if masked:
        key = b"\x37\xfa\x21\x3d"
        header += key
        payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return header + payload


def text(message: str) -> bytes:
    return frame(OP_TEXT, message.encode())


def texts(messages: Sequence[str]) -> bytes:
    return b"".join(text(message) for message in messages)


def header_size(payload_size: int) -> int:
    return 2 if payload_size < 126 else 4 if payload_size < 2**16 else 10


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


def message(index: int, size: int) -> str:
    """An ASCII str of exactly ``size`` bytes that starts with ``index``."""
    head = f"<{index}>"
    return (head + "abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]


# -- the server -------------------------------------------------------------------------


def unmask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR ``key`` repeated (as big integers: fast for megabytes too)."""
    size = len(data)
    keys = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keys, "big")).to_bytes(size, "big")


class Peer:
    """The server's end of one connection, after the handshake."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, written: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        # Bytes written on this connection so far, the 101 response included.
        self.written = written

    async def send(self, data: bytes) -> None:
        """One write."""
        self.writer.write(data)
        self.written += len(data)
        await self.writer.drain()

    async def read_frame(self) -> tuple[int, bytes]:
        """The client's next frame, unmasked: (opcode, payload)."""
        with anyio.fail_after(WITHIN):
            head = await self.reader.readexactly(2)
            assert head[0] & 0xF0 == 0x80, f"unexpected first byte {head[0]:#04x}"
            assert head[1] & 0x80, "a client frame must be masked"
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await self.reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await self.reader.readexactly(8), "big")
            key = await self.reader.readexactly(4)
            masked = await self.reader.readexactly(length)
        return head[0] & 0x0F, unmask(key, masked)

    async def read_close(self) -> tuple[int, str]:
        """The client's next frame, which must be a close frame: (code, reason)."""
        opcode, payload = await self.read_frame()
        assert opcode == OP_CLOSE, f"expected a close frame, got {opcode:#x} {payload!r}"
        return int.from_bytes(payload[:2], "big"), payload[2:].decode()

    def close(self) -> None:
        """Close the TCP connection (FIN)."""
        if not self.writer.is_closing():
            self.writer.close()

    def reset(self) -> None:
        """Close the TCP connection with a reset (RST): SO_LINGER 0, then close."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class RawServer:
    """Accepts connections, answers the upgrade, then writes only what a test sends.

    With ``tls``, over TLS (a certificate for 127.0.0.1 from a throwaway CA):
    the real service is ``wss://``, and asyncio's TLS transport reads into the
    connection's buffer its own way.
    """

    def __init__(self, tls: bool = False, unbuffered: bool = False) -> None:
        self.url = ""
        self.recorder: type[Recorder] = UnbufferedRecorder if unbuffered else Recorder
        self._server_tls: ssl.SSLContext | None = None
        self._client_tls: ssl.SSLContext | None = None
        if tls:
            authority = trustme.CA()
            self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            authority.issue_cert("127.0.0.1").configure_cert(self._server_tls)
            self._client_tls = ssl.create_default_context()
            authority.configure_trust(self._client_tls)
        self.peers: list[Peer] = []
        self.clients: list[FastConnection] = []
        self._server: asyncio.Server | None = None
        self._accepted: asyncio.Queue[Peer] = asyncio.Queue()
        # Written in the same write as the 101 response (frames right behind it).
        self.greeting = b""

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handshake, "127.0.0.1", 0, ssl=self._server_tls
        )
        port = self._server.sockets[0].getsockname()[1]
        scheme = "ws" if self._server_tls is None else "wss"
        self.url = f"{scheme}://127.0.0.1:{port}/"

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = b""
        for line in request.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        writer.write(response + self.greeting)
        await writer.drain()
        peer = Peer(reader, writer, len(response) + len(self.greeting))
        self.peers.append(peer)
        self._accepted.put_nowait(peer)

    async def open(
        self, max_size: int | None = 2**20, max_queue: int | None = 16, **options: Any
    ) -> tuple[Recorder, Peer]:
        """A client connected to this server, and the server's end of it.

        ``options`` are more :class:`ConnectionOptions` (keepalive is off unless given).
        """
        settings = {"ping_interval": None, "open_timeout": WITHIN, **options}
        config = ConnectionOptions(
            self.url, max_message_size=max_size, max_memory_queue=max_queue, **settings
        )
        ws = await connect(config, ssl=self._client_tls, create_connection=self.recorder)
        assert isinstance(ws, Recorder)
        self.clients.append(ws)
        return ws, await self.accepted()

    async def accepted(self) -> Peer:
        """The server's end of the next connection."""
        with anyio.fail_after(WITHIN):
            return await self._accepted.get()

    async def stop(self) -> None:
        for peer in self.peers:
            peer.close()
        with anyio.fail_after(WITHIN):
            for ws in self.clients:
                await ws.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class Recorder(FastConnection):
    """FastConnection, noting the offset at which each read ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bytes_read = 0
        self.read_ends: list[int] = []
        self._read_more = asyncio.Event()

    def buffer_updated(self, nbytes: int) -> None:
        self._noting_read(nbytes, super().buffer_updated, nbytes)

    def data_received(self, data: bytes) -> None:
        self._noting_read(len(data), super().data_received, data)

    def _noting_read(self, size: int, read: Callable[[Any], None], what: Any) -> None:
        self.bytes_read += size
        self.read_ends.append(self.bytes_read)
        read(what)
        self._read_more.set()

    async def read_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate`` holds, checking after each read."""
        with anyio.fail_after(WITHIN):
            while not predicate():
                self._read_more.clear()
                await self._read_more.wait()

    async def read_up_to(self, total: int) -> None:
        """Wait until the reads handled so far cover the first ``total`` bytes."""
        with anyio.fail_after(WITHIN):
            while self.bytes_read < total:
                self._read_more.clear()
                await self._read_more.wait()


class UnbufferedRecorder(Recorder):
    """A Recorder whose reads all arrive through ``data_received``, each as a new
    ``bytes`` object, as a loop that does not use the read buffer delivers them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scratch = memoryview(bytearray(READ_BUFFER_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._scratch[:nbytes]))


class Received:
    """A message handler that keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)


async def open_receiving(
    server: RawServer, max_size: int | None = 2**20
) -> tuple[Recorder, Peer, Received]:
    """A connection whose messages go to a :class:`Received` from the start."""
    ws, peer = await server.open(max_size=max_size)
    received = Received()
    ws.deliver_messages(received)
    return ws, peer, received


async def settle(ws: Recorder, peer: Peer) -> None:
    """Wait until the client has read, and so handled, everything the server wrote."""
    await ws.read_up_to(peer.written)


async def send_in_pieces(ws: Recorder, peer: Peer, data: bytes, cuts: Sequence[int]) -> None:
    """Write ``data`` cut at ``cuts``, each piece read by the client before the next."""
    start = peer.written
    bounds = [0, *sorted(cuts), len(data)]
    for low, high in itertools.pairwise(bounds):
        await peer.send(data[low:high])
        await settle(ws, peer)
    # Each cut was the end of a read (a piece may have been read in more than one).
    assert {start + cut for cut in cuts} <= set(ws.read_ends)


async def closed(ws: FastConnection) -> None:
    with anyio.fail_after(WITHIN):
        await ws.wait_closed()


@pytest.fixture(params=["buffered", "data_received"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[RawServer]:
    raw = RawServer(unbuffered=request.param == "data_received")
    await raw.start()
    try:
        yield raw
    finally:
        await raw.stop()


@pytest.fixture
async def tls_server() -> AsyncIterator[RawServer]:
    raw = RawServer(tls=True)
    await raw.start()
    try:
        yield raw
    finally:
        await raw.stop()


# -- plain text frames ------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 1_000, 70_000], ids=["7-bit", "16-bit", "64-bit"])
async def test_frames_in_one_write_delivered_in_order(server: RawServer, size: int) -> None:
    ws, peer, received = await open_receiving(server)
    messages = [message(i, size) for i in range(5)]

    await peer.send(texts(messages))
    await settle(ws, peer)

    assert received.messages == messages


async def test_mixed_lengths_in_one_write_delivered_in_order(server: RawServer) -> None:
    ws, peer, received = await open_receiving(server)
    sizes = [0, 1, 125, 126, 65_535, 65_536, 3, 70_000, 0]
    messages = [message(i, size) for i, size in enumerate(sizes)] + ["naïve café €"]

    await peer.send(texts(messages))
    await settle(ws, peer)

    assert received.messages == messages


async def test_runs_on_the_loop_it_names(anyio_backend: tuple[str, dict[str, bool]]) -> None:
    uses_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    assert uses_uvloop == anyio_backend[1]["use_uvloop"]


async def test_every_read_lands_in_the_same_reused_buffer(server: RawServer) -> None:
    ws, peer, received = await open_receiving(server)
    buffers = {id(FastConnection.get_buffer(ws, -1)) for _ in range(3)}
    messages = [message(i, 20_000) for i in range(40)]  # 800 kB: several reads

    await peer.send(texts(messages))
    await settle(ws, peer)

    assert received.messages == messages
    assert len(ws.read_ends) > 3
    assert buffers == {id(FastConnection.get_buffer(ws, -1))}
    assert len(FastConnection.get_buffer(ws, -1)) == READ_BUFFER_SIZE


async def test_frames_larger_than_the_read_buffer_delivered_whole(server: RawServer) -> None:
    ws, peer, received = await open_receiving(server, max_size=4 * READ_BUFFER_SIZE)
    sizes = [READ_BUFFER_SIZE - 2, 10, 3 * READ_BUFFER_SIZE + 1, READ_BUFFER_SIZE, 0]
    messages = [message(i, size) for i, size in enumerate(sizes)]

    await peer.send(texts(messages))
    await settle(ws, peer)

    assert received.messages == messages


async def test_over_tls_frames_control_frames_and_splits_delivered_the_same(
    tls_server: RawServer,
) -> None:
    ws, peer, received = await open_receiving(tls_server, max_size=4 * READ_BUFFER_SIZE)
    sizes = [0, 1, 125, 126, 65_535, 65_536, 3, 70_000, 2 * READ_BUFFER_SIZE + 5, 0]
    messages = [message(i, size) for i, size in enumerate(sizes)] + ["naïve café €"]
    # A ping between two frames, and a write that ends in the middle of the big one.
    data = texts(messages[:8]) + frame(OP_PING, b"tls") + texts(messages[8:])
    cut = len(data) // 2

    await peer.send(data[:cut])
    await peer.send(data[cut:] + texts(SMALL_STREAM))
    await settle(ws, peer)
    opcode, payload = await peer.read_frame()

    assert received.messages == messages + SMALL_STREAM
    assert (opcode, payload) == (OP_PONG, b"tls")


SMALL_STREAM = ["", "a", message(2, 125), "naïve €", message(4, 126), message(5, 300), "z"]


async def test_one_byte_per_read_delivered_the_same(server: RawServer) -> None:
    ws, peer, received = await open_receiving(server)
    data = texts(SMALL_STREAM)

    await send_in_pieces(ws, peer, data, range(1, len(data)))

    assert received.messages == SMALL_STREAM


async def test_split_in_two_at_every_position_delivered_the_same(server: RawServer) -> None:
    ws, peer, received = await open_receiving(server)
    data = texts(SMALL_STREAM)

    for cut in range(1, len(data)):
        await send_in_pieces(ws, peer, data, [cut])

    assert received.messages == SMALL_STREAM * (len(data) - 1)


async def test_split_at_random_positions_delivered_the_same(server: RawServer) -> None:
    rng = random.Random(20_240_611)
    sizes = [rng.choice([rng.randrange(126), rng.randrange(126, 3_000)]) for _ in range(300)]
    sizes[50], sizes[120], sizes[200] = 70_000, 65_536, 65_535
    messages = [message(i, size) for i, size in enumerate(sizes)]
    data = texts(messages)
    cuts = set(rng.sample(range(1, len(data)), 400))
    offset = 0
    for size in sizes:
        # Every cut in and around the header of each longer frame.
        if size >= 126:
            cuts.update(range(offset + 1, offset + header_size(size) + 2))
        offset += header_size(size) + size
    ws, peer, received = await open_receiving(server)

    await send_in_pieces(ws, peer, data, sorted(cuts))

    assert received.messages == messages


# -- other frames between them ----------------------------------------------------------


@pytest.mark.parametrize("ping", [b"", b"are you there?", bytes(range(125))])
async def test_ping_between_frames_answered_and_frames_kept_in_order(
    server: RawServer, ping: bytes
) -> None:
    ws, peer, received = await open_receiving(server)
    messages = [message(i, 40) for i in range(4)]

    await peer.send(texts(messages[:2]) + frame(OP_PING, ping) + texts(messages[2:]))

    assert await peer.read_frame() == (OP_PONG, ping)
    await settle(ws, peer)
    assert received.messages == messages


@pytest.mark.parametrize("one_byte_per_read", [False, True], ids=["one write", "byte by byte"])
async def test_fragmented_message_joined_in_order(
    server: RawServer, one_byte_per_read: bool
) -> None:
    ws, peer, received = await open_receiving(server)
    # "é" is cut between the first two fragments.
    data = (
        text("before")
        + frame(OP_TEXT, b"caf\xc3", fin=False)
        + frame(OP_PING, b"mid")
        + frame(OP_CONT, b"\xa9 au ", fin=False)
        + frame(OP_CONT, b"lait")
        + text("after")
        + frame(OP_TEXT, b"second ", fin=False)
        + frame(OP_CONT, b"one")
        + text("last")
    )

    if one_byte_per_read:
        await send_in_pieces(ws, peer, data, range(1, len(data)))
    else:
        await peer.send(data)

    assert await peer.read_frame() == (OP_PONG, b"mid")
    await settle(ws, peer)
    assert received.messages == ["before", "café au lait", "after", "second one", "last"]


@pytest.mark.parametrize(
    "data",
    [
        frame(OP_BINARY, b"\x00\x01\xff"),
        frame(OP_BINARY, b"\x00\x01", fin=False) + frame(OP_CONT, b"\xff"),
    ],
    ids=["one frame", "fragmented"],
)
async def test_binary_message_delivered_as_bytes_in_order(server: RawServer, data: bytes) -> None:
    ws, peer, received = await open_receiving(server)

    await peer.send(text("one") + data + frame(OP_BINARY, b"ascii") + text("two"))
    await settle(ws, peer)

    assert received.messages == ["one", b"\x00\x01\xff", b"ascii", "two"]
    assert [type(m) for m in received.messages] == [str, bytes, bytes, str]


@pytest.mark.parametrize(
    "data",
    [
        frame(OP_TEXT, b"\xff\xfe"),
        frame(OP_TEXT, b"\xff", fin=False) + frame(OP_CONT, b"\xfe"),
    ],
    ids=["one frame", "fragmented"],
)
async def test_invalid_utf8_text_delivered_as_bytes_and_connection_stays_open(
    server: RawServer, data: bytes
) -> None:
    ws, peer, received = await open_receiving(server)

    await peer.send(text("before") + data + frame(OP_TEXT, b"caf\xc3") + text("after"))
    await settle(ws, peer)

    assert received.messages == ["before", b"\xff\xfe", b"caf\xc3", "after"]
    assert ws.state is State.OPEN
    await peer.send(frame(OP_PING, b"still there") + text("later"))
    assert await peer.read_frame() == (OP_PONG, b"still there")
    await settle(ws, peer)
    assert received.messages[-1] == "later"


# -- frames websockets must refuse ------------------------------------------------------


@pytest.mark.parametrize("how", ["whole", "header only", "header in pieces"])
@pytest.mark.parametrize("size", [2_000, 70_000], ids=["16-bit", "64-bit"])
async def test_frame_over_max_size_fails_with_1009(server: RawServer, size: int, how: str) -> None:
    ws, peer, received = await open_receiving(server, max_size=1_000)
    before = [message(0, 10), message(1, 1_000)]  # exactly max_size is allowed
    big = text(message(2, size))
    header = header_size(size)

    if how == "whole":
        await peer.send(texts(before) + big + text("after"))
    elif how == "header only":
        await peer.send(texts(before) + big[:header])
    else:
        await peer.send(texts(before) + big[:2])
        await settle(ws, peer)
        await peer.send(big[2:header])

    code, _ = await peer.read_close()
    assert code == 1009
    peer.close()
    await closed(ws)
    assert received.messages == before
    exc = ws.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert exc.sent is not None and exc.sent.code == 1009


BREAKING_FRAMES = {
    "masked": frame(OP_TEXT, b"masked", masked=True),
    "rsv1": frame(OP_TEXT, b"deflated?", rsv1=True),
    # The partial message is not delivered either.
    "text inside a fragmented message": (
        frame(OP_TEXT, b"part one", fin=False)
        + frame(OP_TEXT, b"intruder")
        + frame(OP_CONT, b" part two")
    ),
    "continuation without a start": frame(OP_CONT, b"stray"),
}


@pytest.mark.parametrize("max_size", [2**20, None], ids=["max_size 1 MiB", "max_size None"])
@pytest.mark.parametrize("bad", BREAKING_FRAMES.values(), ids=BREAKING_FRAMES.keys())
async def test_a_frame_breaking_the_protocol_fails_with_1002(
    server: RawServer, bad: bytes, max_size: int | None
) -> None:
    # A masked server frame, reserved bits with no extension negotiated, or
    # fragments out of order.
    ws, peer, received = await open_receiving(server, max_size=max_size)

    await peer.send(text("before") + bad + text("after"))

    code, _ = await peer.read_close()
    assert code == 1002
    peer.close()
    await closed(ws)
    assert received.messages == ["before"]


# -- closing ----------------------------------------------------------------------------


async def test_close_from_server_answered_after_all_data(server: RawServer) -> None:
    ws, peer, received = await open_receiving(server)
    messages = [message(i, size) for i, size in enumerate([5, 500, 5])]

    await peer.send(
        texts(messages) + frame(OP_CLOSE, close_payload(1000, "bye")) + text("after close")
    )

    assert await peer.read_close() == (1000, "bye")
    peer.close()
    await closed(ws)
    assert received.messages == messages
    exc = ws.close_exc
    assert isinstance(exc, ConnectionClosedOK)
    assert exc.rcvd is not None
    assert (exc.rcvd.code, exc.rcvd.reason) == (1000, "bye")


@pytest.mark.parametrize("how", ["close", "eof", "reset"])
async def test_a_lost_connection_lets_go_of_its_read_buffer(server: RawServer, how: str) -> None:
    # The connection object itself may live on until the cyclic garbage collector
    # runs; a reconnecting client must not keep 256 KiB per old connection meanwhile.
    ws, peer, received = await open_receiving(server)
    await peer.send(texts(["before"]))
    await settle(ws, peer)
    assert len(FastConnection.get_buffer(ws, -1)) == READ_BUFFER_SIZE

    if how == "close":
        await peer.send(frame(OP_CLOSE, close_payload(1000)))
        await peer.read_close()
        peer.close()
    elif how == "eof":
        peer.close()
    else:
        peer.reset()
    await closed(ws)

    assert received.messages == ["before"]
    assert len(FastConnection.get_buffer(ws, -1)) == 0


@pytest.mark.parametrize("how", ["eof", "reset"])
@pytest.mark.parametrize("cut", ["in header", "in payload"])
async def test_connection_lost_mid_frame_delivers_complete_frames_only(
    server: RawServer, cut: str, how: str
) -> None:
    ws, peer, received = await open_receiving(server)
    messages = [message(0, 10), message(1, 300)]
    partial = text(message(2, 300))
    partial = partial[:3] if cut == "in header" else partial[:100]

    await peer.send(texts(messages) + partial)
    await settle(ws, peer)
    if how == "eof":
        peer.close()
    else:
        peer.reset()

    await closed(ws)
    assert received.messages == messages
    exc = ws.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert exc.rcvd is None


# -- before deliver_messages() ----------------------------------------------------------


async def test_queued_messages_read_then_flushed_first(server: RawServer) -> None:
    ws, peer = await server.open()
    messages = [message(i, 30) for i in range(7)]

    await peer.send(
        text(messages[0])
        + frame(OP_TEXT, b"<1>", fin=False)
        + frame(OP_CONT, messages[1][3:].encode())
        + texts(messages[2:5])
    )

    assert await ws.next_message() == messages[0]
    assert await ws.next_message() == messages[1]
    await settle(ws, peer)
    received = Received()
    ws.deliver_messages(received)
    assert received.messages == messages[2:5]  # flushed within the call
    await peer.send(texts(messages[5:]))
    await settle(ws, peer)
    assert received.messages == messages[2:]


async def test_next_message_waits_for_a_message(server: RawServer) -> None:
    ws, peer = await server.open()
    waiting = asyncio.ensure_future(ws.next_message())
    await asyncio.sleep(0)  # one loop turn: the task starts and blocks
    assert not waiting.done()

    await peer.send(text("hello"))

    with anyio.fail_after(WITHIN):
        assert await waiting == "hello"


async def test_next_message_returns_what_is_left_then_raises_once_closed(
    server: RawServer,
) -> None:
    ws, peer = await server.open()

    await peer.send(texts(["one", "two"]) + frame(OP_CLOSE, close_payload(1000)))
    assert await peer.read_close() == (1000, "")
    peer.close()
    await closed(ws)

    assert await ws.next_message() == "one"
    assert await ws.next_message() == "two"
    with anyio.fail_after(WITHIN), pytest.raises(ConnectionClosedOK):
        await ws.next_message()


@pytest.mark.parametrize("how", ["close frame", "eof"])
async def test_waiting_next_message_raises_when_connection_closes(
    server: RawServer, how: str
) -> None:
    ws, peer = await server.open()
    await peer.send(text("one"))
    assert await ws.next_message() == "one"
    waiting = asyncio.ensure_future(ws.next_message())
    await asyncio.sleep(0)  # one loop turn: the task starts and blocks
    assert not waiting.done()

    if how == "close frame":
        await peer.send(frame(OP_CLOSE, close_payload(1000)))
        assert await peer.read_close() == (1000, "")
    peer.close()

    with anyio.fail_after(WITHIN), pytest.raises(ConnectionClosed) as raised:
        await waiting
    expected = ConnectionClosedOK if how == "close frame" else ConnectionClosedError
    assert type(raised.value) is expected


async def test_frame_split_across_deliver_messages_delivered_whole(server: RawServer) -> None:
    """The start of a frame read before ``deliver_messages()``, its end after."""
    ws, peer = await server.open()
    first, second, third = message(0, 20), message(1, 300), message(2, 20)
    data = texts([first, second, third])
    cut = len(text(first)) + 50  # inside the payload of ``second``

    await peer.send(data[:cut])
    assert await ws.next_message() == first
    await settle(ws, peer)  # the start of ``second`` has been read
    received = Received()
    ws.deliver_messages(received)
    await peer.send(data[cut:])
    await settle(ws, peer)

    assert received.messages == [second, third]


async def test_frames_in_the_same_write_as_the_handshake_response_are_delivered_whole(
    server: RawServer,
) -> None:
    # websockets parses the response; a frame cut right behind it must not be
    # left half in its parser and half on the short road.
    first, second, third = "x" * 10, "y" * 300, "z" * 20
    cut = frame(OP_TEXT, second.encode())
    server.greeting = frame(OP_TEXT, first.encode()) + cut[:7]
    ws, peer = await server.open()
    with anyio.fail_after(WITHIN):
        assert await ws.next_message() == first
    received: list[Message] = []
    ws.deliver_messages(received.append)
    await peer.send(cut[7:] + frame(OP_TEXT, third.encode()))
    await ws.read_up_to(peer.written)
    assert received == [second, third]


async def test_the_queue_before_deliver_messages_is_bounded_by_max_queue(
    server: RawServer,
) -> None:
    # Before the callback takes over (the login), a server writing on and on
    # must not fill memory: reading pauses at max_queue messages.
    ws, peer = await server.open(max_queue=8)
    messages = [f"m{i}" for i in range(40)]
    await peer.send(texts(messages))
    await ws.read_until(lambda: not ws.transport.is_reading())
    assert await ws.next_message() == messages[0]
    assert not ws.transport.is_reading()  # above the low-water mark (8 // 4)
    received = [await ws.next_message() for _ in range(len(ws._inbox) - 2)]
    assert ws.transport.is_reading()  # at the low-water mark: reading again
    assert received == messages[1 : 1 + len(received)]
    after: list[Message] = []
    ws.deliver_messages(after.append)
    assert ws.transport.is_reading()
    await ws.read_up_to(peer.written)
    assert [messages[0], *received, *after] == messages


class Pausing(Received):
    """Keeps messages, and pauses delivery after every ``every``-th one (a full buffer)."""

    def __init__(self, ws: FastConnection, every: int) -> None:
        super().__init__()
        self.ws = ws
        self.every = every

    def __call__(self, message: Message) -> None:
        super().__call__(message)
        if len(self.messages) % self.every == 0:
            self.ws.pause_delivery()


async def test_pause_delivery_hands_over_nothing_more_until_resumed(server: RawServer) -> None:
    # Backpressure: not one more frame once the callback's buffer is full, even
    # from the read in progress; then the rest, in order, control frames included.
    ws, peer = await server.open()
    received = Pausing(ws, every=3)
    ws.deliver_messages(received)
    messages = [f"m{i}" for i in range(10)]
    fragmented = frame(OP_TEXT, b"frag", fin=False) + frame(OP_CONT, b"mented")
    await peer.send(
        texts(messages[:4]) + fragmented + frame(OP_PING, b"p") + texts(messages[4:]) + b"\x81"
    )
    await settle(ws, peer)
    assert received.messages == messages[:3]
    assert not ws.transport.is_reading()

    expected = [*messages[:4], "fragmented", *messages[4:]]
    for count in (6, 9, 12):
        ws.resume_delivery()
        assert received.messages == expected[:count]
    assert (await peer.read_frame()) == (OP_PONG, b"p")
    ws.resume_delivery()
    assert received.messages == expected
    assert ws.transport.is_reading()
    # The lone header byte written last is the start of the next frame.
    received.every = 1000  # no more pauses
    await peer.send(b"\x05tail!")
    await settle(ws, peer)
    assert received.messages == [*expected, "tail!"]


async def test_at_read_end_follows_the_messages_of_each_read(server: RawServer) -> None:
    # The engine hands the frames of one read over together at its end.
    ws, peer = await server.open()
    seen: list[Message] = []
    ws.deliver_messages(seen.append, at_read_end=lambda: seen.append("|"))
    assert seen == ["|"]  # the flush of queued messages ends like a read
    reads_before = len(ws.read_ends)
    await peer.send(texts(["a", "b", "c"]))
    await settle(ws, peer)
    await peer.send(texts(["d"]) + frame(OP_PING, b"") + texts(["e"]))
    await settle(ws, peer)
    assert await peer.read_frame() == (OP_PONG, b"")
    reads = len(ws.read_ends) - reads_before
    assert seen.count("|") == 1 + reads
    assert [m for m in seen if m != "|"] == ["a", "b", "c", "d", "e"]
    assert seen[-1] == "|"  # nothing handed over after the last read ended


# -- the same as a plain websockets recv() loop ----------------------------------------------
#
# The reference: websockets' own asyncio client reading with recv() until the
# connection closes. For each byte stream below, FastConnection must deliver the
# same messages, in the same order, and end with the same close codes. (One
# deliberate difference is not in these streams: text that is not UTF-8 is
# delivered as bytes, counted and skipped by the engine, where recv() fails the
# connection with 1007; see test_invalid_utf8_text_delivered_as_bytes...)


async def plain_recv_loop(server: RawServer, data: bytes, max_size: int | None) -> Outcome:
    from websockets.asyncio.client import connect as plain_connect

    ws = await plain_connect(
        server.url, compression=None, ping_interval=None, max_size=max_size, open_timeout=WITHIN
    )
    peer = await server.accepted()
    finishing = asyncio.ensure_future(finish(peer, data))
    messages: list[Message] = []
    with anyio.fail_after(WITHIN):
        try:
            while True:
                messages.append(await ws.recv())
        except ConnectionClosed as exc:
            ended = exc
        await finishing
    return messages, close_codes(ended)


async def fast_connection(
    server: RawServer, data: bytes, max_size: int | None, cuts: Sequence[int]
) -> Outcome:
    ws, peer, received = await open_receiving(server, max_size=max_size)
    finishing = asyncio.ensure_future(finish(peer, data, ws, cuts))
    await closed(ws)
    with anyio.fail_after(WITHIN):
        await finishing
    return received.messages, close_codes(ws.close_exc)


Outcome = tuple[list[Message], tuple[int | None, int | None]]


def close_codes(exc: ConnectionClosed) -> tuple[int | None, int | None]:
    """(the code received, the code sent)."""
    return (
        None if exc.rcvd is None else exc.rcvd.code,
        None if exc.sent is None else exc.sent.code,
    )


async def finish(
    peer: Peer, data: bytes, ws: Recorder | None = None, cuts: Sequence[int] = ()
) -> None:
    """Write ``data`` (in pieces at ``cuts`` for a Recorder), then read the client's
    frames until its close frame, and close the TCP connection."""
    if ws is None or not cuts:
        await peer.send(data)
    else:
        start = peer.written
        bounds = [0, *sorted(cuts), len(data)]
        for low, high in itertools.pairwise(bounds):
            await peer.send(data[low:high])
            # Each piece read before the next, unless the client closed meanwhile.
            end = start + high
            await ws.read_until(lambda end=end: ws.bytes_read >= end or ws.is_closing())
    with anyio.fail_after(WITHIN):
        while True:
            try:
                opcode, _ = await peer.read_frame()
            except asyncio.IncompleteReadError:
                break
            if opcode == OP_CLOSE:
                break
    peer.close()


def random_stream(seed: int) -> bytes:
    """Text, binary, fragmented and control frames mixed, ending with a close frame."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    for index in range(rng.randrange(5, 40)):
        kind = rng.choice(["text", "text", "text", "binary", "fragmented", "ping", "unicode"])
        size = rng.choice([0, 1, 125, 126, rng.randrange(300), rng.randrange(65_530, 65_540)])
        if kind == "text":
            parts.append(text(message(index, size)))
        elif kind == "unicode":
            parts.append(text(f"<{index}> naïve café € 日本"))
        elif kind == "binary":
            parts.append(frame(OP_BINARY, rng.randbytes(size)))
        elif kind == "ping":
            parts.append(frame(OP_PING, rng.randbytes(rng.randrange(126))))
        else:
            payload = message(index, size).encode()
            cut = rng.randrange(len(payload) + 1)
            opcode = rng.choice([OP_TEXT, OP_BINARY])
            parts.append(frame(opcode, payload[:cut], fin=False))
            if rng.random() < 0.5:
                parts.append(frame(OP_PING, b"between"))
            parts.append(frame(OP_CONT, payload[cut:]))
    parts.append(frame(OP_CLOSE, close_payload(1000, "done")))
    return b"".join(parts)


ENDINGS = {
    "close 1000": frame(OP_CLOSE, close_payload(1000, "bye")),
    "close 4001": frame(OP_CLOSE, close_payload(4001, "maintenance")),
    "over max_size": text("x" * 70_000),
    "masked": frame(OP_TEXT, b"masked", masked=True),
    "rsv1": frame(OP_TEXT, b"deflated?", rsv1=True),
    "text inside a fragmented message": frame(OP_TEXT, b"one", fin=False) + text("two"),
    "continuation without a start": frame(OP_CONT, b"stray"),
    "oversized ping": frame(OP_PING, b"p" * 126),
    "fragmented ping": frame(OP_PING, b"p", fin=False),
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS.keys())
async def test_differential_endings_match_a_plain_recv_loop(
    server: RawServer, ending: bytes
) -> None:
    data = texts(["before", message(1, 300)]) + frame(OP_PING, b"x") + ending + text("after")
    expected = await plain_recv_loop(server, data, max_size=65_536)
    assert await fast_connection(server, data, 65_536, cuts=()) == expected
    start = len(data) - len(ending) - len(text("after"))
    cuts = range(start - 3, min(start + 12, len(data)))  # byte by byte around its header
    assert await fast_connection(server, data, 65_536, cuts=cuts) == expected


@pytest.mark.parametrize("seed", range(6))
async def test_differential_random_streams_match_a_plain_recv_loop(
    server: RawServer, seed: int
) -> None:
    data = random_stream(seed)
    expected = await plain_recv_loop(server, data, max_size=2**20)
    assert expected[1] == (1000, 1000)
    assert await fast_connection(server, data, 2**20, cuts=()) == expected
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(60, len(data) - 1)))
    assert await fast_connection(server, data, 2**20, cuts=cuts) == expected


# -- what our I/O adds around websockets' protocol ---------------------------------------------


async def scripted_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
) -> tuple[asyncio.Server, str]:
    """A TCP server on 127.0.0.1 port 0 that runs ``handler`` per connection."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def test_keepalive_pings_and_aborts_when_a_pong_is_late(server: RawServer) -> None:
    ws, peer = await server.open(ping_interval=0.05, ping_timeout=0.5)
    for _ in range(3):  # answered: the connection stays
        opcode, payload = await peer.read_frame()
        assert opcode == OP_PING and len(payload) == 4
        await peer.send(frame(OP_PONG, payload))
    assert ws.state is State.OPEN
    opcode, _ = await peer.read_frame()  # not answered
    assert opcode == OP_PING
    await closed(ws)
    assert ws.keepalive_timed_out


async def test_a_pong_with_another_payload_does_not_count(server: RawServer) -> None:
    ws, peer = await server.open(ping_interval=0.05, ping_timeout=0.3)
    _, payload = await peer.read_frame()
    await peer.send(frame(OP_PONG, payload[::-1] + b"!"))
    await closed(ws)
    assert ws.keepalive_timed_out


async def test_open_timeout_bounds_a_handshake_that_is_never_answered() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request, never answers, until the client aborts
        writer.close()  # (Python 3.12's Server.wait_closed() waits for every connection)

    tcp, url = await scripted_server(silent)
    async with tcp:
        with anyio.fail_after(WITHIN), pytest.raises(asyncio.TimeoutError):
            await connect(ConnectionOptions(url, open_timeout=0.2))


def answer(status: str, headers: str = "") -> Callable[..., Any]:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return handler


async def test_a_refused_handshake_raises_invalid_status() -> None:
    tcp, url = await scripted_server(answer("503 Service Unavailable"))
    async with tcp:
        with anyio.fail_after(WITHIN), pytest.raises(InvalidStatus) as refused:
            await connect(ConnectionOptions(url))
    assert refused.value.response.status_code == 503


async def test_redirects_are_followed(server: RawServer) -> None:
    tcp, url = await scripted_server(answer("302 Found", f"Location: {server.url}\r\n"))
    async with tcp:
        ws = await connect(ConnectionOptions(url + "stocks", ping_interval=None))
    server.clients.append(ws)
    peer = await server.accepted()
    await peer.send(text("redirected"))
    with anyio.fail_after(WITHIN):
        assert await ws.next_message() == "redirected"


@pytest.mark.parametrize(
    ("location", "error"),
    [("http://127.0.0.1:1/login", InvalidURI), ("self", SecurityError)],
    ids=["not a WebSocket URL", "a redirect loop"],
)
async def test_bad_redirects_raise(location: str, error: type[Exception]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = url if location == "self" else location
        await answer("307 Temporary Redirect", f"Location: {target}\r\n")(reader, writer)

    tcp, url = await scripted_server(handler)
    async with tcp:
        with anyio.fail_after(WITHIN), pytest.raises(error):
            await connect(ConnectionOptions(url))


async def test_close_aborts_when_the_server_never_closes_tcp(server: RawServer) -> None:
    ws, peer = await server.open(close_timeout=0.2)
    closing = asyncio.ensure_future(ws.close())
    assert await peer.read_close() == (1000, "")
    await peer.send(frame(OP_CLOSE, close_payload(1000)))  # answered, TCP left open
    with anyio.fail_after(WITHIN):
        await closing
    assert isinstance(ws.close_exc, ConnectionClosedOK)


async def test_send_waits_while_the_write_buffer_is_over_write_limit(server: RawServer) -> None:
    ws, peer = await server.open(write_limit=1024)
    big = "x" * 8_000_000  # more than the kernel's socket buffers take
    sending = asyncio.ensure_future(ws.send(big))
    await asyncio.sleep(0)
    for _ in range(10):  # the server reads nothing: the send stays pending
        await asyncio.sleep(0)
    assert not sending.done()
    opcode, payload = await peer.read_frame()  # reading lets it through
    with anyio.fail_after(WITHIN):
        await sending
    assert (opcode, len(payload)) == (OP_TEXT, len(big))


async def test_send_on_a_closed_connection_raises_connection_closed(server: RawServer) -> None:
    ws, peer = await server.open()
    await peer.send(frame(OP_CLOSE, close_payload(1001, "away")))
    await peer.read_close()
    peer.close()
    await closed(ws)
    with anyio.fail_after(WITHIN), pytest.raises(ConnectionClosedOK):
        await ws.send("late")
