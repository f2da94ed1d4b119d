"""The market simulator: a local WebSocket server that speaks the service's protocol.

It serves ``/stocks``, ``/options``, ``/forex``, ``/crypto`` and ``/indices``,
authenticates, acknowledges subscriptions, evicts the older of two connections
on one key, generates a market in market time (``speed`` times the wall clock,
from ``start``) for the symbols sessions subscribe to, and offers
hooks to inject the faults a client must survive: dropped TCP connections,
frames cut in half, close frames, stray status events, a server that stops
reading, refused and hung handshakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any

from typing_extensions import Self
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from polygon.enums import StreamCluster
from polygon.streaming._redact import RedactingLogger
from polygon.streaming.simulator._clock import MarketClock
from polygon.streaming.simulator._data import EventFactory
from polygon.streaming.simulator._feed import Feed
from polygon.streaming.simulator._session import (
    Event,
    Session,
    apply_subscription,
    parse_message,
    status_event,
)

logger = logging.getLogger("polygon.streaming.simulator")
# websockets logs every frame at DEBUG, client auth frames included: its records
# go through a logger that blanks the key.
_wire_logger = RedactingLogger(logging.getLogger("polygon.streaming.simulator.websockets"), "")

MAX_CONNECTIONS_MESSAGE = (
    "Maximum number of websocket connections exceeded. "
    "You have reached the connection limit for your account."
)
POLICY_VIOLATION = 1008
# Incoming messages are small (auth, subscribe); a long subscribe list is the
# largest thing a client sends.
MAX_MESSAGE_BYTES = 1 << 20
# The simulator ends connections itself in tests; a peer that does not answer
# a close frame should not hold up a test for websockets' default 10 s.
CLOSE_TIMEOUT = 2.0
# How long stop() lets connections close politely before aborting them.
STOP_GRACE_SECONDS = 3.0
POLL_SECONDS = 0.01


def _cluster_for_path(path: str) -> StreamCluster | None:
    name = path.split("?", 1)[0].strip("/")
    try:
        return StreamCluster(name)
    except ValueError:
        return None


def _tracking_connection(registry: set[ServerConnection]) -> type[ServerConnection]:
    """A connection class that registers itself from its first byte.

    websockets only tracks connections once their handshake completes; stop()
    must also be able to abort ones stuck before that (a hung handshake, a
    client that never sends its request).
    """

    class TrackedConnection(ServerConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            registry.add(self)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.discard(self)
            super().connection_lost(exc)

    return TrackedConnection


class MarketSimulator:
    """A local, protocol-faithful market-data WebSocket server with fault hooks.

    Use it as ``async with MarketSimulator() as sim:`` and connect clients to
    ``sim.url + "/stocks"``. ``rate`` is how many market events (trades and
    quotes together) each symbol gets per second of market time; ``rate=0``
    turns data generation off, so a test controls every event with
    :meth:`publish`. Market time runs ``speed`` times the wall clock from
    ``start`` (an ISO 8601 time such as ``"2025-06-02T13:30:00Z"``, or Unix
    milliseconds; by default the time the simulator first starts); see
    :attr:`clock`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        valid_keys: Iterable[str] | None = None,
        rate: float = 100.0,
        batch_size: int = 10,
        seed: int | None = None,
        speed: float = 1.0,
        start: str | float | None = None,
        max_connections_per_key: int = 1,
        auth_timeout: float | None = 10.0,
        ping_interval: float | None = None,
        ping_timeout: float | None = 20.0,
    ) -> None:
        if max_connections_per_key < 1:
            raise ValueError("max_connections_per_key must be at least 1")
        self.host = host
        self._requested_port = port
        self.valid_keys: frozenset[str] | None = (
            None if valid_keys is None else frozenset(valid_keys)
        )
        self.rate = rate
        self.batch_size = batch_size
        self.max_connections_per_key = max_connections_per_key
        self.auth_timeout = auth_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self._seed = seed
        self._clock = MarketClock(speed, start)
        self._factories: dict[StreamCluster, EventFactory] = {}
        self._feed = Feed(
            self._clock,
            self.factory,
            lambda: self.sessions,
            lambda: 0.0 if self._stalled else self._rate,
        )

        self.actions: list[tuple[int, StreamCluster, dict[str, Any]]] = []
        self.connections_accepted = 0
        # Sessions ended because a newer one on the same key and cluster logged in.
        self.evictions = 0
        self._sessions: dict[int, Session] = {}
        self._last_session_id = 0
        self._connections: set[ServerConnection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._server: Server | None = None
        self._shutdown: asyncio.Future[None] | None = None
        self._port: int | None = None
        self._stopping = False

        self._stalled = False
        self._refusing = False
        self._hanging = False

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start serving; afterwards :attr:`port` is the real port.

        After :meth:`stop` it may be started again: it rebinds the same port,
        so clients can reconnect to the same URL (a server restart).
        """
        if self._server is not None or self._shutdown is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping = False
        port = self._port if self._port is not None else self._requested_port
        self._server = await serve(
            self._handle,
            self.host,
            port,
            process_request=self._process_request,
            create_connection=_tracking_connection(self._connections),
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=CLOSE_TIMEOUT,
            # Hung handshakes must hang for as long as the test wants them to;
            # stop() aborts whatever is still opening.
            open_timeout=None,
            max_size=MAX_MESSAGE_BYTES,
            # Compressing a firehose costs more CPU than it saves on loopback.
            compression=None,
            logger=_wire_logger,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        self._clock.begin()
        self._spawn(self._feed.run(), "simulator-market")
        logger.info("simulator listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection and the listener; stop generating. Idempotent.

        A second call while a stop is under way waits for that stop to finish.
        """
        if self._shutdown is None:
            if self._server is None:
                return
            self._shutdown = asyncio.ensure_future(self._close_server(self._server))
        shutdown = self._shutdown
        await asyncio.shield(shutdown)
        if self._shutdown is shutdown:
            self._shutdown = None

    async def _close_server(self, server: Server) -> None:
        self._stopping = True
        # A stalled socket could not read the client's close frame back.
        self.stall(False)
        server.close(close_connections=True)
        try:
            await asyncio.wait_for(server.wait_closed(), STOP_GRACE_SECONDS)
        except asyncio.TimeoutError:
            for connection in list(self._connections):
                connection.transport.abort()
            await server.wait_closed()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._server = None
        self._notify()
        logger.info("simulator stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the simulator listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the simulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``ws://HOST:PORT``; clients append the cluster path (``/stocks``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def rate(self) -> float:
        """Market events (trades and quotes) per symbol per market second; 0: none."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        if value < 0:
            raise ValueError("rate must be >= 0")
        self._rate = float(value)

    @property
    def batch_size(self) -> int:
        """The most events a generated frame holds."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if value < 1:
            raise ValueError("batch_size must be >= 1")
        self._batch_size = int(value)

    @property
    def clock(self) -> MarketClock:
        """The market clock: every generated event is stamped with its time."""
        return self._clock

    def factory(self, cluster: StreamCluster | str) -> EventFactory:
        """The simulator's own event factory for ``cluster``, shared by its sessions.

        Its events carry market time and continue the generated symbols' prices
        and sequence numbers.
        """
        cluster = StreamCluster(cluster)
        factory = self._factories.get(cluster)
        if factory is None:
            # Each symbol draws its own numbers, all fixed by one seed.
            factory = EventFactory(cluster, self._seed, clock=self._clock.now_ms)
            self._factories[cluster] = factory
        return factory

    # -- inspection -------------------------------------------------------------

    @property
    def sessions(self) -> list[Session]:
        """Live sessions (handshake done, not being closed), oldest first."""
        return [s for s in self._sessions.values() if s.live]

    def subscriptions(self, cluster: StreamCluster | str) -> set[str]:
        """Every topic some live authenticated session on ``cluster`` subscribes to."""
        topics: set[str] = set()
        for session in self._targets(cluster, authenticated=True):
            topics |= session.subscriptions
        return topics

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Return once ``predicate()`` is true; raise :class:`TimeoutError` naming ``what``.

        The predicate is checked on every change of state (connect, auth,
        subscribe, any client message, close) and otherwise every 10 ms.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Taken before the check, so a change right after it still wakes us.
            changed = self._changed
            if predicate():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, POLL_SECONDS))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _targets(
        self, cluster: StreamCluster | str | None, *, authenticated: bool = False
    ) -> list[Session]:
        wanted = None if cluster is None else StreamCluster(cluster)
        return [
            s
            for s in self.sessions
            if (wanted is None or s.cluster is wanted) and (s.authenticated or not authenticated)
        ]

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- handshake ------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        while self._hanging and not self._stopping and not connection.transport.is_closing():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.05)
        if connection.transport.is_closing():
            # The client gave up on the hung handshake. websockets before 17 would
            # still send the response on the closed connection and log the failed
            # assertion at ERROR; ending the handshake as cancelled closes it quietly.
            raise asyncio.CancelledError
        if self._refusing or self._stopping:
            return _reject(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable")
        if _cluster_for_path(request.path) is None:
            return _reject(connection, http.HTTPStatus.NOT_FOUND, f"Not Found: {request.path}")
        return None

    # -- sessions -------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None  # the handshake completed
        cluster = _cluster_for_path(connection.request.path)
        assert cluster is not None  # _process_request rejected anything else
        self._last_session_id += 1
        session = Session(self._last_session_id, cluster, connection)
        self._sessions[session.id] = session
        self.connections_accepted += 1
        if self._stalled:
            connection.transport.pause_reading()
        logger.debug("session %d connected to /%s", session.id, cluster.value)
        self._notify()
        try:
            if await session.send_events([status_event("connected", "Connected Successfully")]):
                await self._converse(session)
        finally:
            session.closing = True
            del self._sessions[session.id]
            await session.stop_sender()
            logger.debug("session %d ended", session.id)
            self._notify()

    async def _converse(self, session: Session) -> None:
        """Read and answer client messages until the connection ends."""
        loop = asyncio.get_running_loop()
        deadline = None if self.auth_timeout is None else loop.time() + self.auth_timeout
        while True:
            timeout = None
            if deadline is not None and not session.authenticated:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    await self._end(session, "auth_timeout", "authentication timed out")
                    return
            try:
                raw = await asyncio.wait_for(session.connection.recv(), timeout)
            except asyncio.TimeoutError:
                continue
            except ConnectionClosed:
                return
            if not await self._answer(session, raw):
                return

    async def _answer(self, session: Session, raw: str | bytes) -> bool:
        """Act on one client message; ``False`` once the session is over."""
        message, problem = parse_message(raw)
        if message is None:
            self._notify()
            return await session.send_events([status_event("error", str(problem))])
        self.actions.append((session.id, session.cluster, message))
        action = message.get("action")
        try:
            if action == "auth":
                return await self._authenticate(session, message.get("params"))
            if action in ("subscribe", "unsubscribe"):
                if not session.authenticated:
                    reply = [status_event("error", f"not authenticated: {action} requires auth")]
                else:
                    reply = apply_subscription(session, str(action), message.get("params"))
                return await session.send_events(reply)
            return await session.send_events([status_event("error", f"unknown action: {action}")])
        finally:
            self._notify()

    async def _authenticate(self, session: Session, key: object) -> bool:
        if session.authenticated:
            return await session.send_events([status_event("error", "already authenticated")])
        accepted = isinstance(key, str) and bool(key)
        if accepted and self.valid_keys is not None:
            accepted = key in self.valid_keys
        session.api_key = key if isinstance(key, str) else None
        if not accepted:
            await self._end(session, "auth_failed", "authentication failed")
            return False
        session.authenticated = True
        if not await session.send_events([status_event("auth_success", "authenticated")]):
            return False
        session.start_sender(lambda: self._batch_size)
        self._evict_extra(session)
        return True

    def _evict_extra(self, newcomer: Session) -> None:
        """Past the per-key limit, the oldest sessions on the key and cluster go."""
        peers = [
            s
            for s in self._targets(newcomer.cluster, authenticated=True)
            if s.api_key == newcomer.api_key
        ]
        excess = len(peers) - self.max_connections_per_key
        for old in peers[: max(excess, 0)]:
            logger.debug("session %d evicted by session %d", old.id, newcomer.id)
            self.evictions += 1
            old.closing = True
            self._spawn(self._end(old, "max_connections", MAX_CONNECTIONS_MESSAGE))

    async def _end(
        self, session: Session, status: str, message: str, code: int = POLICY_VIOLATION
    ) -> None:
        """Send a status event, then close with ``code`` (the service's way to end a session)."""
        session.closing = True
        self._notify()
        await session.send_events([status_event(status, message)])
        with contextlib.suppress(ConnectionClosed):
            await session.connection.close(code, status)

    # -- data -------------------------------------------------------------------

    async def publish(self, cluster: StreamCluster | str, events: list[Event]) -> int:
        """Send ``events`` to every authenticated session on ``cluster`` that wants them.

        Each session gets the events it subscribes to (status events always) as
        one frame, or nothing. Returns how many sessions got a frame.
        """
        sends = []
        for session in self._targets(cluster, authenticated=True):
            wanted = [e for e in events if session.wants(e)]
            if wanted:
                sends.append(session.send_events(wanted))
        return sum(await asyncio.gather(*sends))

    # -- faults -----------------------------------------------------------------

    def drop_connections(self, cluster: StreamCluster | str | None = None) -> int:
        """Abort TCP connections with no close frame, as a network failure would."""
        sessions = self._targets(cluster)
        for session in sessions:
            session.closing = True
            session.connection.transport.abort()
        self._notify()
        return len(sessions)

    async def drop_mid_frame(self, cluster: StreamCluster | str | None = None) -> int:
        """Send the start of a frame (its header promises more), then abort the connection."""
        sessions = self._targets(cluster)
        frame = _partial_frame()
        for session in sessions:
            session.closing = True
            session.connection.transport.write(frame)
        await self._flush([s.connection for s in sessions])
        for session in sessions:
            session.connection.transport.abort()
        self._notify()
        return len(sessions)

    async def _flush(self, connections: list[ServerConnection]) -> None:
        """Wait (briefly) until the bytes written so far have left the process."""
        # Polling is fine: on loopback the kernel takes the bytes at once, and
        # asyncio offers no event for "write buffer empty".
        for _ in range(100):
            if not any(c.transport.get_write_buffer_size() for c in connections):
                return
            await asyncio.sleep(POLL_SECONDS)

    async def close_connections(
        self, code: int = 1000, reason: str = "", cluster: StreamCluster | str | None = None
    ) -> int:
        """Close connections with a close frame carrying ``code`` and ``reason``."""
        sessions = self._targets(cluster)
        for session in sessions:
            session.closing = True
        self._notify()
        await asyncio.gather(
            *(s.connection.close(code, reason) for s in sessions), return_exceptions=True
        )
        return len(sessions)

    async def send_raw(
        self,
        data: str | bytes,
        cluster: StreamCluster | str | None = None,
        *,
        text: bool | None = None,
    ) -> int:
        """Send ``data`` as it is: a ``str`` as a text frame, ``bytes`` as a binary
        frame, or as a text frame with ``text=True`` (unchecked: invalid UTF-8 too)."""
        targets = self._targets(cluster)
        results = await asyncio.gather(*(_send(s.connection, data, text) for s in targets))
        return sum(results)

    async def send_status(
        self,
        status: str,
        message: str,
        cluster: StreamCluster | str | None = None,
        close_code: int | None = None,
    ) -> int:
        """Send a status event to every session; then close them if ``close_code`` is given."""
        sessions = self._targets(cluster)
        if close_code is None:
            results = await asyncio.gather(
                *(s.send_events([status_event(status, message)]) for s in sessions)
            )
            return sum(results)
        await asyncio.gather(*(self._end(s, status, message, close_code) for s in sessions))
        return len(sessions)

    def stall(self, stalled: bool = True) -> None:
        """Stop (or resume) reading from clients and generating data.

        A stalled server leaves client pings unanswered, which is how a client
        notices a server that hangs without closing anything.
        """
        self._stalled = stalled
        for session in self._sessions.values():
            transport = session.connection.transport
            if stalled:
                transport.pause_reading()
            elif not transport.is_closing():
                transport.resume_reading()

    def refuse_connections(self, refuse: bool = True) -> None:
        """Answer new handshakes with HTTP 503."""
        self._refusing = refuse

    def hang_handshakes(self, hang: bool = True) -> None:
        """Leave new handshakes unanswered (until this is turned off or the server stops)."""
        self._hanging = hang
        self._notify()


def _partial_frame() -> bytes:
    """The header and first half of a text frame that looks like real data."""
    payload = (
        b"["
        + b",".join(
            b'{"ev":"T","sym":"AAPL","x":4,"i":"%d","z":3,"p":190.01,"s":100,"c":[],"t":%d,"q":%d}'
            % (n, 1_700_000_000_000 + n, n)
            for n in range(8)
        )
        + b"]"
    )
    # FIN + text opcode, then a 16-bit length: the whole payload is announced
    # but only half of it follows.
    header = bytes([0x81, 126]) + len(payload).to_bytes(2, "big")
    return header + payload[: len(payload) // 2]


async def _send(connection: ServerConnection, data: str | bytes, text: bool | None = None) -> bool:
    try:
        await connection.send(data, text=text)
    except ConnectionClosed:
        return False
    return True


def _reject(connection: ServerConnection, status: http.HTTPStatus, text: str) -> Response:
    return connection.respond(status, text + "\n")
