"""Real-time streaming: the clients, their errors and the stream table."""

from polygon.streaming._stats import StreamStats
from polygon.streaming.async_streaming import AsyncStreamClient
from polygon.streaming.errors import (
    ArgumentTypeError,
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    InvalidSymbolError,
    MaxConnectionsError,
    PolygonStreamError,
    ReconnectFailedError,
    ServerDisconnectError,
    ServerStatusError,
    SlowConsumerWarning,
    StreamBusyError,
    StreamClosedError,
    StreamConnectionError,
    StreamNotAvailableError,
)
from polygon.streaming.streaming import StreamClient

__all__ = [
    "ArgumentTypeError",
    "AsyncStreamClient",
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
    "StreamClient",
    "StreamClosedError",
    "StreamConnectionError",
    "StreamNotAvailableError",
    "StreamStats",
]
