"""Real-time streaming: the clients, their errors and the stream table."""

from polygon.streaming._stats import StreamStats
from polygon.streaming.async_streaming import AsyncStreamClient
from polygon.streaming.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    InvalidSymbolError,
    MaxConnectionsError,
    PolygonStreamError,
    ReconnectFailedError,
    ServerDisconnectError,
    ServerStatusError,
    StreamClosedError,
    StreamConnectionError,
    StreamNotAvailableError,
)
from polygon.streaming.streaming import StreamClient

__all__ = [
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
    "StreamClient",
    "StreamClosedError",
    "StreamConnectionError",
    "StreamNotAvailableError",
    "StreamStats",
]
