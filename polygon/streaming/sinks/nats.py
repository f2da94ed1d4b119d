"""NATS JetStream: :class:`NatsJetStreamSink` publishes, :class:`NatsJetStreamConsumer` reads back.

Needs the ``nats`` extra: ``pip install 'polygon-streaming[nats]'`` (nats-py).

The sink publishes on the subjects its template names:
``polygon.{cluster}.{ev}`` by default, one subject per event code
(``polygon.stocks.T``), or :data:`PER_SYMBOL_SUBJECT_TEMPLATE`,
``polygon.{cluster}.{ev}.{sym}``, one per event code and symbol
(``polygon.stocks.T.AAPL``). With ``packing="batch"`` (the default), each
written batch becomes one message per subject, whose data is the subject's
events of the batch in order: a JSON array of frames, each a JSON array of
events (the frame's text as the service sent it whenever the frame went whole
to this subject), split in several messages when it would pass the server's
``max_payload``. With ``packing="event"`` each event is a message, its data
the event as JSON.

The messages of a batch are published one after the other, each with a reply
subject for its acknowledgement, and the sink waits once for all of them: no
publish waits for the one before. (JetStream's batch publishing, in
nats-server 2.12 and 2.14, was weighed and left: a batch is already a handful
of messages, so acknowledgements cost little, and fast batches do not take
the ``Nats-Msg-Id`` the repeats are dropped by.)

Symbols may hold characters that do not belong in a subject token, so every
value put into a subject goes through :func:`subject_token`, which replaces
``.``, ``:``, ``/``, ``*``, ``>`` and whitespace with ``_`` (``BRK.B`` ->
``BRK_B``, ``O:SPY251219C00650000`` -> ``O_SPY251219C00650000``, ``EUR/USD`` ->
``EUR_USD``). The symbols of one cluster do not collide this way in practice,
and the event itself keeps the symbol as it was; compute a subject to filter on
with the same function.

Every message carries a ``Nats-Msg-Id`` header made of the sink's id (16 hex
digits chosen at random) and its number for the message's first event (the
sink numbers its events 0, 1, 2, ... in the order the client received them).
When a batch is published again after a failure, JetStream drops the messages
it already has within the stream's duplicate window (two minutes unless the
stream says otherwise), so the stream holds each event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from typing import Any, Literal

import orjson

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext
    from nats.js.api import ConsumerConfig, DeliverPolicy
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "polygon.streaming.sinks.nats needs the nats extra: pip install 'polygon-streaming[nats]'"
    ) from exc

from polygon.streaming._backoff import Backoff
from polygon.streaming.errors import ConfigurationError, PolygonStreamError
from polygon.streaming.sinks._base import (
    Batch,
    BufferedSink,
    Event,
    EventSource,
    Packing,
    check_packing,
)
from polygon.streaming.sinks._topics import (
    CodeNames,
    SymbolFilter,
    TopicCache,
    check_template,
    group_batch,
    unpack_batch,
    unpack_event,
    uses_symbol,
)

__all__ = [
    "BATCH_STREAM_OPTIONS",
    "DEFAULT_STREAM_OPTIONS",
    "DEFAULT_SUBJECT_TEMPLATE",
    "PER_SYMBOL_SUBJECT_TEMPLATE",
    "NatsJetStreamConsumer",
    "NatsJetStreamSink",
    "PublishRefusedError",
    "default_stream_name",
    "subject_token",
]

#: One subject per event code: the fast layout, for a firehose.
DEFAULT_SUBJECT_TEMPLATE = "polygon.{cluster}.{ev}"
#: One subject per event code and symbol: consumers pick symbols by subject.
PER_SYMBOL_SUBJECT_TEMPLATE = "polygon.{cluster}.{ev}.{sym}"
#: What a stream the sink creates with ``packing="event"`` is limited to,
#: unless ``stream_options`` says otherwise: 100,000 events per subject.
DEFAULT_STREAM_OPTIONS: dict[str, Any] = {"max_msgs_per_subject": 100_000}
#: What a stream the sink creates with ``packing="batch"`` is limited to, unless
#: ``stream_options`` says otherwise: 10,000 messages (batches) per subject, and
#: 1 GiB in all.
BATCH_STREAM_OPTIONS: dict[str, Any] = {"max_msgs_per_subject": 10_000, "max_bytes": 1 << 30}

logger = logging.getLogger("polygon.streaming.sinks")

_UNSAFE = str.maketrans(dict.fromkeys(".:/*> \t\r\n\f\v", "_"))
# The message id header: JetStream drops a message whose id it has seen.
_MSG_ID = "Nats-Msg-Id"
# Room left in a message for its headers, under the server's max_payload.
_HEADER_ROOM = 1024


def subject_token(value: str) -> str:
    """``value`` as one subject token: ``. : / * >`` and whitespace become ``_``.

    ``subject_token("BRK.B") == "BRK_B"``; an empty value becomes ``_``.
    """
    return value.translate(_UNSAFE) or "_"


def default_stream_name(cluster: str) -> str:
    """The stream a sink creates for a cluster by default: ``POLYGON_STOCKS`` for stocks."""
    return f"POLYGON_{subject_token(str(cluster)).upper()}"


def _stream_subjects(template: str, cluster: str) -> list[str]:
    """The subjects a stream needs to hold everything ``template`` produces for a cluster.

    The tokens before the first one that depends on the event, then ``>``:
    ``polygon.{cluster}.{ev}.{sym}`` -> ``polygon.stocks.>``.
    """
    fixed: list[str] = []
    for token in template.split("."):
        if "{ev}" in token or "{sym}" in token:
            if not fixed:
                raise ConfigurationError(
                    f"subject_template {template!r} starts with {{ev}} or {{sym}}: "
                    "give stream_subjects"
                )
            return [".".join([*fixed, ">"])]
        fixed.append(token.format(cluster=subject_token(cluster)))
    return [".".join(fixed)]


class NatsJetStreamSink(BufferedSink):
    """Publish every event a client receives to a NATS JetStream stream.

    .. code-block:: python

        sink = NatsJetStreamSink("nats://localhost:4222")
        await client.add_sink(sink)

    On connecting, the sink creates its stream if it is missing (``POLYGON_STOCKS``
    with subjects ``polygon.stocks.>`` for the stocks cluster by default). The
    messages of a batch are published one after the other without waiting,
    each asking for an acknowledgement; the batch counts as written once
    JetStream has acknowledged every message of it.

    :param servers: the server, or a list of servers, as ``nats://host:port``
        (``tls://`` for TLS).
    :param subject_template: the subject of an event, from ``{cluster}``,
        ``{ev}`` (the event code) and ``{sym}`` (the symbol), each made a valid
        token by :func:`subject_token`: one subject per event code by default;
        :data:`PER_SYMBOL_SUBJECT_TEMPLATE` gives one per event code and
        symbol, which lets a consumer read only some symbols, at a cost (see
        :doc:`/scaling`).
    :param packing: ``"batch"``: one message per subject per written batch,
        holding its events as a JSON array; ``"event"``: one message per event.
    :param stream: the JetStream stream; by default ``POLYGON_<CLUSTER>``
        (:func:`default_stream_name`).
    :param stream_subjects: the subjects the stream is created with; by default
        the template's fixed start followed by ``>`` (``polygon.stocks.>``).
    :param create_stream: create the stream when it is missing. An existing
        stream is used as it is.
    :param stream_options: settings for a stream the sink creates, as
        nats-py's ``add_stream`` takes them: ``max_age`` (seconds),
        ``max_bytes``, ``max_msgs_per_subject``, ``duplicate_window``,
        ``num_replicas``, ``storage``... They are added to
        :data:`BATCH_STREAM_OPTIONS` (``packing="batch"``) or
        :data:`DEFAULT_STREAM_OPTIONS` (``packing="event"``).
    :param ack_timeout: seconds to wait for a batch's acknowledgements; past
        this, or when the connection drops, the sink reconnects and publishes
        the batch again.
    :param connect_timeout: seconds allowed to connect.
    :param max_buffered_events: events that may wait for JetStream; beyond this,
        new events are refused and counted in ``stats.dropped``.
    :param batch_size: the most events published before waiting for their
        acknowledgements.
    :param retry_delay: the first delay after a failure, doubled per failure up
        to a minute.
    :param include_status: also publish the connection's status events.
    :param connect_options: passed to ``nats.connect`` (``user``, ``password``,
        ``token``, ``tls``, ``user_credentials``...).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://localhost:4222",
        *,
        subject_template: str = DEFAULT_SUBJECT_TEMPLATE,
        packing: Packing = "batch",
        stream: str | None = None,
        stream_subjects: Sequence[str] | None = None,
        create_stream: bool = True,
        stream_options: Mapping[str, Any] | None = None,
        ack_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        max_buffered_events: int = 100_000,
        batch_size: int = 50_000,
        retry_delay: float = 0.5,
        include_status: bool = False,
        **connect_options: Any,
    ) -> None:
        super().__init__(
            max_buffered_events=max_buffered_events,
            batch_size=batch_size,
            retry_delay=retry_delay,
            include_status=include_status,
        )
        check_template(subject_template, "subject_template")
        check_packing(packing)
        if stream_subjects is None:
            _stream_subjects(subject_template, "cluster")  # raises early when it cannot
        self.servers = servers
        self.subject_template = subject_template
        self.packing = packing
        self._stream = stream
        self._stream_subjects = list(stream_subjects) if stream_subjects is not None else None
        self.create_stream = create_stream
        limits = BATCH_STREAM_OPTIONS if packing == "batch" else DEFAULT_STREAM_OPTIONS
        self.stream_options = {**limits, **(stream_options or {})}
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.producer = secrets.token_hex(8)
        self._options = connect_options
        self._nc: NatsClient | None = None
        self._lost: asyncio.Event | None = None
        self._inbox = ""
        self._generation = 0
        self._batch: _Acks | None = None
        self._subjects: TopicCache[str] = TopicCache(self, self._render_subject)
        self._code_subjects = (
            None if uses_symbol(subject_template) else CodeNames(self, self._render_subject)
        )
        self._keeps_events = packing == "event" or self._code_subjects is None

    def __repr__(self) -> str:
        return f"<NatsJetStreamSink {self.subject_template!r} stream {self.stream!r}>"

    @property
    def stream(self) -> str:
        """The JetStream stream the sink publishes to."""
        if self._stream is not None:
            return self._stream
        return default_stream_name(self.cluster.value if self.cluster else "stocks")

    @property
    def stream_subjects(self) -> list[str]:
        """The subjects the sink creates its stream with."""
        if self._stream_subjects is not None:
            return list(self._stream_subjects)
        cluster = self.cluster.value if self.cluster else "stocks"
        return _stream_subjects(self.subject_template, cluster)

    def subject_for(self, event: Event) -> str:
        """The subject ``event`` is published on."""
        return self._render_subject(self.topic_fields(event))

    def _render_subject(self, fields: dict[str, str]) -> str:
        return self.subject_template.format(
            **{name: subject_token(value) for name, value in fields.items()}
        )

    # -- BufferedSink ---------------------------------------------------------------------

    async def _connect(self) -> None:
        lost = asyncio.Event()

        async def on_lost() -> None:
            lost.set()
            if self._batch is not None:
                self._batch.done.set()

        async def on_error(error: Exception) -> None:
            logger.debug("NatsJetStreamSink: %s", error)

        servers = [self.servers] if isinstance(self.servers, str) else list(self.servers)
        nc = await nats.connect(
            servers,
            allow_reconnect=False,  # the sink reconnects, and knows what to publish again
            connect_timeout=self.connect_timeout,
            error_cb=on_error,
            disconnected_cb=on_lost,
            closed_cb=on_lost,
            **self._options,
        )
        try:
            if self.create_stream:
                await self._ensure_stream(nc.jetstream(timeout=self.ack_timeout))
            # Every acknowledgement comes to one subscription of this connection.
            self._inbox = f"_INBOX.{secrets.token_hex(11)}."
            await nc.subscribe(
                self._inbox + ">",
                cb=self._on_ack,
                pending_msgs_limit=max(65536, 2 * self.batch_size),
            )
        except BaseException:
            await _quietly(nc.close())
            raise
        self._nc, self._lost = nc, lost

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        name = self.stream
        try:
            await js.stream_info(name)
            return
        except nats.js.errors.NotFoundError:
            pass
        try:
            await js.add_stream(name=name, subjects=self.stream_subjects, **self.stream_options)
            logger.info("NatsJetStreamSink: created stream %s", name)
        except nats.js.errors.BadRequestError:
            await js.stream_info(name)  # made meanwhile by another sink: fine

    async def _write(self, batch: Batch) -> None:
        nc, lost = self._nc, self._lost
        if nc is None or lost is None or lost.is_set():
            raise nats.errors.ConnectionClosedError
        if self.packing == "batch":
            messages = self._batch_messages(batch, nc.max_payload - _HEADER_ROOM)
        else:
            messages = self._event_messages(batch)
        # Each message asks for JetStream's acknowledgement on a subject of this
        # batch; the batch is written once every message is acknowledged. (This
        # is what nats-py's publish_async does, without a future and a parsed
        # reply per message, which cost more than the rest of the sink when
        # each event is a message.)
        self._generation += 1
        acks = self._batch = _Acks(f"{self._inbox}{self._generation}.", len(messages))
        publish, producer = nc.publish, self.producer
        try:
            for index, (subject, msg_id, payload) in enumerate(messages):
                await publish(
                    subject,
                    payload,
                    reply=f"{acks.prefix}{index}",
                    headers={_MSG_ID: f"{producer}-{msg_id}"},
                )
            if messages:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(acks.done.wait(), self.ack_timeout)
        finally:
            self._batch = None
        if acks.refused is not None:
            raise PublishRefusedError(acks.refused.decode(errors="replace"))
        if acks.acked < acks.expected:
            if lost.is_set():
                raise nats.errors.ConnectionClosedError
            raise nats.errors.TimeoutError

    def _batch_messages(self, batch: Batch, limit: int) -> list[tuple[str, str, bytes]]:
        """(subject, message id, data) of one message per subject, split to fit ``limit``."""
        groups = group_batch(batch, self._subjects, self._code_subjects)
        messages = []
        for subject, group in groups.items():
            for chunk in group.chunks():
                payload = b"".join(chunk.payload())
                if len(payload) <= limit:
                    pieces = [(chunk.offset, payload)]
                else:
                    pieces = self._pieces(batch, chunk.events(), chunk.offset, limit)
                for offset, data in pieces:
                    msg_id = f"{group.first}" if offset == 0 else f"{group.first}.{offset}"
                    messages.append((subject, msg_id, data))
        return messages

    def _pieces(
        self, batch: Batch, events: list[Event], offset: int, limit: int
    ) -> list[tuple[int, bytes]]:
        """``events`` as JSON arrays of at most ``limit`` bytes, halved until they fit.

        Each piece comes with the offset of its first event in the group. An
        event that does not fit on its own is left out, logged and counted.
        """
        payload = b"[" + orjson.dumps(events, default=str) + b"]"
        if len(payload) <= limit:
            return [(offset, payload)]
        if len(events) == 1:
            batch.refused += 1
            logger.error(
                "NatsJetStreamSink: an event of %d bytes is over the server's limit; dropped",
                len(payload),
            )
            return []
        half = len(events) // 2
        return self._pieces(batch, events[:half], offset, limit) + self._pieces(
            batch, events[half:], offset + half, limit
        )

    def _event_messages(self, batch: Batch) -> list[tuple[str, str, bytes]]:
        """(subject, message id, data) of one message per event."""
        subject, dumps, number = self._subjects, orjson.dumps, batch.first
        messages = []
        for event in batch.events():
            messages.append((subject(event), f"{number}", dumps(event, default=str)))
            number += 1
        return messages

    async def _on_ack(self, msg: Msg) -> None:
        acks = self._batch
        if acks is None or not msg.subject.startswith(acks.prefix):
            return  # a late acknowledgement of a batch given up on
        data = msg.data
        if not data or b'"error"' in data:
            # An error, or no stream for the subject (an empty 503 status).
            acks.refused = data or str(msg.headers or "no responders").encode()
            acks.done.set()
            return
        acks.acked += 1
        if acks.acked >= acks.expected:
            acks.done.set()

    async def _disconnect(self) -> None:
        nc = self._nc
        self._nc = self._lost = None
        if nc is not None:
            await _quietly(nc.close())


class PublishRefusedError(PolygonStreamError):
    """JetStream answered a publish with an error (the batch is published again)."""


class _Acks:
    """The acknowledgements the messages of one batch are waiting for."""

    __slots__ = ("acked", "done", "expected", "prefix", "refused")

    def __init__(self, prefix: str, expected: int) -> None:
        self.prefix = prefix
        self.expected = expected
        self.acked = 0
        self.refused: bytes | None = None
        self.done = asyncio.Event()


class NatsJetStreamConsumer(EventSource):
    """Read back what :class:`NatsJetStreamSink` published, as the same event dicts.

    .. code-block:: python

        async with NatsJetStreamConsumer("nats://localhost:4222",
                                         subjects="polygon.stocks.T") as consumer:
            async for event in consumer:
                print(event["sym"], event["p"])

    Messages come in stream order, so the events of a symbol come in the order
    the client received them; a message holding a batch yields its events one
    by one. The consumer is an ephemeral ordered consumer (pushed, with flow
    control, no acknowledgements): when it falls behind, JetStream waits for
    it. When the connection drops, the consumer reconnects and starts again
    after the last message whose events were all yielded (:attr:`sequence`),
    so nothing is skipped or repeated. Pass that sequence plus one as
    ``start`` to resume in a later process (a batch left half-read is then
    read again whole).

    :param servers: the server, or a list of servers, as for the sink.
    :param stream: the stream to read; by default ``POLYGON_<CLUSTER>`` for ``cluster``.
    :param cluster: the cluster whose default stream is read, and which says
        where an event holds its symbol (for ``symbols``).
    :param subjects: read only these subjects (a subject or a list, wildcards
        allowed: ``polygon.stocks.T.*``); by default the whole stream.
    :param symbols: yield only the events of these symbols (as the events hold
        them, ``"BRK.B"``). The consumer still receives every event of its
        subjects and drops the others; with :data:`PER_SYMBOL_SUBJECT_TEMPLATE`,
        ``subjects`` picks symbols on the server instead.
    :param start: ``"all"`` from the oldest message kept, ``"new"`` only messages
        stored from now on, or the stream sequence number to start at.
    :param max_pending: messages received and not yet yielded before the
        consumer stops taking more (and flow control holds JetStream back).
    :param max_pending_bytes: the same limit in bytes of message data (a
        message of a batch holds many events).
    :param heartbeat: seconds between JetStream's heartbeats while idle; two
        missed make the consumer start again from where it was.
    :param retry_delay: the first delay before reconnecting, doubled per
        failure up to a minute.
    :param connect_timeout: seconds allowed to connect.
    :param connect_options: passed to ``nats.connect``.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://localhost:4222",
        *,
        stream: str | None = None,
        cluster: str = "stocks",
        subjects: str | Sequence[str] | None = None,
        symbols: Iterable[str] | None = None,
        start: Literal["all", "new"] | int = "all",
        max_pending: int = 10_000,
        max_pending_bytes: int = 64 * 2**20,
        heartbeat: float = 5.0,
        retry_delay: float = 0.5,
        connect_timeout: float = 5.0,
        **connect_options: Any,
    ) -> None:
        if max_pending < 1 or max_pending_bytes < 1 or heartbeat <= 0:
            raise ConfigurationError(
                "max_pending, max_pending_bytes and heartbeat must be positive, not "
                f"{max_pending!r}, {max_pending_bytes!r} and {heartbeat!r}"
            )
        if not isinstance(start, int) and start not in ("all", "new"):
            raise ConfigurationError(
                f"start must be 'all', 'new' or a sequence number, not {start!r}"
            )
        self.servers = servers
        self.stream = stream if stream is not None else default_stream_name(cluster)
        self.subjects = [subjects] if isinstance(subjects, str) else list(subjects or [])
        self.symbols = SymbolFilter(symbols, cluster) if symbols is not None else None
        self.start = start
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        #: The stream sequence of the last message whose events were all yielded (0: none yet).
        self.sequence = 0 if not isinstance(start, int) else max(start - 1, 0)
        #: Connections made after the first.
        self.reconnects = 0
        #: Messages skipped because they held no JSON events.
        self.malformed = 0
        self._options = connect_options
        self._backoff = Backoff(retry_delay)
        self._nc: NatsClient | None = None
        self._received: deque[Msg] = deque()
        self._received_bytes = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._positioned = isinstance(start, int) or start == "all"
        self._connections = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"<NatsJetStreamConsumer stream {self.stream!r} at sequence {self.sequence}>"

    async def close(self) -> None:
        """Stop: an ``async for`` over this consumer ends at its next wait."""
        self._closed = True
        self._arrived.set()
        await self._drop()

    async def _events(self) -> AsyncIterator[Event]:
        received = self._received
        while not self._closed:
            if not received:
                await self._wait_for_messages()
                continue
            self._backoff.reset()
            message = received.popleft()
            self._received_bytes -= len(message.data)
            if self._has_room():
                self._room.set()
            sequence = message.metadata.sequence.stream
            if sequence <= self.sequence:
                continue  # already yielded (a consumer made again after a failure)
            events = self._unpack(message.data)
            # The sequence moves on before the message's last event is handed
            # out: a consumer stopped inside a message reads it again whole.
            if len(events) > 1:
                for event in events[:-1]:
                    yield event
            self.sequence = sequence
            if events:
                yield events[-1]

    async def _wait_for_messages(self) -> None:
        """Subscribed (again, after a failure), then until messages come or a heartbeat passes."""
        try:
            await self._subscribed()
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), self.heartbeat)
        except (nats.errors.Error, OSError) as exc:
            if self._closed:
                return
            delay = self._backoff.next_delay()
            logger.warning("NatsJetStreamConsumer: %r; reconnecting in %.2f s", exc, delay)
            await self._drop()
            await asyncio.sleep(delay)

    def _unpack(self, data: bytes) -> list[Event]:
        """The events of a message: a batch of them (``[`` first), or one."""
        events = unpack_batch(data) if data[:1] == b"[" else unpack_event(data)
        if events is None:
            self.malformed += 1
            logger.warning("NatsJetStreamConsumer: skipped a message that holds no JSON events")
            return []
        return events if self.symbols is None else self.symbols(events)

    def _has_room(self) -> bool:
        return (
            len(self._received) <= self.max_pending // 2
            and self._received_bytes <= self.max_pending_bytes // 2
        )

    async def _on_message(self, message: Msg) -> None:
        # nats-py calls this for one message at a time: while it waits for room,
        # the rest wait in the subscription, and flow control stops JetStream.
        if (
            len(self._received) >= self.max_pending
            or self._received_bytes >= self.max_pending_bytes
        ):
            self._room.clear()
            await self._room.wait()
        self._received.append(message)
        self._received_bytes += len(message.data)
        self._arrived.set()

    async def _subscribed(self) -> None:
        """Connected, with an ordered consumer starting after :attr:`sequence`."""
        nc = self._nc
        if nc is not None and nc.is_connected:
            return
        await self._drop()

        async def on_closed() -> None:
            self._arrived.set()

        nc = await nats.connect(
            [self.servers] if isinstance(self.servers, str) else list(self.servers),
            allow_reconnect=False,
            connect_timeout=self.connect_timeout,
            error_cb=_log_error,
            closed_cb=on_closed,
            **self._options,
        )
        try:
            js = nc.jetstream()
            if not self._positioned:  # start="new": after what the stream holds now
                info = await js.stream_info(self.stream)
                self.sequence = info.state.last_seq
                self._positioned = True
            config = ConsumerConfig(opt_start_seq=self.sequence + 1)
            if len(self.subjects) > 1:
                config.filter_subjects = list(self.subjects)
            await js.subscribe(
                self.subjects[0] if len(self.subjects) == 1 else "",
                stream=self.stream,
                cb=self._on_message,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                idle_heartbeat=self.heartbeat,
                config=config,
            )
        except BaseException:
            await _quietly(nc.close())
            raise
        self._connections += 1
        if self._connections > 1:
            self.reconnects += 1
        self._nc = nc

    async def _drop(self) -> None:
        nc, self._nc = self._nc, None
        self._room.set()  # a callback waiting for room must not hold up the close
        if nc is not None:
            await _quietly(nc.close())


async def _log_error(error: Exception) -> None:
    logger.debug("NatsJetStreamConsumer: %s", error)


async def _quietly(closing: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, 2.0)
