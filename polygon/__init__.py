"""Real-time market data from Polygon.io (Massive.com) over WebSockets.

``AsyncStreamClient`` runs on your asyncio event loop; ``StreamClient`` is the
blocking client for plain scripts. Both share one engine.
"""

from polygon import enums
from polygon.enums import StreamCluster, StreamHost, StreamServicePrefix
from polygon.streaming import (
    ArgumentTypeError,
    AsyncStreamClient,
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
    StreamClient,
    StreamClosedError,
    StreamConnectionError,
    StreamNotAvailableError,
    StreamStats,
)

__version__ = "0.1.0"

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
    "StreamCluster",
    "StreamConnectionError",
    "StreamHost",
    "StreamNotAvailableError",
    "StreamServicePrefix",
    "StreamStats",
    "enums",
]
