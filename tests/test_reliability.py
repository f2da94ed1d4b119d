"""Issue 13: the faults a bad night brings, each against a real socket on 127.0.0.1.

Raw servers write exact bytes where a fault sits between the upgrade and the
login; the simulator's fault hooks do the rest. Waits are conditions with
deadlines (``until``), never sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from _harness import CLUSTER, KEY, publish_trades, serving, until

from polygon import AsyncStreamClient
from polygon.streaming.errors import (
    ReconnectFailedError,
    StreamClosedError,
    StreamConnectionError,
)
from polygon.streaming.simulator import MarketSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def read_request(reader: asyncio.StreamReader) -> dict[str, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n")[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers


async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the client's opening request and complete the 101."""
    headers = await read_request(reader)
    accept = base64.b64encode(
        hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()
    ).decode()
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
    )
    await writer.drain()


class RawServer:
    """A TCP server on port 0 running ``script`` for each connection; it counts
    connections and notes when the client's side of each is closed."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.accepted = 0
        self.client_gone = 0
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        try:
            await self.script(reader, writer)
            # Read until the client's end is closed (EOF or reset).
            while await reader.read(65536):
                pass
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.client_gone += 1
            writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.transport.abort()


async def raw_server(script: Script) -> tuple[RawServer, str]:
    server = RawServer(script)
    return server, await server.start()


def client_for(url: str, **kwargs: Any) -> AsyncStreamClient:
    kwargs.setdefault("open_timeout", 10.0)
    return AsyncStreamClient(KEY, CLUSTER, host=url, **kwargs)


# -- defect 1: the connection lost between the upgrade and the login -------------------


async def close_after_upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await upgrade(reader, writer)
    writer.write(b"\x88\x02\x03\xe8")  # a close frame, 1000, before any auth reply
    await writer.drain()
    writer.close()  # and the TCP connection, as a server that is going away does


async def reset_after_upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await upgrade(reader, writer)
    await reader.read(1)  # the auth frame begins
    writer.transport.abort()


@pytest.mark.parametrize("script", [close_after_upgrade, reset_after_upgrade])
async def test_a_loss_between_upgrade_and_login_is_a_failed_attempt(script: Script) -> None:
    server, url = await raw_server(script)
    client = client_for(url)
    try:
        with pytest.raises(StreamConnectionError):
            await client.subscribe_stock_trades(["AAPL"])
        with pytest.raises(StreamConnectionError):
            await client.login()
        ok, message = await client.reconnect()
        assert not ok and message
        # With reconnect: retried with backoff until it gives up, typed.
        with pytest.raises(ReconnectFailedError) as caught:
            await client.handle_messages(
                reconnect=True, max_reconnection_attempts=3, reconnection_delay=0.01
            )
        assert caught.value.attempts == 3
    finally:
        await client.close_stream()
        await server.stop()


# -- defect 2: a redirect to a URL that is no WebSocket URL ----------------------------


def redirect_to(location: bytes) -> Script:
    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()
        writer.close()

    return redirect


@pytest.mark.parametrize(
    "location", [b"http://portal.example/login", b"ftp://x/", b"ws://127.0.0.1:99999/"]
)
async def test_a_redirect_to_a_non_websocket_url_is_a_failed_attempt(location: bytes) -> None:
    server, url = await raw_server(redirect_to(location))
    client = client_for(url)
    try:
        with pytest.raises(ReconnectFailedError):
            await client.handle_messages(
                reconnect=True, max_reconnection_attempts=2, reconnection_delay=0.01
            )
        assert server.accepted == 2
    finally:
        await client.close_stream()
        await server.stop()


# -- defect 4: close_stream() aborts a connection being opened --------------------------


async def silent_after_upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await upgrade(reader, writer)  # then never answers the login


async def silent_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)  # never answers the upgrade


@pytest.mark.parametrize("script", [silent_after_upgrade, silent_handshake])
@pytest.mark.parametrize("call", ["subscribe", "login", "handle_messages"])
async def test_close_stream_aborts_a_connection_being_opened(script: Script, call: str) -> None:
    server, url = await raw_server(script)
    client = client_for(url, open_timeout=20.0)
    calls = {
        "subscribe": lambda: client.subscribe_stock_trades(["AAPL"]),
        "login": client.login,
        "handle_messages": client.handle_messages,
    }
    pending = asyncio.ensure_future(calls[call]())
    try:
        await until(lambda: server.accepted == 1, what="the client connected")
        started = time.monotonic()
        await client.close_stream()
        with pytest.raises(StreamClosedError):
            await asyncio.wait_for(pending, 5.0)
        # Not the open_timeout (20 s): at once, and the server saw the socket close.
        assert time.monotonic() - started < 5.0
        await until(lambda: server.client_gone == 1, what="the server saw the socket close")
    finally:
        pending.cancel()
        await server.stop()


# -- defect 3: a paused reader is not a dead peer ----------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(rate=0) as simulator:
        yield simulator


async def test_backpressure_with_a_stalled_handler_keeps_a_healthy_server(
    sim: MarketSimulator,
) -> None:
    """A handler stalled far longer than ping_interval + ping_timeout: no reconnect,
    nothing lost."""
    client = AsyncStreamClient(
        KEY,
        CLUSTER,
        host=sim.url,
        ping_interval=0.1,
        ping_timeout=0.1,
        max_buffered_events=20,
        overflow="backpressure",
    )
    release = asyncio.Event()
    seen: list[int] = []

    async def on_trade(event: dict[str, Any]) -> None:
        seen.append(event["q"])
        if len(seen) == 1:
            await release.wait()

    await client.subscribe_stock_trades(["AAPL"], handler_function=on_trade)
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True, reconnection_delay=0.01))
    try:
        await serving(sim, ["T.AAPL"])
        await publish_trades(sim, 0, 400)
        await until(lambda: seen, what="the handler stalled")
        stall_until = time.monotonic() + 1.5  # 7x ping_interval + ping_timeout
        await until(lambda: time.monotonic() > stall_until, within=5.0)
        assert client.stats.reconnects == 0
        release.set()
        await until(lambda: len(seen) == 400, within=15.0, what="all 400 events")
        assert seen == list(range(400))
        assert client.stats.reconnects == 0
        assert client.stats.events_dropped == 0
    finally:
        await client.close_stream()
        await loop
