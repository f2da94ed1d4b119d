"""Issue 13: the faults a bad night brings, each against a real socket on 127.0.0.1.

Raw servers write exact bytes where a fault sits between the upgrade and the
login; the simulator's fault hooks do the rest. Waits are conditions with
deadlines (``until``), never sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from _harness import CLUSTER, KEY, publish_trades, serving, trades, until

from polygon import AsyncStreamClient, StreamClient
from polygon.streaming._backoff import Backoff
from polygon.streaming.errors import (
    ArgumentTypeError,
    ConfigurationError,
    PolygonStreamError,
    ReconnectFailedError,
    SlowConsumerWarning,
    StreamClosedError,
    StreamConnectionError,
)
from polygon.streaming.simulator import MarketSimulator, SimulatorThread

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


# -- defects 5-7: StreamClient, iter_messages beside start_stream_thread ---------------


@pytest.fixture
def sim_thread() -> Iterator[SimulatorThread]:
    with SimulatorThread(rate=0, auth_timeout=5.0) as simulator:
        yield simulator


def publish_sync(sim: SimulatorThread, count: int, per_frame: int = 10) -> None:
    """Publish ``count`` trades; frames for a session already closed are lost."""

    async def publish_all() -> None:
        for start in range(0, count, per_frame):
            size = min(per_frame, count - start)
            await sim.simulator.publish(CLUSTER, trades(sim.simulator, start, size))

    sim.call(publish_all)


def wait_until(predicate: Callable[[], object], within: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.005)


def publish_once_iterating(
    client: StreamClient, sim: SimulatorThread, count: int, per_frame: int = 10
) -> threading.Thread:
    """A thread that publishes ``count`` trades once an iterator is fed beside the
    dispatcher thread (its buffer exists)."""

    def publish() -> None:
        wait_until(lambda: client._taps, what="the iterator's buffer")
        publish_sync(sim, count, per_frame)

    publisher = threading.Thread(target=publish)
    publisher.start()
    return publisher


def thread_client(sim: SimulatorThread, **kwargs: Any) -> StreamClient:
    return StreamClient(KEY, CLUSTER, host=sim.url, reconnection_delay=0.05, **kwargs)


def iterate_beside_thread(
    client: StreamClient, sim: SimulatorThread, count: int, slow: float
) -> list[int]:
    """Iterate beside start_stream_thread, slowly, until ``count`` events are seen or
    received-and-dropped; the q of each event yielded."""
    seen: list[int] = []
    client.subscribe_stock_trades(["AAPL"], handler_function=lambda event: None)
    client.start_stream_thread()
    sim.wait_for(lambda: sim.simulator.subscriptions("stocks") == {"T.AAPL"})
    publisher = publish_once_iterating(client, sim, count)
    iterator = client.iter_messages(include_status=False)
    try:
        for event in iterator:
            seen.append(event["q"])
            if event["q"] == count - 1:
                break
            if len(seen) % 100 == 0:
                time.sleep(slow)  # a consumer that falls behind
            if len(seen) + client.stats.events_dropped >= count and event["q"] >= count - 1:
                break
    finally:
        publisher.join(30)
    return seen


@pytest.mark.timeout(60)
def test_every_drop_of_an_iterator_beside_the_thread_is_counted(
    sim_thread: SimulatorThread,
) -> None:
    client = thread_client(sim_thread, max_buffered_events=100, overflow="drop_oldest")
    try:
        seen = iterate_beside_thread(client, sim_thread, 4000, slow=0.02)
        assert seen[-1] == 3999  # drop_oldest keeps the newest
        # Every event was yielded or counted as dropped (the dispatcher's buffer or
        # the iterator's own).
        assert len(seen) + client.stats.events_dropped >= 4000
    finally:
        client.close_stream()


@pytest.mark.timeout(60)
def test_backpressure_bounds_an_iterator_beside_the_thread(sim_thread: SimulatorThread) -> None:
    client = thread_client(sim_thread, max_buffered_events=100, overflow="backpressure")
    biggest = 0

    def watch() -> None:
        nonlocal biggest
        while not client._is_closed():
            for tap in list(client._taps):
                biggest = max(biggest, tap.stats.backlog)
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        seen = iterate_beside_thread(client, sim_thread, 3000, slow=0.01)
        assert seen == list(range(3000))  # backpressure loses nothing
        assert client.stats.events_dropped == 0
    finally:
        client.close_stream()
        watcher.join(10)
    # The iterator's own buffer never held more than the limit (plus one frame).
    assert biggest <= 100 + 10


@pytest.mark.timeout(30)
def test_nothing_is_yielded_after_close_stream(sim_thread: SimulatorThread) -> None:
    client = thread_client(sim_thread)
    client.subscribe_stock_trades(["AAPL"], handler_function=lambda event: None)
    client.start_stream_thread()
    sim_thread.wait_for(lambda: sim_thread.simulator.subscriptions("stocks") == {"T.AAPL"})
    publisher = publish_once_iterating(client, sim_thread, 200, per_frame=20)
    after_close: list[int] = []
    closed = False
    for event in client.iter_messages(include_status=False):
        if closed:
            after_close.append(event["q"])
        if event["q"] == 3:  # mid-frame, with frames already taken behind it
            client.close_stream()
            closed = True
    publisher.join(30)
    assert closed
    assert after_close == []


@pytest.mark.timeout(30)
def test_no_handler_runs_after_on_message_closed_the_stream(sim_thread: SimulatorThread) -> None:
    client = thread_client(sim_thread)
    after: list[str] = []
    closed = threading.Event()

    def on_message(c: StreamClient, raw: str) -> None:
        if '"ev":"T"' in raw.replace(" ", ""):
            c.close_stream()
            closed.set()

    client.on_message = on_message
    client.add_batch_handler(lambda batch: after.append("batch") if closed.is_set() else None)
    client.subscribe_stock_trades(
        ["AAPL"], handler_function=lambda e: after.append("event") if closed.is_set() else None
    )
    client.start_stream_thread()
    sim_thread.wait_for(lambda: sim_thread.simulator.subscriptions("stocks") == {"T.AAPL"})
    publish_sync(sim_thread, 50)
    wait_until(closed.is_set, what="on_message closed the stream")
    client.close_stream()
    assert after == []


# -- defect 8: close_stream() ends handle_messages() while a handler is stuck ----------


async def test_close_stream_ends_handle_messages_with_a_stuck_async_handler(
    sim: MarketSimulator,
) -> None:
    client = AsyncStreamClient(KEY, CLUSTER, host=sim.url)
    stuck = asyncio.Event()
    cancelled = asyncio.Event()

    async def on_trade(event: dict[str, Any]) -> None:
        stuck.set()
        try:
            await asyncio.Event().wait()  # never returns by itself
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await client.subscribe_stock_trades(["AAPL"], handler_function=on_trade)
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True))
    try:
        await serving(sim, ["T.AAPL"])
        await publish_trades(sim, 0, 10)
        await until(stuck.is_set, what="the handler is stuck")
        await client.close_stream()
        # handle_messages() returned (None), the handler was cancelled.
        assert await asyncio.wait_for(loop, 5.0) is None
        assert cancelled.is_set()
    finally:
        loop.cancel()


# -- the reconnect policy --------------------------------------------------------------


async def test_twenty_quick_faults_each_recovered_within_a_second(sim: MarketSimulator) -> None:
    """A feed dropped every time right after it delivered data: the backoff starts
    over after each healthy connection, so no gap grows (before: 0.05 s doubling
    per fault, 50 s by the twentieth)."""
    client = AsyncStreamClient(KEY, CLUSTER, host=sim.url)
    seen: list[int] = []
    await client.subscribe_stock_trades(["AAPL"], handler_function=lambda e: seen.append(e["q"]))
    loop = asyncio.ensure_future(
        client.handle_messages(
            reconnect=True, max_reconnection_attempts=None, reconnection_delay=0.05
        )
    )
    try:
        for fault in range(21):
            # "Within a second" is the requirement; the margin is for a loaded box.
            await serving(sim, ["T.AAPL"], within=1.0 + 2.0)
            await publish_trades(sim, fault, 1)
            await until(lambda n=fault: n in seen, within=1.0 + 2.0, what=f"event {fault}")
            if fault < 20:
                assert sim.drop_connections() == 1
                await until(
                    lambda n=fault: client.stats.reconnects == n + 1, what="the drop noticed"
                )
        assert client.stats.reconnects == 20
        assert seen == list(range(21))
    finally:
        await client.close_stream()
        await loop


def test_the_backoff_grows_to_max_reconnection_delay_and_starts_over() -> None:
    backoff = Backoff(0.5, max_delay=3.0, rng=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    # The default cap is a minute; a first delay above the cap wins over it.
    assert Backoff(1.0, rng=lambda: 0.0).cap == 60.0
    assert Backoff(90.0, max_delay=60.0).cap == 90.0


@pytest.mark.parametrize("bad", [0, -1, "5", float("nan")])
async def test_a_bad_max_reconnection_delay_is_refused(bad: object) -> None:
    client = AsyncStreamClient(KEY, CLUSTER, host="ws://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="max_reconnection_delay"):
        await client.handle_messages(reconnect=True, max_reconnection_delay=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_reconnection_delay"):
        StreamClient(KEY, CLUSTER, host="ws://127.0.0.1:9", max_reconnection_delay=bad)  # type: ignore[arg-type]


async def test_a_connection_that_ends_before_delivering_data_grows_the_backoff(
    sim: MarketSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """An auth-then-close loop (no data): each reconnect waits longer than the last."""
    client = AsyncStreamClient(KEY, CLUSTER, host=sim.url)
    await client.subscribe_stock_trades(["AAPL"], handler_function=lambda e: None)
    caplog.set_level(logging.DEBUG, "polygon.streaming.engine")
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True, reconnection_delay=0.02))
    try:
        for _ in range(4):
            await serving(sim, ["T.AAPL"])
            sim.drop_connections()
            await until(lambda: not client.is_connected)
        pauses = [
            float(r.getMessage().rsplit(" ", 2)[-2])
            for r in caplog.records
            if "before delivering data" in r.getMessage()
        ]
        assert len(pauses) >= 3
        assert pauses == sorted(pauses) and pauses[-1] > pauses[0]
    finally:
        await client.close_stream()
        await loop


# -- drops are reported, not only counted ------------------------------------------------


@pytest.mark.timeout(30)
def test_stream_client_reports_drops_to_on_error_and_the_log(
    sim_thread: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    reports: list[BaseException] = []
    release = threading.Event()

    def on_trade(event: dict[str, Any]) -> None:
        release.wait(10)  # stalls until the buffer overflowed

    client = thread_client(
        sim_thread, max_buffered_events=20, on_error=lambda c, e: reports.append(e)
    )
    caplog.set_level(logging.WARNING, "polygon.streaming.drops")
    try:
        client.subscribe_stock_trades(["AAPL"], handler_function=on_trade)
        client.start_stream_thread()
        sim_thread.wait_for(lambda: sim_thread.simulator.subscriptions("stocks") == {"T.AAPL"})
        publish_sync(sim_thread, 500)
        wait_until(lambda: client.stats.events_dropped > 0, what="drops")
        release.set()
        wait_until(lambda: reports, what="a report")
    finally:
        release.set()
        client.close_stream()
    warning = reports[0]
    assert isinstance(warning, SlowConsumerWarning) and isinstance(warning, PolygonStreamError)
    assert warning.dropped > 0 and warning.total_dropped >= warning.dropped
    assert warning.limit == 20
    assert any("events dropped" in r.getMessage() for r in caplog.records)
    assert len(reports) == 1  # rate-limited: one report per interval


async def test_async_client_reports_drops_to_its_error_handlers(sim: MarketSimulator) -> None:
    reports: list[PolygonStreamError] = []
    release = asyncio.Event()

    async def on_trade(event: dict[str, Any]) -> None:
        await release.wait()

    client = AsyncStreamClient(KEY, CLUSTER, host=sim.url, max_buffered_events=20)
    client.add_error_handler(reports.append)
    await client.subscribe_stock_trades(["AAPL"], handler_function=on_trade)
    loop = asyncio.ensure_future(client.handle_messages(reconnect=True))
    try:
        await serving(sim, ["T.AAPL"])
        await publish_trades(sim, 0, 500)
        await until(lambda: client.stats.events_dropped > 0, what="drops")
        release.set()
        await until(lambda: reports, what="a report")
    finally:
        release.set()
        await client.close_stream()
        await loop
    warning = reports[0]
    assert isinstance(warning, SlowConsumerWarning)
    assert warning.dropped > 0 and warning.limit == 20
    with pytest.raises(TypeError):
        client.add_error_handler("not callable")  # type: ignore[arg-type]


# -- everything raised derives from PolygonStreamError ---------------------------------


async def test_misuse_raises_our_classes_with_the_stdlib_ones_mixed_in() -> None:
    client = AsyncStreamClient(KEY, CLUSTER, host="ws://127.0.0.1:9")
    with pytest.raises(ArgumentTypeError) as wrong_type:
        client.change_handler("T", "not callable")  # type: ignore[arg-type]
    assert isinstance(wrong_type.value, TypeError)
    with pytest.raises(ConfigurationError) as bad_value:
        client.change_handler("", lambda e: None)
    assert isinstance(bad_value.value, ValueError)
    with pytest.raises(ConfigurationError):
        client.remove_batch_handler(lambda batch: None)
    with pytest.raises(ArgumentTypeError):
        await client.subscribe_stock_trades(["AAPL"], force_uppercase_symbols="no")  # type: ignore[arg-type]
    blocking = StreamClient(KEY, CLUSTER, host="ws://127.0.0.1:9")
    with pytest.raises(ArgumentTypeError):

        async def coroutine_handler(event: dict[str, Any]) -> None: ...

        blocking.change_handler("T", coroutine_handler)
    blocking.close_stream()
    await client.close_stream()


def test_a_nats_subject_template_it_cannot_use_is_a_configuration_error() -> None:
    nats_sink = pytest.importorskip("polygon.streaming.sinks.nats")
    with pytest.raises(ConfigurationError, match="subject_template"):
        nats_sink.NatsJetStreamSink(subject_template="{ev}.{sym}")
