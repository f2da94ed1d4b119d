"""Exceptions raised by the streaming clients.

Everything the library raises on purpose derives from one root, so
``except PolygonStreamError`` catches all of it. Where a standard exception
means the same thing, it is mixed in, so ``except ValueError`` or
``except ConnectionError`` work as one would expect::

    PolygonStreamError
    ├── ConfigurationError (ValueError)      a bad argument value, no API key
    ├── ArgumentTypeError (TypeError)        an argument of the wrong type (a handler
    │                                        that is not callable or cannot run here)
    ├── InvalidSymbolError (ValueError)      a symbol that cannot be sent
    ├── StreamNotAvailableError (ValueError) a stream the client's cluster does not serve
    ├── StreamClosedError (RuntimeError)     the client was closed by close_stream()
    ├── StreamBusyError (RuntimeError)       another consumer already reads the stream
    ├── StreamConnectionError (ConnectionError)
    │   ├── ConnectionLostError              the connection dropped; has code and reason
    │   └── ReconnectFailedError             gave up after max_reconnection_attempts
    ├── ServerStatusError                    the server refused or ended the session
    │   ├── AuthenticationError (PermissionError)   auth_failed, auth_timeout
    │   ├── MaxConnectionsError              evicted by a newer connection on the same key
    │   └── ServerDisconnectError            force_disconnect, slow_consumer
    └── SlowConsumerWarning (ResourceWarning)     events were dropped: never raised,
                                             handed to on_error / error handlers

The API key never appears in any message: exceptions are built from server
status text and close codes only.
"""

from __future__ import annotations


class PolygonStreamError(Exception):
    """Root of every exception raised by this library."""


class ConfigurationError(PolygonStreamError, ValueError):
    """An argument's value is invalid, or no API key could be found."""


class ArgumentTypeError(PolygonStreamError, TypeError):
    """An argument of the wrong type, e.g. a handler that is not callable, or a
    coroutine function given to the blocking client."""


class StreamBusyError(PolygonStreamError, RuntimeError):
    """Another consumer (``handle_messages()``, an iterator, the dispatcher
    thread) already reads this stream: read it from one place only."""


class InvalidSymbolError(PolygonStreamError, ValueError):
    """A symbol (ticker, contract, pair) that cannot be put on the wire."""


class StreamNotAvailableError(PolygonStreamError, ValueError):
    """A stream was requested on a cluster that does not serve it."""


class StreamClosedError(PolygonStreamError, RuntimeError):
    """The client was closed with ``close_stream()`` and cannot be used again."""


class StreamConnectionError(PolygonStreamError, ConnectionError):
    """The connection to the server could not be made or was lost."""


class ConnectionLostError(StreamConnectionError):
    """An established connection ended.

    :ivar code: the WebSocket close code: the server's, or, when the client
        closed the connection itself, its own (1009: a frame over
        ``max_message_size``); ``None`` when the TCP connection dropped without a
        close frame, or a keepalive ping went unanswered.
    :ivar reason: the close reason sent by the server (may be empty).
    """

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class ReconnectFailedError(StreamConnectionError):
    """The reconnect loop gave up.

    :ivar attempts: how many consecutive attempts failed.
    """

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class ServerStatusError(PolygonStreamError):
    """The server sent a status event that ends the session.

    :ivar status: the ``status`` field of the event, e.g. ``"auth_failed"``.
    :ivar message: the ``message`` field of the event.
    """

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"server status {status!r}: {message}")
        self.status = status
        self.message = message


class AuthenticationError(ServerStatusError, PermissionError):
    """The server rejected the API key (``auth_failed``) or timed out waiting for it.

    Retrying with the same key never helps, so this is never retried.
    """


class MaxConnectionsError(ServerStatusError):
    """A newer connection on the same key and cluster evicted this one.

    Not answered by reconnecting unless ``reconnect_on_eviction=True``: two
    clients on one key that both reconnect would evict each other forever.
    """


class ServerDisconnectError(ServerStatusError):
    """The server ended the session (``force_disconnect``, ``slow_consumer``)."""


class SlowConsumerWarning(PolygonStreamError, ResourceWarning):
    """Events were dropped because a consumer fell behind (a report, not raised).

    Handed to ``on_error`` (:class:`~polygon.streaming.streaming.StreamClient`) or to the
    error handlers of :class:`~polygon.streaming.async_streaming.AsyncStreamClient`
    (``add_error_handler``), at most once per report interval, beside a WARNING
    log line with the same numbers.

    :ivar dropped: events dropped since the previous report.
    :ivar total_dropped: events dropped since the client was created.
    :ivar pending: events waiting in the client's buffer when reported.
    :ivar limit: the buffer's limit (``max_buffered_events``).
    """

    def __init__(self, dropped: int, total_dropped: int, pending: int, limit: int) -> None:
        super().__init__(
            f"slow consumer: {dropped} events dropped ({total_dropped} in all); "
            f"{pending} pending, limit {limit}"
        )
        self.dropped = dropped
        self.total_dropped = total_dropped
        self.pending = pending
        self.limit = limit


__all__ = [
    "ArgumentTypeError",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionLostError",
    "InvalidSymbolError",
    "MaxConnectionsError",
    "PolygonStreamError",
    "ReconnectFailedError",
    "ServerDisconnectError",
    "ServerStatusError",
    "SlowConsumerWarning",
    "StreamBusyError",
    "StreamClosedError",
    "StreamConnectionError",
    "StreamNotAvailableError",
]
