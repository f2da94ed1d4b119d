"""The pure protocol rules: clusters, URLs, symbols, topics and outgoing frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polygon.enums import StreamCluster, StreamHost
from polygon.streaming import _protocol as proto
from polygon.streaming.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidSymbolError,
    MaxConnectionsError,
    PolygonStreamError,
    ServerDisconnectError,
)

pytestmark = pytest.mark.timeout(10)

STOCKS = StreamCluster.STOCKS
OPTIONS = StreamCluster.OPTIONS
FOREX = StreamCluster.FOREX
CRYPTO = StreamCluster.CRYPTO
INDICES = StreamCluster.INDICES


# -- normalize_cluster -------------------------------------------------------------------


@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_normalize_cluster_enum_is_returned_as_is(cluster: StreamCluster) -> None:
    assert proto.normalize_cluster(cluster) is cluster


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("stocks", STOCKS),
        ("options", OPTIONS),
        ("forex", FOREX),
        ("crypto", CRYPTO),
        ("indices", INDICES),
        ("Stocks", STOCKS),
        ("CRYPTO", CRYPTO),
        ("InDiCeS", INDICES),
        ("  forex ", FOREX),
    ],
)
def test_normalize_cluster_by_name(name: str, expected: StreamCluster) -> None:
    assert proto.normalize_cluster(name) is expected


@pytest.mark.parametrize(
    "bad",
    ["futures", "stock", "", "   ", "socket.polygon.io", 5, None, b"stocks", ["stocks"]],
)
def test_normalize_cluster_rejects_bad_values_naming_them(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        proto.normalize_cluster(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, ValueError)


# -- build_url -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", list(StreamHost))
@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_build_url_stream_host(host: StreamHost, cluster: StreamCluster) -> None:
    assert proto.build_url(host, cluster) == f"wss://{host.value}/{cluster.value}"


@pytest.mark.parametrize(
    ("host", "cluster", "expected"),
    [
        ("socket.polygon.io", STOCKS, "wss://socket.polygon.io/stocks"),
        ("socket.massive.com", CRYPTO, "wss://socket.massive.com/crypto"),
        ("localhost:8765", OPTIONS, "wss://localhost:8765/options"),
        ("localhost:8765/", OPTIONS, "wss://localhost:8765/options"),
        ("  delayed.polygon.io  ", FOREX, "wss://delayed.polygon.io/forex"),
        ("ws://127.0.0.1:8765", STOCKS, "ws://127.0.0.1:8765/stocks"),
        ("ws://127.0.0.1:8765/", STOCKS, "ws://127.0.0.1:8765/stocks"),
        ("wss://proxy.example.com", INDICES, "wss://proxy.example.com/indices"),
        ("wss://proxy.example.com/", INDICES, "wss://proxy.example.com/indices"),
        ("wss://proxy.example.com/feed", CRYPTO, "wss://proxy.example.com/feed/crypto"),
        ("wss://proxy.example.com/feed/", CRYPTO, "wss://proxy.example.com/feed/crypto"),
    ],
)
def test_build_url_strings(host: str, cluster: StreamCluster, expected: str) -> None:
    assert proto.build_url(host, cluster) == expected


@pytest.mark.parametrize(
    "host",
    ["http://socket.polygon.io", "https://socket.polygon.io", "ftp://x", "", "   ", None, 8765],
)
def test_build_url_rejects_bad_hosts(host: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        proto.build_url(host, STOCKS)  # type: ignore[arg-type]
    assert repr(host) in str(info.value)


# -- is_all_symbols / topics_for -------------------------------------------------------


@pytest.mark.parametrize("symbols", [None, [], (), ["*"], ("*",), "all", "ALL", "All", " all "])
def test_is_all_symbols_true(symbols: object) -> None:
    assert proto.is_all_symbols(symbols) is True


@pytest.mark.parametrize(
    "symbols",
    ["AAPL", "*", "T.*", ["AAPL"], ["*", "AAPL"], ["all"], 0, {}, b"all", "allx"],
)
def test_is_all_symbols_false(symbols: object) -> None:
    assert proto.is_all_symbols(symbols) is False


@pytest.mark.parametrize("cluster", list(StreamCluster))
@pytest.mark.parametrize("symbols", [None, [], ["*"], "all", ("*",)])
@pytest.mark.parametrize("code", ["T", "XQ", "V"])
def test_topics_for_every_symbol(cluster: StreamCluster, symbols: object, code: str) -> None:
    assert proto.topics_for(code, cluster, symbols) == ([f"{code}.*"], None)


@pytest.mark.parametrize(
    ("params", "topics"),
    [
        ("T.AAPL", ["T.AAPL"]),
        ("T.AAPL,Q.MSFT", ["T.AAPL", "Q.MSFT"]),
        ("t.aapl", ["t.aapl"]),
        ("T.AAPL, Q.MSFT ,", ["T.AAPL", "Q.MSFT"]),
        ("T.BRK.B", ["T.BRK.B"]),
    ],
)
@pytest.mark.parametrize("force_uppercase", [True, False])
def test_topics_for_plain_string_is_sent_as_given(
    params: str, topics: list[str], force_uppercase: bool
) -> None:
    got_topics, raw = proto.topics_for("T", STOCKS, params, force_uppercase)
    assert raw == params
    assert got_topics == topics


@pytest.mark.parametrize("params", [",", " , ", "   "])
def test_topics_for_string_naming_no_topic(params: str) -> None:
    with pytest.raises(InvalidSymbolError) as info:
        proto.topics_for("T", STOCKS, params)
    assert repr(params) in str(info.value)


@pytest.mark.parametrize(
    ("code", "cluster", "symbols", "force_uppercase", "expected"),
    [
        # stocks: unchanged but upper-cased
        ("T", STOCKS, ["AAPL", "MSFT"], True, ["T.AAPL", "T.MSFT"]),
        ("T", STOCKS, ["aapl", "Msft"], True, ["T.AAPL", "T.MSFT"]),
        ("T", STOCKS, ["aapl", "Msft"], False, ["T.aapl", "T.Msft"]),
        ("Q", STOCKS, ("AAPL",), True, ["Q.AAPL"]),
        ("T", STOCKS, ["BRK.B", "brk.a"], True, ["T.BRK.B", "T.BRK.A"]),
        ("LULD", STOCKS, ["O:SPY"], True, ["LULD.O:SPY"]),
        # options: O: added when missing
        ("Q", OPTIONS, ["SPY241220P00720000"], True, ["Q.O:SPY241220P00720000"]),
        ("Q", OPTIONS, ["O:SPY241220P00720000"], True, ["Q.O:SPY241220P00720000"]),
        ("Q", OPTIONS, ["o:spy241220p00720000"], True, ["Q.O:SPY241220P00720000"]),
        ("Q", OPTIONS, ["spy241220p00720000"], True, ["Q.O:SPY241220P00720000"]),
        ("Q", OPTIONS, ["spy241220p00720000"], False, ["Q.O:spy241220p00720000"]),
        ("Q", OPTIONS, ["o:spy241220p00720000"], False, ["Q.o:spy241220p00720000"]),
        # indices: I: added when missing
        ("V", INDICES, ["SPX"], True, ["V.I:SPX"]),
        ("V", INDICES, ["I:SPX"], True, ["V.I:SPX"]),
        ("AM", INDICES, ["i:ndx"], True, ["AM.I:NDX"]),
        ("A", INDICES, ["spx"], False, ["A.I:spx"]),
        # crypto: X: dropped
        ("XT", CRYPTO, ["BTC-USD"], True, ["XT.BTC-USD"]),
        ("XT", CRYPTO, ["X:BTC-USD"], True, ["XT.BTC-USD"]),
        ("XQ", CRYPTO, ["x:btc-usd"], True, ["XQ.BTC-USD"]),
        ("XA", CRYPTO, ["eth-usd"], False, ["XA.eth-usd"]),
        # forex: C: dropped
        ("C", FOREX, ["EUR/USD"], True, ["C.EUR/USD"]),
        ("C", FOREX, ["C:EUR/USD"], True, ["C.EUR/USD"]),
        ("CA", FOREX, ["c:eur/usd"], True, ["CA.EUR/USD"]),
        ("CAS", FOREX, ["eur/usd"], False, ["CAS.eur/usd"]),
        # symbols that merely start with the prefix letter are not mistaken for prefixed ones
        ("C", FOREX, ["CAD/JPY"], True, ["C.CAD/JPY"]),
        ("XT", CRYPTO, ["XRP-USD"], True, ["XT.XRP-USD"]),
        ("T", OPTIONS, ["ORCL250117C00100000"], True, ["T.O:ORCL250117C00100000"]),
        ("V", INDICES, ["IXIC"], True, ["V.I:IXIC"]),
        # duplicates removed, first occurrence kept in order
        (
            "T",
            STOCKS,
            ["MSFT", "AAPL", "MSFT", "aapl", "GOOG"],
            True,
            ["T.MSFT", "T.AAPL", "T.GOOG"],
        ),
        ("XT", CRYPTO, ["X:BTC-USD", "BTC-USD", "ETH-USD"], True, ["XT.BTC-USD", "XT.ETH-USD"]),
        ("Q", OPTIONS, ["SPY1", "O:SPY1"], True, ["Q.O:SPY1"]),
        # a wildcard inside a list is sent bare, never prefixed
        ("T", STOCKS, ["AAPL", "*"], True, ["T.AAPL", "T.*"]),
        ("Q", OPTIONS, ["*", "SPY1"], True, ["Q.*", "Q.O:SPY1"]),
        ("V", INDICES, ["SPX", "*"], True, ["V.I:SPX", "V.*"]),
        ("XT", CRYPTO, ["*", "*"], True, ["XT.*"]),
        # sets are accepted, in a stable order
        ("T", STOCKS, {"MSFT", "AAPL"}, True, ["T.AAPL", "T.MSFT"]),
        ("T", STOCKS, frozenset({"b", "a"}), True, ["T.A", "T.B"]),
    ],
)
def test_topics_for_lists(
    code: str,
    cluster: StreamCluster,
    symbols: object,
    force_uppercase: bool,
    expected: list[str],
) -> None:
    assert proto.topics_for(code, cluster, symbols, force_uppercase) == (expected, None)


def test_topics_for_list_upper_cases_by_default() -> None:
    assert proto.topics_for("T", STOCKS, ["aapl"]) == (["T.AAPL"], None)


@pytest.mark.parametrize(
    ("symbols", "bad"),
    [
        ([""], ""),
        (["A B"], "A B"),
        (["A,B"], "A,B"),
        ([" AAPL"], " AAPL"),
        (["AAPL "], "AAPL "),
        (["AAPL\t"], "AAPL\t"),
        (["AAPL\n"], "AAPL\n"),
        (["AAPL", 123], 123),
        ([123], 123),
        (["AAPL", None], None),
        ([b"AAPL"], b"AAPL"),
        ([1.5], 1.5),
        ([["AAPL"]], ["AAPL"]),
        (b"AAPL", b"AAPL"),
        ({"AAPL": 1}, {"AAPL": 1}),
        (123, 123),
        (1.5, 1.5),
    ],
)
@pytest.mark.parametrize("cluster", [STOCKS, OPTIONS, CRYPTO])
def test_topics_for_bad_symbols(symbols: object, bad: object, cluster: StreamCluster) -> None:
    with pytest.raises(InvalidSymbolError) as info:
        proto.topics_for("T", cluster, symbols)
    assert repr(bad) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PolygonStreamError)


@pytest.mark.parametrize(("cluster", "prefix"), [(CRYPTO, "X:"), (FOREX, "C:")])
def test_topics_for_prefix_with_nothing_after_it(cluster: StreamCluster, prefix: str) -> None:
    with pytest.raises(InvalidSymbolError) as info:
        proto.topics_for("T", cluster, [prefix])
    assert repr(prefix) in str(info.value)


# -- frames --------------------------------------------------------------------------------


def test_auth_frame_is_json() -> None:
    frame = proto.auth_frame("SECRET-KEY-123")
    assert json.loads(frame) == {"action": "auth", "params": "SECRET-KEY-123"}
    assert list(json.loads(frame)) == ["action", "params"]


@pytest.mark.parametrize("key", ['we"ird\\key', "ключ", "a b"])
def test_auth_frame_escapes(key: str) -> None:
    assert json.loads(proto.auth_frame(key)) == {"action": "auth", "params": key}


@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize(
    "topics",
    [
        ["T.AAPL"],
        ["T.AAPL", "Q.MSFT", "T.BRK.B"],
        ["Q.O:SPY241220P00720000"],
        ["C.EUR/USD"],
    ],
)
def test_subscription_frames_small(action: str, topics: list[str]) -> None:
    frames = proto.subscription_frames(action, topics)
    assert len(frames) == 1
    assert json.loads(frames[0]) == {"action": action, "params": ",".join(topics)}


def test_subscription_frames_empty() -> None:
    assert proto.subscription_frames("subscribe", []) == []


@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize("count", [2_000, 5_000, 20_000])
def test_subscription_frames_split_long_lists(action: str, count: int) -> None:
    topics = [f"Q.O:SPY{n:012d}" for n in range(count)]
    frames = proto.subscription_frames(action, topics)
    assert len(frames) > 1
    seen: list[str] = []
    for frame in frames:
        message = json.loads(frame)
        assert set(message) == {"action", "params"}
        assert message["action"] == action
        assert 0 < len(message["params"]) < proto.MAX_PARAMS_CHARS
        seen.extend(message["params"].split(","))
    assert seen == topics
    # Not more frames than needed: each frame but the last is nearly full.
    for frame in frames[:-1]:
        assert len(json.loads(frame)["params"]) > proto.MAX_PARAMS_CHARS - 30


def test_subscription_frames_exact_boundary() -> None:
    # Topics whose joined length is exactly MAX_PARAMS_CHARS - 1 fit in one frame.
    topic = "T.ABCDEFG"  # 9 characters, 10 with its comma
    n = proto.MAX_PARAMS_CHARS // 10
    topics = [topic] * n
    frames = proto.subscription_frames("subscribe", topics)
    assert len(frames) == 1
    assert len(json.loads(frames[0])["params"]) == 10 * n - 1
    frames = proto.subscription_frames("subscribe", [*topics, topic])
    assert len(frames) == 2


def test_raw_subscription_frame_keeps_params() -> None:
    frame = proto.raw_subscription_frame("subscribe", "t.aapl, Q.MSFT")
    assert json.loads(frame) == {"action": "subscribe", "params": "t.aapl, Q.MSFT"}


# -- status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            {"ev": "status", "status": "connected", "message": "Connected Successfully"},
            ("connected", "Connected Successfully"),
        ),
        ({"ev": "status", "status": "auth_failed"}, ("auth_failed", "")),
        ({"ev": "status", "message": "hello"}, ("", "hello")),
        ({"ev": "status"}, ("", "")),
        ({"ev": "status", "status": 3, "message": None}, ("3", "None")),
    ],
)
def test_status_of(event: dict[str, object], expected: tuple[str, str]) -> None:
    assert proto.status_of(event) == expected


def test_status_sets() -> None:
    assert frozenset({"auth_failed", "auth_timeout"}) == proto.AUTH_FAILURES
    assert frozenset({"max_connections", "force_disconnect", "slow_consumer"}) == (
        proto.SESSION_ENDING
    )


def _field_names(node: object) -> set[str]:
    """Every property name anywhere in a JSON schema document."""
    if isinstance(node, dict):
        names = set(node["properties"]) if isinstance(node.get("properties"), dict) else set()
        for value in node.values():
            names |= _field_names(value)
        return names
    if isinstance(node, list):
        return set().union(*(_field_names(item) for item in node)) if node else set()
    return set()


def test_u_is_in_no_field_name_but_status() -> None:
    # may_hold_status() rules a frame out by the absence of "u": sound only while
    # no stream's field name but "status" has one.
    spec = json.loads((Path(__file__).parent / "data" / "websocket-api.json").read_text())
    names = _field_names(spec)
    assert "status" in names and len(names) > 20
    assert {name for name in names if "u" in name} == {"status"}


STATUS = '{"ev":"status","status":"success","message":"subscribed to: T.*"}'
TRADE = '{"ev":"T","sym":"AAPL","x":4,"i":"123","z":3,"p":114.125,"s":100,"c":[0,12],"t":1,"q":2}'


@pytest.mark.parametrize(
    "frame",
    [
        f"[{STATUS}]",
        f"[{TRADE},{STATUS}]",
        f"[{STATUS},{TRADE},{TRADE}]",
        f"[{TRADE},{STATUS},{TRADE}]",
        '[{"status":"auth_success","ev":"status"}]',
    ],
)
def test_may_hold_status_finds_a_status_anywhere(frame: str) -> None:
    assert proto.may_hold_status(frame)


@pytest.mark.parametrize(
    "frame",
    [
        "[]",
        f"[{TRADE}]",
        f"[{TRADE},{TRADE}]",
        # A "u" in a value alone is not a status either (the search goes on past it).
        '[{"ev":"XT","pair":"BTC-USD","message":"up"}]',
    ],
)
def test_may_hold_status_rules_out_data(frame: str) -> None:
    assert not proto.may_hold_status(frame)


# -- status classification ---------------------------------------------------------------


def status(name: str, message: str = "") -> dict[str, str]:
    return {"ev": "status", "status": name, "message": message}


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("auth_failed", AuthenticationError),
        ("auth_timeout", AuthenticationError),
        ("max_connections", MaxConnectionsError),
        ("force_disconnect", ServerDisconnectError),
        ("slow_consumer", ServerDisconnectError),
    ],
)
def test_session_ending_statuses_give_their_error(name: str, error: type[Exception]) -> None:
    found = proto.session_ending_error(name, "why")
    assert type(found) is error
    assert (found.status, found.message) == (name, "why")
    summary = proto.classify_statuses([{"ev": "T"}, status(name, "why")])
    assert type(summary.session_end) is error
    assert not summary.authenticated


@pytest.mark.parametrize("name", ["connected", "auth_success", "success", "error", "info", ""])
def test_other_statuses_do_not_end_the_session(name: str) -> None:
    assert proto.session_ending_error(name, "") is None


def test_classify_statuses_sorts_a_mixed_frame() -> None:
    events = [
        {"ev": "T", "sym": "AAPL"},
        status("auth_success", "authenticated"),
        status("error", "unknown topic"),
        "not an event",
        {"ev": "status"},
        status("error", "another"),
        status("force_disconnect", "first"),
        status("max_connections", "last wins"),
    ]
    summary = proto.classify_statuses(events)
    assert summary.authenticated
    assert summary.server_errors == ("unknown topic", "another")
    assert isinstance(summary.session_end, MaxConnectionsError)
    assert summary.session_end.message == "last wins"


def test_classify_statuses_of_data_is_the_empty_summary() -> None:
    assert proto.classify_statuses([{"ev": "T"}, {"ev": "Q"}]) is proto.NO_STATUS
    assert proto.classify_statuses([]) == proto.StatusSummary()
