"""Constructor arguments: the API key, the client's options, the reconnect options."""

from __future__ import annotations

import math

import pytest

import polygon
from polygon.enums import StreamCluster, StreamHost
from polygon.streaming._config import (
    API_KEY_VARIABLES,
    check_reconnect_options,
    reconnect_options,
    resolve_api_key,
)
from polygon.streaming.errors import ConfigurationError, PolygonStreamError

pytestmark = pytest.mark.timeout(10)

KEY = "SECRET-KEY-123"


@pytest.fixture
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("POLYGON_API_KEY", "MASSIVE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def make_client(**kwargs: object) -> polygon.AsyncStreamClient:
    options: dict[str, object] = {"api_key": KEY, "cluster": "stocks", **kwargs}
    return polygon.AsyncStreamClient(**options)  # type: ignore[arg-type]


# -- resolve_api_key -----------------------------------------------------------------------


def test_variables() -> None:
    assert API_KEY_VARIABLES == ("POLYGON_API_KEY", "MASSIVE_API_KEY")


@pytest.mark.parametrize(("given", "expected"), [(KEY, KEY), (f"  {KEY}\n", KEY), ("k", "k")])
def test_explicit_key(no_env_key: pytest.MonkeyPatch, given: str, expected: str) -> None:
    no_env_key.setenv("POLYGON_API_KEY", "from-env")
    assert resolve_api_key(given) == expected


def test_polygon_variable(no_env_key: pytest.MonkeyPatch) -> None:
    no_env_key.setenv("POLYGON_API_KEY", "poly-key")
    assert resolve_api_key(None) == "poly-key"


def test_massive_variable(no_env_key: pytest.MonkeyPatch) -> None:
    no_env_key.setenv("MASSIVE_API_KEY", "massive-key")
    assert resolve_api_key(None) == "massive-key"


def test_polygon_variable_first(no_env_key: pytest.MonkeyPatch) -> None:
    no_env_key.setenv("POLYGON_API_KEY", "poly-key")
    no_env_key.setenv("MASSIVE_API_KEY", "massive-key")
    assert resolve_api_key(None) == "poly-key"


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_blank_polygon_variable_falls_through(no_env_key: pytest.MonkeyPatch, blank: str) -> None:
    no_env_key.setenv("POLYGON_API_KEY", blank)
    no_env_key.setenv("MASSIVE_API_KEY", " massive-key ")
    assert resolve_api_key(None) == "massive-key"


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_no_key_anywhere(no_env_key: pytest.MonkeyPatch, blank: str | None) -> None:
    if blank is not None:
        no_env_key.setenv("POLYGON_API_KEY", blank)
        no_env_key.setenv("MASSIVE_API_KEY", blank)
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key(None)
    message = str(info.value)
    assert "POLYGON_API_KEY" in message
    assert "MASSIVE_API_KEY" in message
    assert isinstance(info.value, ValueError)


def test_client_reads_the_environment(no_env_key: pytest.MonkeyPatch) -> None:
    no_env_key.setenv("MASSIVE_API_KEY", KEY)
    client = polygon.AsyncStreamClient(None, "crypto")
    assert client.cluster is StreamCluster.CRYPTO
    assert KEY not in repr(client)


def test_client_without_key(no_env_key: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError) as info:
        polygon.AsyncStreamClient(None, "stocks")
    assert "POLYGON_API_KEY" in str(info.value)
    assert "MASSIVE_API_KEY" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [12345678, 1.5, b"SECRET-KEY-123", ["SECRET-KEY-123"], {"key": "SECRET-KEY-123"}, True],
    ids=lambda v: type(v).__name__,
)
def test_non_string_key_is_not_echoed(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_api_key(bad)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(bad) not in message
    assert str(bad) not in message
    assert KEY not in message
    assert type(bad).__name__ in message


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_explicit_key(no_env_key: pytest.MonkeyPatch, blank: str) -> None:
    no_env_key.setenv("POLYGON_API_KEY", "from-env")
    with pytest.raises(ConfigurationError):
        resolve_api_key(blank)


# -- AsyncStreamClient construction ----------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "host", "url"),
    [
        ("stocks", StreamHost.REAL_TIME, "wss://socket.polygon.io/stocks"),
        (StreamCluster.OPTIONS, StreamHost.MASSIVE_DELAYED, "wss://delayed.massive.com/options"),
        ("Indices", "business.polygon.io", "wss://business.polygon.io/indices"),
        ("forex", "ws://127.0.0.1:8765/", "ws://127.0.0.1:8765/forex"),
        ("crypto", "wss://proxy.example.com/feed", "wss://proxy.example.com/feed/crypto"),
    ],
)
def test_client_url(cluster: object, host: object, url: str) -> None:
    client = make_client(cluster=cluster, host=host)
    assert client.url == url
    assert client.cluster == str(cluster).lower()
    assert client.subscriptions == []
    assert not client.is_connected


@pytest.mark.parametrize("bad", ["futures", "stock", "", 7, None])
def test_client_bad_cluster(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_client(cluster=bad)
    assert repr(bad) in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [
        "http://socket.polygon.io",
        "https://socket.polygon.io",
        "",
        "   ",
        None,
        443,
        "ws://",
        "wss://",
        "wss://:99999",
        "ws://[::1",  # an unclosed IPv6 literal
        "socket polygon io",  # whitespace in a hostname
    ],
)
def test_client_bad_host(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_client(host=bad)
    assert repr(bad) in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("name", ["ping_interval", "ping_timeout", "open_timeout"])
@pytest.mark.parametrize("bad", [-1, -0.5, True, False, "20", [20], math.nan])
def test_client_bad_seconds(name: str, bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_client(**{name: bad})
    message = str(info.value)
    assert name in message
    assert repr(bad) in message
    assert KEY not in message


@pytest.mark.parametrize("name", ["ping_interval", "ping_timeout", "open_timeout"])
@pytest.mark.parametrize("good", [None, 0.5, 1, 30])
def test_client_good_seconds(name: str, good: object) -> None:
    make_client(**{name: good})


@pytest.mark.parametrize("bad", [0, 0.0])
def test_open_timeout_zero_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="open_timeout"):
        make_client(open_timeout=bad)


@pytest.mark.parametrize("name", ["ping_interval", "ping_timeout"])
@pytest.mark.parametrize("off", [0, 0.0, None])
def test_keepalive_zero_or_none_turns_it_off(name: str, off: object) -> None:
    # The older library documents 0 as "no pings" (and no pong deadline).
    client = make_client(**{name: off})
    assert getattr(client._engine.options, name) is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, "100", None, True, False])
def test_client_bad_max_buffered_events(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_client(max_buffered_events=bad)
    assert repr(bad) in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("bad", ["drop_newest", "DROP_OLDEST", "", None, 1])
def test_client_bad_overflow(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_client(overflow=bad)
    assert repr(bad) in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("max_message_size", 0),
        ("max_message_size", -5),
        ("max_message_size", True),
        ("max_memory_queue", 0),
        ("max_memory_queue", 2.5),
        ("write_limit", 0),
        ("write_limit", None),
    ],
)
def test_client_bad_sizes(name: str, bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_client(**{name: bad})
    assert name in str(info.value)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("overflow", ["drop_oldest", "backpressure"])
def test_client_good_buffer_options(overflow: str) -> None:
    make_client(max_buffered_events=1, overflow=overflow)


def test_repr_never_contains_the_key() -> None:
    client = make_client(cluster="options", host="ws://localhost:9999")
    text = repr(client)
    assert KEY not in text
    assert "options" in text
    assert "ws://localhost:9999/options" in text
    assert KEY not in str(client)


@pytest.mark.anyio
async def test_repr_after_close() -> None:
    client = make_client()
    await client.close_stream()
    assert "closed" in repr(client)
    assert KEY not in repr(client)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("attempts", "delay"), [(0, 5), (-1, 5), (True, 5), (5, -1), (5, "1"), (5, None)]
)
async def test_handle_messages_checks_reconnect_options(attempts: object, delay: object) -> None:
    client = make_client()
    try:
        with pytest.raises(ConfigurationError):
            await client.handle_messages(
                reconnect=True,
                max_reconnection_attempts=attempts,  # type: ignore[arg-type]
                reconnection_delay=delay,  # type: ignore[arg-type]
            )
    finally:
        await client.close_stream()


# -- check_reconnect_options ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(None, 0), (None, 5), (False, 5), (1, 0), (5, 1.5), (100, 0.001), (1, 60)],
)
def test_good_reconnect_options(attempts: object, delay: object) -> None:
    check_reconnect_options(attempts, delay)


@pytest.mark.parametrize("unlimited", [None, False])
def test_none_and_false_both_mean_no_limit(unlimited: object) -> None:
    assert reconnect_options(unlimited, 1).max_attempts is None


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3", [3]])
def test_bad_max_reconnection_attempts(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_reconnect_options(bad, 5)
    assert "max_reconnection_attempts" in str(info.value)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, PolygonStreamError)


@pytest.mark.parametrize("bad", [-1, -0.1, True, False, None, "5", [5], math.nan, math.inf])
def test_bad_reconnection_delay(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_reconnect_options(5, bad)
    assert "reconnection_delay" in str(info.value)
    assert repr(bad) in str(info.value)
