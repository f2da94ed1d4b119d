"""Enumerations used by the streaming clients.

Every enum is a ``str`` enum, so a member compares equal to its wire value and
can be passed anywhere a plain string is accepted (and the other way round).
"""

from __future__ import annotations

from enum import Enum


class StreamCluster(str, Enum):
    """The market a connection is for; the URL path of the WebSocket endpoint."""

    STOCKS = "stocks"
    OPTIONS = "options"
    FOREX = "forex"
    CRYPTO = "crypto"
    INDICES = "indices"

    def __str__(self) -> str:
        return self.value


class StreamHost(str, Enum):
    """Hostnames of the streaming service.

    The service was renamed from Polygon.io to Massive.com in 2025; both
    families of hostnames are listed because it is not settled how long the
    older names keep working. ``REAL_TIME`` is the default everywhere.
    """

    REAL_TIME = "socket.polygon.io"
    DELAYED = "delayed.polygon.io"
    BUSINESS = "business.polygon.io"
    LAUNCHPAD = "launchpad.polygon.io"
    MASSIVE_REAL_TIME = "socket.massive.com"
    MASSIVE_DELAYED = "delayed.massive.com"
    MASSIVE_BUSINESS = "business.massive.com"
    MASSIVE_LAUNCHPAD = "launchpad.massive.com"

    def __str__(self) -> str:
        return self.value


class StreamServicePrefix(str, Enum):
    """Event codes (the ``ev`` field of every event), used to pick a handler.

    Several markets share a code (a stock trade and an option trade are both
    ``T``); those names are aliases of one member, which is harmless because a
    connection only ever carries one market.
    """

    STATUS = "status"

    STOCK_TRADES = "T"
    STOCK_QUOTES = "Q"
    STOCK_SECOND_AGGREGATES = "A"
    STOCK_MINUTE_AGGREGATES = "AM"
    STOCK_LULD = "LULD"
    STOCK_IMBALANCES = "NOI"

    OPTION_TRADES = "T"
    OPTION_QUOTES = "Q"
    OPTION_SECOND_AGGREGATES = "A"
    OPTION_MINUTE_AGGREGATES = "AM"

    FOREX_QUOTES = "C"
    FOREX_MINUTE_AGGREGATES = "CA"
    FOREX_SECOND_AGGREGATES = "CAS"

    CRYPTO_TRADES = "XT"
    CRYPTO_QUOTES = "XQ"
    CRYPTO_LEVEL2 = "XL2"
    CRYPTO_MINUTE_AGGREGATES = "XA"
    CRYPTO_SECOND_AGGREGATES = "XAS"

    INDICES_SECOND_AGGREGATES = "A"
    INDICES_MINUTE_AGGREGATES = "AM"
    INDICES_VALUE = "V"

    FAIR_MARKET_VALUE = "FMV"
    LAUNCHPAD_VALUE = "LV"

    def __str__(self) -> str:
        return self.value


__all__ = ["StreamCluster", "StreamHost", "StreamServicePrefix"]
