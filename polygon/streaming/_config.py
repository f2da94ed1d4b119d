"""Constructor arguments shared by both clients: checked once, in one place."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from polygon.enums import StreamCluster, StreamHost
from polygon.streaming import _protocol as proto
from polygon.streaming._buffer import OverflowPolicy, check_buffer_options
from polygon.streaming._engine import ConnectionOptions
from polygon.streaming.errors import ConfigurationError

API_KEY_VARIABLES = ("POLYGON_API_KEY", "MASSIVE_API_KEY")

# Every default of both clients, named once. The keepalive pair is one for both
# clients: a ping every 20 s, and a connection is given up when its pong is 19 s
# late, so a dead peer is noticed within 39 s (inside the service's idle limit).
DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 19.0
DEFAULT_MAX_MESSAGE_SIZE = 16 * 2**20
DEFAULT_MAX_MEMORY_QUEUE = 32
DEFAULT_READ_LIMIT = 2**16
DEFAULT_WRITE_LIMIT = 2**16
DEFAULT_OPEN_TIMEOUT = 10.0
DEFAULT_OVERFLOW: OverflowPolicy = "drop_oldest"
# handle_messages(reconnect=True) and the async iterators.
DEFAULT_MAX_RECONNECTION_ATTEMPTS = 5
DEFAULT_RECONNECTION_DELAY = 5.0
# The longest wait between two reconnect attempts (the backoff's cap), seconds.
DEFAULT_MAX_RECONNECTION_DELAY = 60.0
# StreamClient reconnects on its own from the start, with a shorter first delay.
DEFAULT_THREAD_MAX_RECONNECTION_ATTEMPTS = 10
DEFAULT_THREAD_RECONNECTION_DELAY = 2.0
DEFAULT_CALL_TIMEOUT = 10.0
# Handler calls of the asyncio client that may run at once (1: one at a time, in order).
DEFAULT_HANDLER_CONCURRENCY = 1


def resolve_api_key(api_key: str | None) -> str:
    """The key given, else the first of ``POLYGON_API_KEY``, ``MASSIVE_API_KEY`` that is set."""
    if api_key is None:
        for name in API_KEY_VARIABLES:
            value = os.environ.get(name, "").strip()
            if value:
                return value
        raise ConfigurationError(
            "no API key: pass api_key=..., or set POLYGON_API_KEY or MASSIVE_API_KEY"
        )
    # The key itself is never put in a message, only what kind of value it was.
    if not isinstance(api_key, str):
        raise ConfigurationError(f"api_key must be a string, got a {type(api_key).__name__}")
    if not api_key.strip():
        raise ConfigurationError("api_key is empty")
    return api_key.strip()


def is_number(value: object) -> bool:
    """A finite int or float, and not a bool (which Python counts as an int)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def seconds_option(name: str, value: object, allow_none: bool = True) -> float | None:
    """A positive number of seconds (or ``None`` when allowed); else ConfigurationError."""
    if value is None and allow_none:
        return None
    if not is_number(value) or value <= 0:  # type: ignore[operator]
        none = " or None" if allow_none else ""
        raise ConfigurationError(
            f"{name} must be a positive number of seconds{none}, got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def keepalive_option(name: str, value: object) -> float | None:
    """``ping_interval`` / ``ping_timeout``: seconds, where ``0`` and ``None`` both mean
    none (no pings; wait for a pong forever), as the older library documents."""
    if value is None or (is_number(value) and value == 0):
        return None
    return seconds_option(name, value)


def concurrency_option(value: object) -> int:
    """``handler_concurrency``: a positive int."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"handler_concurrency must be an int >= 1, got {value!r}")
    return value


def _size(name: str, value: object, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        none = " or None" if allow_none else ""
        raise ConfigurationError(f"{name} must be a positive int{none}, got {value!r}")
    return value


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs to build its engine."""

    cluster: StreamCluster
    connection: ConnectionOptions
    max_buffered_events: int
    overflow: OverflowPolicy
    reconnect_on_eviction: bool


def build_config(
    cluster: StreamCluster | str,
    host: StreamHost | str,
    *,
    ping_interval: float | None,
    ping_timeout: float | None,
    max_message_size: int | None,
    max_memory_queue: int | None,
    write_limit: int,
    open_timeout: float | None,
    max_buffered_events: int,
    overflow: OverflowPolicy,
    reconnect_on_eviction: bool,
) -> ClientConfig:
    resolved = proto.normalize_cluster(cluster)
    url = proto.build_url(host, resolved)
    try:
        parse_uri(url)
    except (InvalidURI, ValueError) as exc:  # urllib raises ValueError on e.g. "ws://[::1"
        raise ConfigurationError(f"host {host!r} does not make a valid URL: {url!r}") from exc
    check_buffer_options(max_buffered_events, overflow)
    options = ConnectionOptions(
        url=url,
        ping_interval=keepalive_option("ping_interval", ping_interval),
        ping_timeout=keepalive_option("ping_timeout", ping_timeout),
        max_message_size=_size("max_message_size", max_message_size),
        max_memory_queue=_size("max_memory_queue", max_memory_queue),
        write_limit=_size("write_limit", write_limit, allow_none=False) or DEFAULT_WRITE_LIMIT,
        open_timeout=seconds_option("open_timeout", open_timeout),
    )
    return ClientConfig(
        cluster=resolved,
        connection=options,
        max_buffered_events=max_buffered_events,
        overflow=overflow,
        reconnect_on_eviction=bool(reconnect_on_eviction),
    )


@dataclass(frozen=True)
class ReconnectOptions:
    """How a reconnect loop retries; ``max_attempts`` ``None`` retries forever."""

    max_attempts: int | None
    delay: float
    max_delay: float = DEFAULT_MAX_RECONNECTION_DELAY


def reconnect_options(
    max_reconnection_attempts: object,
    reconnection_delay: object,
    max_reconnection_delay: object = None,
) -> ReconnectOptions:
    """Check the reconnect options once, where they are given.

    ``max_reconnection_attempts``: an int >= 1, or ``None`` / ``False`` for no limit
    (the older library documents ``False``). ``reconnection_delay``: seconds >= 0.
    """
    attempts = max_reconnection_attempts
    if attempts is False:
        attempts = None
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1
    ):
        raise ConfigurationError(
            "max_reconnection_attempts must be an int >= 1, or None (or False) to retry "
            f"forever; got {max_reconnection_attempts!r}"
        )
    if not is_number(reconnection_delay) or reconnection_delay < 0:  # type: ignore[operator]
        raise ConfigurationError(
            f"reconnection_delay must be a number of seconds >= 0, got {reconnection_delay!r}"
        )
    max_delay = max_reconnection_delay
    if max_delay is None:
        max_delay = DEFAULT_MAX_RECONNECTION_DELAY
    if not is_number(max_delay) or max_delay <= 0:  # type: ignore[operator]
        raise ConfigurationError(
            "max_reconnection_delay must be a number of seconds > 0 (or None for the "
            f"default, {DEFAULT_MAX_RECONNECTION_DELAY:g}), got {max_reconnection_delay!r}"
        )
    return ReconnectOptions(
        attempts,
        float(reconnection_delay),  # type: ignore[arg-type]
        float(max_delay),  # type: ignore[arg-type]
    )


def check_reconnect_options(max_reconnection_attempts: object, reconnection_delay: object) -> None:
    """Raise :class:`ConfigurationError` for bad reconnect options (see reconnect_options)."""
    reconnect_options(max_reconnection_attempts, reconnection_delay)
