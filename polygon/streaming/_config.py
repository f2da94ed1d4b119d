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
        ping_interval=seconds_option("ping_interval", ping_interval),
        ping_timeout=seconds_option("ping_timeout", ping_timeout),
        max_message_size=_size("max_message_size", max_message_size),
        max_memory_queue=_size("max_memory_queue", max_memory_queue),
        write_limit=_size("write_limit", write_limit, allow_none=False) or 2**16,
        open_timeout=seconds_option("open_timeout", open_timeout),
    )
    return ClientConfig(
        cluster=resolved,
        connection=options,
        max_buffered_events=max_buffered_events,
        overflow=overflow,
        reconnect_on_eviction=bool(reconnect_on_eviction),
    )


def check_reconnect_options(max_reconnection_attempts: object, reconnection_delay: object) -> None:
    if max_reconnection_attempts is not None and (
        isinstance(max_reconnection_attempts, bool)
        or not isinstance(max_reconnection_attempts, int)
        or max_reconnection_attempts < 1
    ):
        raise ConfigurationError(
            "max_reconnection_attempts must be an int >= 1, or None to retry forever; "
            f"got {max_reconnection_attempts!r}"
        )
    if not is_number(reconnection_delay) or reconnection_delay < 0:  # type: ignore[operator]
        raise ConfigurationError(
            f"reconnection_delay must be a number of seconds >= 0, got {reconnection_delay!r}"
        )
