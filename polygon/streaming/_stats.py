"""A snapshot of a client's counters."""

from __future__ import annotations

from dataclasses import dataclass

from polygon.streaming._buffer import BufferStats
from polygon.streaming._dispatch import HandlerTable
from polygon.streaming._engine import EngineStats


@dataclass(frozen=True)
class StreamStats:
    """Counters since the client was created. Events are counted one by one,
    frames as they came off the socket.

    :ivar frames_received: text and binary frames read from the socket.
    :ivar events_received: events decoded from those frames.
    :ivar events_delivered: events handed to handlers (or to the iterator).
    :ivar events_dropped: events dropped because the consumer fell behind.
    :ivar backlog: events received and not yet delivered.
    :ivar decode_errors: frames that were not valid JSON.
    :ivar bad_frames: binary frames, text frames that were not UTF-8, and
        frames that were not a list of events.
    :ivar bad_events: events that were not objects with an ``ev`` code.
    :ivar handler_errors: exceptions raised by handlers.
    :ivar server_errors: ``error`` statuses from the server.
    :ivar connections: connections that authenticated.
    :ivar reconnects: connections lost and followed by a reconnect attempt.
    :ivar failed_attempts: connection attempts that failed.
    """

    frames_received: int
    events_received: int
    events_delivered: int
    events_dropped: int
    backlog: int
    decode_errors: int
    bad_frames: int
    bad_events: int
    handler_errors: int
    server_errors: int
    connections: int
    reconnects: int
    failed_attempts: int


def collect(engine: EngineStats, buffer: BufferStats, handlers: HandlerTable) -> StreamStats:
    return StreamStats(
        frames_received=engine.frames,
        events_received=buffer.received,
        events_delivered=buffer.delivered,
        events_dropped=buffer.dropped,
        backlog=buffer.backlog,
        decode_errors=engine.decode_errors,
        bad_frames=engine.bad_frames,
        bad_events=handlers.bad_events,
        handler_errors=handlers.errors,
        server_errors=engine.server_errors,
        connections=engine.connections,
        reconnects=engine.reconnects,
        failed_attempts=engine.failed_attempts,
    )
