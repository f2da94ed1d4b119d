"""Pure protocol rules: URLs, symbols, topics, outgoing frames, status events.

Nothing here does I/O; every function is tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from polygon.enums import StreamCluster, StreamHost
from polygon.streaming.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidSymbolError,
    MaxConnectionsError,
    ServerDisconnectError,
    ServerStatusError,
)

# What the ``symbols`` argument of every subscribe/unsubscribe method accepts.
Symbols = str | Sequence[str] | None

# What a wildcard subscription puts after the dot.
WILDCARD = "*"

# Symbol prefixes by cluster. The service requires "O:" on option contracts and
# "I:" on index tickers, so they are added when missing. Crypto and forex pairs
# are sent bare on the live service (the older "X:" / "C:" forms are no longer
# accepted), so a prefix given by a user is dropped.
_REQUIRED_PREFIX: dict[StreamCluster, str] = {
    StreamCluster.OPTIONS: "O:",
    StreamCluster.INDICES: "I:",
}
_DROPPED_PREFIX: dict[StreamCluster, str] = {
    StreamCluster.CRYPTO: "X:",
    StreamCluster.FOREX: "C:",
}

# Topics per subscribe/unsubscribe message. The service documents no limit;
# this keeps each frame well below any plausible one when a large set is
# replayed after a reconnect.
MAX_PARAMS_CHARS = 8_000

_ALL_SYMBOLS_WORDS = ("all",)


def normalize_cluster(cluster: StreamCluster | str) -> StreamCluster:
    """Return the :class:`StreamCluster` for an enum member or its name."""
    if isinstance(cluster, StreamCluster):
        return cluster
    if isinstance(cluster, str):
        try:
            return StreamCluster(cluster.strip().lower())
        except ValueError:
            pass
    valid = ", ".join(c.value for c in StreamCluster)
    raise ConfigurationError(f"unknown cluster {cluster!r}; expected one of: {valid}")


def build_url(host: StreamHost | str, cluster: StreamCluster) -> str:
    """The WebSocket URL for a host and cluster.

    A bare hostname gets ``wss://``; a ``ws://`` or ``wss://`` base URL is used as
    given (a local simulator, a proxy, a replayer). The cluster is the path.
    """
    if isinstance(host, StreamHost):
        base = f"wss://{host.value}"
    elif isinstance(host, str) and host.strip():
        base = host.strip()
        if any(ch.isspace() for ch in base):
            raise ConfigurationError(f"host {host!r} contains whitespace")
        if "://" not in base:
            base = f"wss://{base}"
        elif not base.startswith(("ws://", "wss://")):
            raise ConfigurationError(f"host {host!r} must be a hostname or a ws:// or wss:// URL")
    else:
        raise ConfigurationError(f"host must be a non-empty hostname or URL, got {host!r}")
    return f"{base.rstrip('/')}/{cluster.value}"


def is_all_symbols(symbols: object) -> bool:
    """``None``, ``[]``, ``["*"]`` and ``"all"`` all mean every symbol."""
    if symbols is None:
        return True
    if isinstance(symbols, str):
        return symbols.strip().lower() in _ALL_SYMBOLS_WORDS
    if isinstance(symbols, (list, tuple)):
        return len(symbols) == 0 or (len(symbols) == 1 and symbols[0] == WILDCARD)
    return False


def normalize_symbol(symbol: object, cluster: StreamCluster, force_uppercase: bool) -> str:
    """Validate one symbol and return it as the wire wants it for ``cluster``."""
    if not isinstance(symbol, str):
        raise InvalidSymbolError(
            f"symbol {symbol!r} is a {type(symbol).__name__}; symbols must be strings"
        )
    if not symbol:
        raise InvalidSymbolError("empty symbol ''; symbols must be non-empty strings")
    if "," in symbol or any(ch.isspace() for ch in symbol):
        raise InvalidSymbolError(
            f"symbol {symbol!r} contains a comma or whitespace; pass one symbol per list item"
        )
    if symbol == WILDCARD:
        return symbol
    if force_uppercase:
        symbol = symbol.upper()
    required = _REQUIRED_PREFIX.get(cluster)
    if required is not None and not symbol.upper().startswith(required):
        symbol = required + symbol
    dropped = _DROPPED_PREFIX.get(cluster)
    if dropped is not None and symbol.upper().startswith(dropped):
        symbol = symbol[len(dropped) :]
        if not symbol:
            raise InvalidSymbolError(f"symbol {dropped!r} has nothing after its prefix")
    return symbol


def parse_topics(params: str) -> list[str]:
    """Split a raw ``params`` string (``"T.AAPL,Q.MSFT"``) into its topics."""
    return [part for part in (p.strip() for p in params.split(",")) if part]


def _looks_like_topic(topic: str) -> bool:
    """``EV.SYMBOL``: a code, a dot, a symbol, and no whitespace anywhere."""
    code, dot, symbol = topic.partition(".")
    return bool(code and dot and symbol) and not any(ch.isspace() for ch in topic)


def topics_for(
    event_code: str,
    cluster: StreamCluster,
    symbols: object,
    force_uppercase: bool = True,
) -> tuple[list[str], str | None]:
    """The topics a subscribe/unsubscribe call names, and its raw params if any.

    Returns ``(topics, raw)``. ``raw`` is the user's own string when a plain
    string (other than ``"all"``) was given: it is sent exactly as given, and its
    topics are parsed from it so the desired set stays true. Otherwise ``raw``
    is ``None`` and the topics are built from the symbols.
    """
    if is_all_symbols(symbols):
        return [f"{event_code}.{WILDCARD}"], None
    if isinstance(symbols, str):
        topics = parse_topics(symbols)
        if not topics:
            raise InvalidSymbolError(f"symbols string {symbols!r} names no topic")
        for topic in topics:
            if not _looks_like_topic(topic):
                # A lone symbol ("AAPL") or symbols split by spaces would be sent
                # as given and only earn an error status from the server, long
                # after this call returned: refuse them here, naming the value.
                raise InvalidSymbolError(
                    f"symbols string {symbols!r} is sent as given and must list topics "
                    f"such as 'T.AAPL,Q.MSFT'; {topic!r} is not one. Pass symbols as a "
                    "list (['AAPL']), or None or 'all' for every symbol"
                )
        return topics, symbols
    if isinstance(symbols, (list, tuple, set, frozenset)):
        ordered: Iterable[object] = (
            sorted(symbols, key=str) if isinstance(symbols, (set, frozenset)) else symbols
        )
        topics = [f"{event_code}.{normalize_symbol(s, cluster, force_uppercase)}" for s in ordered]
        return list(dict.fromkeys(topics)), None
    raise InvalidSymbolError(
        f"symbols must be a list of strings, a string, or None; got {symbols!r}"
    )


def auth_frame(api_key: str) -> str:
    return orjson.dumps({"action": "auth", "params": api_key}).decode()


def subscription_frames(action: str, topics: Sequence[str]) -> list[str]:
    """``subscribe``/``unsubscribe`` frames for ``topics``, split to stay small."""
    frames: list[str] = []
    chunk: list[str] = []
    size = 0
    for topic in topics:
        if chunk and size + len(topic) + 1 > MAX_PARAMS_CHARS:
            frames.append(_action_frame(action, ",".join(chunk)))
            chunk, size = [], 0
        chunk.append(topic)
        size += len(topic) + 1
    if chunk:
        frames.append(_action_frame(action, ",".join(chunk)))
    return frames


def raw_subscription_frame(action: str, params: str) -> str:
    return _action_frame(action, params)


def _action_frame(action: str, params: str) -> str:
    return orjson.dumps({"action": action, "params": params}).decode()


# Status values, as the server sends them.
STATUS_CONNECTED = "connected"
STATUS_AUTH_SUCCESS = "auth_success"
STATUS_AUTH_FAILED = "auth_failed"
STATUS_AUTH_TIMEOUT = "auth_timeout"
STATUS_MAX_CONNECTIONS = "max_connections"
STATUS_FORCE_DISCONNECT = "force_disconnect"
STATUS_SLOW_CONSUMER = "slow_consumer"
STATUS_SUCCESS = "success"
STATUS_ERROR = "error"

AUTH_FAILURES = frozenset({STATUS_AUTH_FAILED, STATUS_AUTH_TIMEOUT})
SESSION_ENDING = frozenset({STATUS_MAX_CONNECTIONS, STATUS_FORCE_DISCONNECT, STATUS_SLOW_CONSUMER})


def status_of(event: dict[str, Any]) -> tuple[str, str]:
    """``(status, message)`` of a status event, as strings."""
    return str(event.get("status", "")), str(event.get("message", ""))


def session_ending_error(status: str, message: str) -> ServerStatusError | None:
    """The error a status ends the session with; None for a status that does not."""
    if status == STATUS_MAX_CONNECTIONS:
        return MaxConnectionsError(status, message)
    if status in (STATUS_FORCE_DISCONNECT, STATUS_SLOW_CONSUMER):
        return ServerDisconnectError(status, message)
    if status in AUTH_FAILURES:
        return AuthenticationError(status, message)
    return None


@dataclass(frozen=True)
class StatusSummary:
    """What the status events of one frame mean for the session."""

    # An auth_success is among them.
    authenticated: bool = False
    # The error of the last status that ends the session, if any.
    session_end: ServerStatusError | None = None
    # The messages of "error" statuses (a bad request; the session goes on).
    server_errors: tuple[str, ...] = ()


NO_STATUS = StatusSummary()


def classify_statuses(events: Iterable[Any]) -> StatusSummary:
    """Sort the status events among ``events`` (anything else is skipped)."""
    authenticated = False
    session_end: ServerStatusError | None = None
    server_errors: list[str] = []
    for event in events:
        if type(event) is not dict or event.get("ev") != "status":
            continue
        status, message = status_of(event)
        if status == STATUS_AUTH_SUCCESS:
            authenticated = True
        elif status == STATUS_ERROR:
            server_errors.append(message)
        else:
            session_end = session_ending_error(status, message) or session_end
    if not authenticated and session_end is None and not server_errors:
        return NO_STATUS
    return StatusSummary(authenticated, session_end, tuple(server_errors))


def may_hold_status(frame: str) -> bool:
    """Whether the text of a frame may hold a status event: never False when it
    does, seldom True when it does not.

    A frame is searched whole (statuses can be mixed in with data). Searching for
    the key ``"status"`` alone costs about 5 µs on a 10 kB frame, because
    CPython's substring search skips ahead only past characters its 64-bit
    filter rules out, and ``s``, ``t`` and ``u`` share that filter's bits with
    the digits that fill market data. ``u`` itself is in no field name of any
    stream but ``status`` (``spec/websocket-api.json``), and looking for one
    character is a ``memchr``: about 0.1 µs, and a data frame is done.
    """
    return "u" in frame and frame.rfind('"status"') >= 0
