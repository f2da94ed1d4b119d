"""Redis Streams: :class:`RedisStreamsSink` publishes, :class:`RedisStreamsConsumer` reads back.

Needs the ``redis`` extra: ``pip install 'polygon-streaming[redis]'`` (redis-py
and its hiredis parser).

The sink adds entries (``XADD``) to the streams its key template names:
``polygon:{cluster}:{ev}`` by default, one stream per event code
(``polygon:stocks:T``), or :data:`PER_SYMBOL_KEY_TEMPLATE`,
``polygon:{cluster}:{ev}:{sym}``, one per event code and symbol
(``polygon:stocks:T:AAPL``). With ``packing="batch"`` (the default), each
written batch becomes one entry per stream, with three fields:

``b``
    the stream's events of the batch, in order: a JSON array of frames, each
    a JSON array of events, the frame's text as the service sent it whenever
    the frame went whole to this stream;
``p``
    the producer: 16 hex digits chosen at random by each sink;
``n``
    the producer's number for the entry's first event (it numbers its events
    0, 1, 2, ... in the order received).

With ``packing="event"`` each event is an entry of its own, its JSON in the
field ``e`` (and ``p`` and ``n`` as above).

A batch is one pipeline of ``XADD`` commands (no transaction), each trimming
its stream with ``MAXLEN``. When a batch fails part way, the sink writes the
same batch again after reconnecting: entries it had already added are then in
the stream twice, with the same ``p`` and ``n``. :class:`RedisStreamsConsumer`
skips those repeats, so what it yields is exactly what the client received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import orjson

try:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import ConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "polygon.streaming.sinks.redis needs the redis extra: "
        "pip install 'polygon-streaming[redis]'"
    ) from exc

from polygon.enums import StreamCluster
from polygon.streaming._backoff import Backoff
from polygon.streaming.errors import ConfigurationError
from polygon.streaming.sinks._base import (
    Batch,
    BufferedSink,
    Event,
    EventSource,
    Packing,
    check_packing,
)
from polygon.streaming.sinks._topics import (
    CACHE_LIMIT,
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
    "DEFAULT_KEY_TEMPLATE",
    "PER_SYMBOL_KEY_TEMPLATE",
    "RedisStreamsConsumer",
    "RedisStreamsSink",
]

#: One stream per event code: the fast layout, for a firehose.
DEFAULT_KEY_TEMPLATE = "polygon:{cluster}:{ev}"
#: One stream per event code and symbol: consumers pick symbols by key.
PER_SYMBOL_KEY_TEMPLATE = "polygon:{cluster}:{ev}:{sym}"

logger = logging.getLogger("polygon.streaming.sinks")

# How fast the running mean of a stream's entry size follows a change of rate.
_ENTRY_SIZE_WEIGHT = 0.2


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class RedisStreamsSink(BufferedSink):
    """Publish every event a client receives to Redis Streams.

    .. code-block:: python

        sink = RedisStreamsSink("redis://localhost:6379/0", maxlen=100_000)
        await client.add_sink(sink)

    :param url: the server, as ``redis://[[user]:password@]host[:port][/db]``,
        ``rediss://`` for TLS, or ``unix://path``.
    :param key_template: the stream of an event, from ``{cluster}``, ``{ev}``
        (the event code) and ``{sym}`` (the symbol): one stream per event code
        by default; :data:`PER_SYMBOL_KEY_TEMPLATE` gives one per event code
        and symbol, which lets a consumer read only some symbols, at a cost
        (see :doc:`/scaling`).
    :param packing: ``"batch"``: one entry per stream per written batch,
        holding its events as a JSON array; ``"event"``: one entry per event.
    :param maxlen: trim each stream to about this many events; ``None`` never
        trims. With ``packing="batch"`` the sink turns it into a number of
        entries from the mean size of the stream's recent entries.
    :param approximate: ``False`` trims to exactly the number of entries
        (``MAXLEN =``, which costs Redis more) rather than ``MAXLEN ~``.
    :param timeout: seconds allowed to connect, and for the replies to a batch;
        a broker that does not answer in time is reconnected to and the batch
        written again.
    :param max_buffered_events: events that may wait for Redis; beyond this,
        new events are refused and counted in ``stats.dropped``.
    :param batch_size: the most events in one pipeline.
    :param retry_delay: the first delay after a failure, doubled per failure up
        to a minute.
    :param include_status: also publish the connection's status events.
    :param connection_options: passed to redis-py's
        ``ConnectionPool.from_url`` (for example ``ssl_ca_certs``).
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        packing: Packing = "batch",
        maxlen: int | None = 1_000_000,
        approximate: bool = True,
        timeout: float = 5.0,
        max_buffered_events: int = 100_000,
        batch_size: int = 50_000,
        retry_delay: float = 0.5,
        include_status: bool = False,
        **connection_options: Any,
    ) -> None:
        super().__init__(
            max_buffered_events=max_buffered_events,
            batch_size=batch_size,
            retry_delay=retry_delay,
            include_status=include_status,
        )
        check_template(key_template, "key_template")
        check_packing(packing)
        if maxlen is not None and maxlen < 1:
            raise ConfigurationError(f"maxlen must be positive, or None, not {maxlen!r}")
        self.url = url
        self.key_template = key_template
        self.packing = packing
        self.maxlen = maxlen
        self.approximate = approximate
        self.timeout = timeout
        self.producer = secrets.token_hex(8)
        self._options = connection_options
        self._pool: ConnectionPool | None = None
        self._conn: Any = None
        self._prefixes: TopicCache[bytes] = TopicCache(self, self._command_prefix)
        self._keys: TopicCache[bytes] = TopicCache(self, self._render_key)
        self._code_keys = None if uses_symbol(key_template) else CodeNames(self, self._render_key)
        self._keeps_events = packing == "event" or self._code_keys is None
        # The running mean of the events per entry of each stream (packing="batch").
        self._entry_sizes: dict[bytes, float] = {}
        self._suffix = _bulk(b"p") + _bulk(self.producer.encode()) + _bulk(b"n")

    def __repr__(self) -> str:
        return f"<RedisStreamsSink {self.key_template!r} at {_redacted(self.url)}>"

    def key_for(self, event: Event) -> str:
        """The stream key ``event`` is added to."""
        return self.key_template.format(**self.topic_fields(event))

    # -- BufferedSink ---------------------------------------------------------------------

    async def _connect(self) -> None:
        pool = ConnectionPool.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            **self._options,
        )
        # One connection of our own: redis-py handles TLS, AUTH, SELECT and the
        # protocol version; the commands are packed below. (Typed Any: redis-py
        # leaves some of these methods unannotated, depending on its version.)
        make_connection: Any = pool.make_connection
        conn = make_connection()
        try:
            await asyncio.wait_for(conn.connect(), self.timeout)
        except BaseException:
            await _quietly(pool.disconnect())
            raise
        self._pool, self._conn = pool, conn

    async def _write(self, batch: Batch) -> None:
        conn = self._conn
        if conn is None:
            raise RedisConnectionError("not connected")
        # The commands are packed here rather than by redis-py's pipeline, which
        # spends more time encoding them than Redis spends running them.
        if self.packing == "batch":
            pieces, replies = self._batch_commands(batch)
        else:
            pieces = self._event_commands(batch)
            replies = len(pieces)
        await conn.send_packed_command(pieces, check_health=False)
        # One deadline for the batch's replies (a deadline per reply costs more
        # than reading it); the first error reply is raised.
        await asyncio.wait_for(_read_replies(conn, replies), self.timeout)

    async def _disconnect(self) -> None:
        conn, pool = self._conn, self._pool
        self._conn = self._pool = None
        if conn is not None:
            await _quietly(conn.disconnect(nowait=True))
        if pool is not None:
            await _quietly(pool.disconnect())

    # -- packing ---------------------------------------------------------------------------

    def _batch_commands(self, batch: Batch) -> tuple[list[bytes], int]:
        """One ``XADD key [MAXLEN ~ n] * b <events> p <producer> n <first>`` per
        run of a stream's frames, and how many.

        In pieces, each frame's text on its own: they are written as they are,
        without copying the (large) texts into one command first.
        """
        groups = group_batch(batch, self._keys, self._code_keys)
        suffix = self._suffix
        pieces: list[bytes] = []
        entries = 0
        for key, group in groups.items():
            for chunk in group.chunks():
                trim = self._trim_args(key, chunk.size)
                payload = chunk.payload()
                pieces.append(
                    b"*%d\r\n$4\r\nXADD\r\n" % (9 + len(trim))
                    + _bulk(key)
                    + b"".join(trim)
                    + b"$1\r\n*\r\n$1\r\nb\r\n$%d\r\n" % sum(map(len, payload))
                )
                pieces.extend(payload)
                pieces.append(b"\r\n" + suffix + _bulk(b"%d" % (group.first + chunk.offset)))
                entries += 1
        return pieces, entries

    def _trim_args(self, key: bytes, count: int) -> list[bytes]:
        """``MAXLEN ~ n``, n entries holding about ``maxlen`` events of this stream."""
        if self.maxlen is None:
            return []
        sizes = self._entry_sizes
        mean = sizes.get(key)
        if mean is None:
            if len(sizes) >= CACHE_LIMIT:
                sizes.clear()  # a bound, as for the names: one mean per stream
            mean = float(count)
        mean += (count - mean) * _ENTRY_SIZE_WEIGHT
        sizes[key] = mean
        entries = max(1, math.ceil(self.maxlen / mean))
        how = b"~" if self.approximate else b"="
        return [b"$6\r\nMAXLEN\r\n", _bulk(how), _bulk(b"%d" % entries)]

    def _event_commands(self, batch: Batch) -> list[bytes]:
        """One ``XADD key [MAXLEN ~ n] * e <event> p <producer> n <number>`` per event."""
        number = batch.first
        prefix, suffix, dumps = self._prefixes, self._suffix, orjson.dumps
        commands = []
        for event in batch.events():
            commands.append(
                prefix(event) + _bulk(dumps(event, default=str)) + suffix + _bulk(b"%d" % number)
            )
            number += 1
        return commands

    def _render_key(self, fields: dict[str, str]) -> bytes:
        return self.key_template.format(**fields).encode()

    def _command_prefix(self, fields: dict[str, str]) -> bytes:
        """``XADD key [MAXLEN ~ n] * e``, packed, for one stream (packing="event")."""
        args = [b"XADD", self._render_key(fields)]
        if self.maxlen is not None:
            args += [b"MAXLEN", b"~" if self.approximate else b"=", b"%d" % self.maxlen]
        args += [b"*", b"e"]
        count = len(args) + 5  # the event, then p <producer> n <number>
        return b"*%d\r\n" % count + b"".join(_bulk(a) for a in args)


class RedisStreamsConsumer(EventSource):
    """Read back what :class:`RedisStreamsSink` published, as the same event dicts.

    .. code-block:: python

        async with RedisStreamsConsumer("redis://localhost:6379/0",
                                        pattern="polygon:stocks:*") as consumer:
            async for event in consumer:
                print(event["sym"], event["p"])

    Each stream is read in order (``XREAD``), so the events of a symbol come in
    the order the client received them. Entries of either packing are
    unpacked: an entry holding a batch yields its events one by one. Streams
    that appear later (an event code's or a symbol's first event) are found by
    ``SCAN`` every ``discover_interval`` seconds and read from their start.
    The consumer reconnects by itself and goes on from where it was;
    :attr:`positions` holds the id of the last entry whose events were all
    yielded, per stream (save it to resume a later consumer with
    ``start=positions``: a batch left half-read is then read again whole).

    :param url: the server, as for :class:`RedisStreamsSink`.
    :param keys: read exactly these streams; by default the streams whose keys
        match ``pattern`` are read.
    :param pattern: a ``SCAN MATCH`` pattern (``polygon:*`` reads every cluster).
    :param symbols: yield only the events of these symbols (as the events hold
        them, ``"BRK.B"``). The consumer still reads every event of its streams
        and drops the others; with :data:`PER_SYMBOL_KEY_TEMPLATE`, ``keys`` or
        ``pattern`` pick symbols on the server instead.
    :param cluster: the cluster of the events, which says where an event holds
        its symbol (for ``symbols``).
    :param start: where to begin: ``"0"`` from the oldest entry kept, ``"$"``
        only entries added from now on, an entry id (``"1700000000000-0"``:
        entries after it), or a mapping of key to entry id.
    :param count: the most entries asked for per stream per read.
    :param block: seconds one read waits for new entries.
    :param discover_interval: seconds between scans for new streams.
    :param deduplicate: skip entries whose producer and number were already
        read from the same stream (the repeats a retried batch writes). Off,
        every entry is yielded: delivery is then at-least-once.
    :param retry_delay: the first delay before reconnecting, doubled per
        failure up to a minute.
    :param timeout: seconds allowed to connect and for each reply, beyond ``block``.
    :param connection_options: passed to ``redis.asyncio.Redis.from_url``.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        keys: Sequence[str] | None = None,
        pattern: str = "polygon:*",
        symbols: Iterable[str] | None = None,
        cluster: str | StreamCluster = "stocks",
        start: str | dict[str, str] = "0",
        count: int = 1000,
        block: float = 1.0,
        discover_interval: float = 1.0,
        deduplicate: bool = True,
        retry_delay: float = 0.5,
        timeout: float = 5.0,
        **connection_options: Any,
    ) -> None:
        if count < 1 or block <= 0:
            raise ConfigurationError(
                f"count and block must be positive, not {count!r} and {block!r}"
            )
        self.url = url
        self.keys = list(keys) if keys is not None else None
        self.pattern = pattern
        self.symbols = SymbolFilter(symbols, cluster) if symbols is not None else None
        self.start = start
        self.count = count
        self.block = block
        self.discover_interval = discover_interval
        self.deduplicate = deduplicate
        self.timeout = timeout
        #: The id of the last entry of each stream whose events were all yielded.
        self.positions: dict[str, str] = {}
        #: Entries skipped as repeats of entries already read.
        self.duplicates = 0
        #: Entries skipped because they were not JSON events.
        self.malformed = 0
        #: Connections made after the first.
        self.reconnects = 0
        self._options = connection_options
        self._backoff = Backoff(retry_delay)
        self._client: aioredis.Redis | None = None
        self._last_number: dict[tuple[str, bytes], int] = {}
        self._next_scan = 0.0
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<RedisStreamsConsumer {len(self.positions)} streams at {_redacted(self.url)}>"

    async def close(self) -> None:
        """Stop: an ``async for`` over this consumer ends at its next read."""
        self._closed = True
        await self._drop_client()

    async def _events(self) -> AsyncIterator[Event]:
        positions = self.positions
        while not self._closed:
            reply = await self._read()
            for key, entry_id, events in self._entries(reply):
                # The position moves on before the entry's last event is handed
                # out: a consumer stopped inside an entry reads it again whole.
                if len(events) > 1:
                    for event in events[:-1]:
                        yield event
                positions[key] = entry_id
                if events:
                    yield events[-1]

    async def _read(self) -> Any:
        """One ``XREAD`` of every known stream; ``None`` after a failure or when idle."""
        try:
            client = await self._connected()
            if time.monotonic() >= self._next_scan:
                await self._discover(client)
            if not self.positions:
                # Nothing to read yet: wait for a stream to appear.
                await asyncio.sleep(min(self.block, self.discover_interval))
                return None
            streams: dict[Any, Any] = dict(self.positions)
            reply = await client.xread(streams, count=self.count, block=int(self.block * 1000))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if self._closed:
                return None
            delay = self._backoff.next_delay()
            logger.warning("RedisStreamsConsumer: %s; reconnecting in %.2f s", exc, delay)
            await self._drop_client()
            await asyncio.sleep(delay)
            return None
        self._backoff.reset()
        return reply

    def _entries(self, reply: Any) -> Iterator[tuple[str, str, list[Event]]]:
        """Each entry of an ``XREAD`` reply: its stream, its id and its events to yield."""
        for raw_key, entries in reply or ():
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            for raw_id, fields in entries:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                if self.deduplicate and self._repeated(key, fields):
                    self.duplicates += 1
                    yield key, entry_id, []
                    continue
                events = self._unpack(fields)
                if self.symbols is not None and events:
                    events = self.symbols(events)
                yield key, entry_id, events

    def _unpack(self, fields: dict[bytes, bytes]) -> list[Event]:
        """The events of an entry: ``b`` holds a batch of them, ``e`` one."""
        batch, single = fields.get(b"b"), fields.get(b"e")
        if batch is not None:
            events = unpack_batch(batch)
        elif single is not None:
            events = unpack_event(single)
        else:
            return []  # not an entry of a sink
        if events is None:
            self.malformed += 1
            logger.warning("RedisStreamsConsumer: skipped an entry that holds no JSON events")
            return []
        return events

    def _repeated(self, key: str, fields: dict[bytes, bytes]) -> bool:
        producer, number = fields.get(b"p"), fields.get(b"n")
        if producer is None or number is None:
            return False
        try:
            n = int(number)
        except ValueError:
            return False
        last = self._last_number.get((key, producer), -1)
        if n <= last:
            return True
        self._last_number[(key, producer)] = n
        return False

    async def _connected(self) -> aioredis.Redis:
        if self._client is None:
            options: dict[str, Any] = {
                "socket_timeout": self.block + self.timeout,
                "socket_connect_timeout": self.timeout,
                "retry": Retry(NoBackoff(), 0),
                **self._options,
            }
            client = aioredis.Redis.from_url(self.url, **options)
            try:
                await client.ping()
            except BaseException:
                await _quietly(client.aclose())
                raise
            if self._started:
                self.reconnects += 1
            self._client = client
        return self._client

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _quietly(client.aclose())

    async def _discover(self, client: aioredis.Redis) -> None:
        """Add the streams not read yet, each from its start position."""
        self._next_scan = time.monotonic() + self.discover_interval
        if self.keys is not None:
            found = list(self.keys)
        else:
            found = []
            async for raw in client.scan_iter(match=self.pattern, count=1000, _type="stream"):
                found.append(raw.decode() if isinstance(raw, bytes) else str(raw))
        for key in sorted(set(found) - set(self.positions)):
            self.positions[key] = await self._start_of(client, key)
        self._started = True

    async def _start_of(self, client: aioredis.Redis, key: str) -> str:
        if self._started:
            return "0-0"  # a stream that appeared while we read: all of it is new
        start = self.start
        if isinstance(start, dict):
            return start.get(key, "0-0")
        if start == "$":
            # "$" would mean "after the last entry" anew at every read; fix it now.
            last = await client.xrevrange(key, count=1)
            if not last:
                return "0-0"
            entry_id = last[0][0]
            return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return "0-0" if start == "0" else start


async def _read_replies(conn: Any, count: int) -> None:
    read = conn.read_response
    for _ in range(count):
        await read(disable_decoding=True, timeout=math.inf)


async def _quietly(closing: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(closing, 2.0)


def _redacted(url: str) -> str:
    """``url`` without its password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
