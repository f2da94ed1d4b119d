"""The desired subscriptions, and turning a subscribe/unsubscribe call into a change."""

from __future__ import annotations

import threading

import pytest

from polygon.enums import StreamCluster
from polygon.streaming._channels import STREAMS, STREAMS_BY_NAME, Stream
from polygon.streaming._subscriptions import (
    Change,
    DesiredSubscriptions,
    commit,
    plan_request,
    stream_for,
)
from polygon.streaming.errors import (
    InvalidSymbolError,
    PolygonStreamError,
    StreamNotAvailableError,
)

pytestmark = pytest.mark.timeout(10)

STOCKS = StreamCluster.STOCKS
OPTIONS = StreamCluster.OPTIONS
CRYPTO = StreamCluster.CRYPTO
INDICES = StreamCluster.INDICES


def record_change(
    desired: DesiredSubscriptions,
    action: str,
    name: str,
    cluster: StreamCluster,
    symbols: object,
    force_uppercase: bool = True,
) -> Change:
    """Validate a call and record it, as a client does."""
    return commit(desired, plan_request(action, name, cluster, symbols, force_uppercase))


# -- DesiredSubscriptions ----------------------------------------------------------------


def test_empty() -> None:
    desired = DesiredSubscriptions()
    assert desired.topics() == []
    assert len(desired) == 0
    assert "T.AAPL" not in desired


def test_add_returns_only_new_topics_in_order() -> None:
    desired = DesiredSubscriptions()
    assert desired.add(["T.MSFT", "T.AAPL"]) == ["T.MSFT", "T.AAPL"]
    assert desired.add(["T.GOOG", "T.AAPL", "T.GOOG", "Q.AAPL"]) == ["T.GOOG", "Q.AAPL"]
    assert desired.add(["T.AAPL"]) == []
    assert desired.add([]) == []
    assert desired.topics() == ["T.MSFT", "T.AAPL", "T.GOOG", "Q.AAPL"]
    assert len(desired) == 4
    assert "T.GOOG" in desired


def test_add_accepts_any_iterable() -> None:
    desired = DesiredSubscriptions()
    assert desired.add(iter(["T.A", "T.B", "T.A"])) == ["T.A", "T.B"]
    assert desired.add(t for t in ("T.C", "T.A")) == ["T.C"]
    assert desired.topics() == ["T.A", "T.B", "T.C"]


def test_remove_returns_only_present_topics_in_order() -> None:
    desired = DesiredSubscriptions()
    desired.add(["T.A", "T.B", "T.C", "T.D"])
    assert desired.remove(["T.D", "T.X", "T.B", "T.D"]) == ["T.D", "T.B"]
    assert desired.remove(["T.B"]) == []
    assert desired.remove([]) == []
    assert desired.topics() == ["T.A", "T.C"]
    assert "T.B" not in desired
    assert len(desired) == 2


def test_readding_goes_to_the_end() -> None:
    desired = DesiredSubscriptions()
    desired.add(["T.A", "T.B", "T.C"])
    desired.remove(["T.A"])
    assert desired.add(["T.A"]) == ["T.A"]
    assert desired.topics() == ["T.B", "T.C", "T.A"]


def test_snapshot_is_independent() -> None:
    desired = DesiredSubscriptions()
    desired.add(["T.A", "T.B"])
    snapshot = desired.topics()
    snapshot.append("T.Z")
    snapshot.remove("T.A")
    assert desired.topics() == ["T.A", "T.B"]
    desired.add(["T.C"])
    desired.remove(["T.B"])
    assert snapshot == ["T.B", "T.Z"]
    assert desired.topics() is not desired.topics()


# -- stream_for -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_stream_for(stream: Stream, cluster: StreamCluster) -> None:
    name = stream.name
    if cluster in stream.clusters:
        assert stream_for(name, cluster) is stream
    else:
        with pytest.raises(StreamNotAvailableError) as info:
            stream_for(name, cluster)
        assert name in str(info.value)
        assert cluster.value in str(info.value)


@pytest.mark.parametrize(
    ("name", "cluster"),
    [
        ("stock_trades", CRYPTO),
        ("option_quotes", STOCKS),
        ("crypto_level2_book", StreamCluster.FOREX),
        ("fair_market_value", INDICES),
        ("index_value", STOCKS),
    ],
)
def test_stream_not_available(name: str, cluster: StreamCluster) -> None:
    with pytest.raises(StreamNotAvailableError) as info:
        plan_request("subscribe", name, cluster, ["AAPL"], True)
    message = str(info.value)
    assert name in message
    assert cluster.value in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PolygonStreamError)


# -- plan_request / commit ------------------------------------------------------------------


def test_subscribe_sends_only_new_topics() -> None:
    desired = DesiredSubscriptions()
    change = record_change(desired, "subscribe", "stock_trades", STOCKS, ["aapl", "MSFT"])
    assert change == Change("subscribe", ["T.AAPL", "T.MSFT"], None)
    assert not change.is_empty
    change = record_change(desired, "subscribe", "stock_trades", STOCKS, ["MSFT", "GOOG"])
    assert change.topics == ["T.GOOG"]
    change = record_change(desired, "subscribe", "stock_trades", STOCKS, ["AAPL"])
    assert change.topics == []
    assert change.raw is None
    assert change.is_empty
    assert desired.topics() == ["T.AAPL", "T.MSFT", "T.GOOG"]


def test_subscribe_every_symbol() -> None:
    desired = DesiredSubscriptions()
    change = record_change(desired, "subscribe", "crypto_trades", CRYPTO, None)
    assert change == Change("subscribe", ["XT.*"], None)
    assert desired.topics() == ["XT.*"]


def test_subscribe_applies_cluster_prefixes() -> None:
    desired = DesiredSubscriptions()
    record_change(desired, "subscribe", "option_quotes", OPTIONS, ["spy241220p00720000"])
    assert desired.topics() == ["Q.O:SPY241220P00720000"]
    indices = DesiredSubscriptions()
    change = record_change(indices, "subscribe", "index_value", INDICES, ["spx", "I:NDX"])
    assert change.topics == ["V.I:SPX", "V.I:NDX"]


def test_raw_string_is_sent_as_given_even_if_already_desired() -> None:
    desired = DesiredSubscriptions()
    first = record_change(desired, "subscribe", "stock_trades", STOCKS, "T.AAPL,Q.MSFT")
    assert first == Change("subscribe", ["T.AAPL", "Q.MSFT"], "T.AAPL,Q.MSFT")
    again = record_change(desired, "subscribe", "stock_trades", STOCKS, "T.AAPL,Q.MSFT")
    assert again == Change("subscribe", ["T.AAPL", "Q.MSFT"], "T.AAPL,Q.MSFT")
    assert not again.is_empty
    assert desired.topics() == ["T.AAPL", "Q.MSFT"]


def test_raw_string_not_upper_cased() -> None:
    desired = DesiredSubscriptions()
    change = record_change(desired, "subscribe", "stock_trades", STOCKS, "t.aapl")
    assert change.raw == "t.aapl"
    assert desired.topics() == ["t.aapl"]


def test_unsubscribe_sends_every_named_topic() -> None:
    desired = DesiredSubscriptions()
    record_change(desired, "subscribe", "stock_quotes", STOCKS, ["AAPL", "MSFT", "GOOG"])
    change = record_change(desired, "unsubscribe", "stock_quotes", STOCKS, ["msft", "NFLX"])
    assert change == Change("unsubscribe", ["Q.MSFT", "Q.NFLX"], None)
    assert desired.topics() == ["Q.AAPL", "Q.GOOG"]
    change = record_change(desired, "unsubscribe", "stock_quotes", STOCKS, ["MSFT"])
    assert change.topics == ["Q.MSFT"]
    assert not change.is_empty


def test_unsubscribe_every_symbol_drops_only_the_wildcard() -> None:
    desired = DesiredSubscriptions()
    record_change(desired, "subscribe", "stock_trades", STOCKS, ["AAPL"])
    record_change(desired, "subscribe", "stock_trades", STOCKS, "all")
    change = record_change(desired, "unsubscribe", "stock_trades", STOCKS, [])
    assert change == Change("unsubscribe", ["T.*"], None)
    assert desired.topics() == ["T.AAPL"]


def test_unsubscribe_raw_string() -> None:
    desired = DesiredSubscriptions()
    record_change(desired, "subscribe", "stock_trades", STOCKS, ["AAPL", "MSFT"])
    change = record_change(desired, "unsubscribe", "stock_trades", STOCKS, "T.AAPL")
    assert change == Change("unsubscribe", ["T.AAPL"], "T.AAPL")
    assert desired.topics() == ["T.MSFT"]


def test_request_names_its_stream() -> None:
    request = plan_request("subscribe", "forex_quotes", StreamCluster.FOREX, ["C:EUR/USD"], True)
    assert request.stream is STREAMS_BY_NAME["forex_quotes"]
    assert request.topics == ["C.EUR/USD"]
    assert request.raw is None
    assert request.action == "subscribe"


@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
@pytest.mark.parametrize(
    "symbols",
    [["AAPL", ""], ["AAPL", "A B"], ["AAPL", "A,B"], [" AAPL"], ["AAPL", None], [123], b"AAPL"],
)
def test_bad_symbols_leave_desired_unchanged(action: str, symbols: object) -> None:
    desired = DesiredSubscriptions()
    record_change(desired, "subscribe", "stock_trades", STOCKS, ["MSFT", "AAPL"])
    with pytest.raises(InvalidSymbolError):
        record_change(desired, action, "stock_trades", STOCKS, symbols)
    assert desired.topics() == ["T.MSFT", "T.AAPL"]


# -- threads ----------------------------------------------------------------------------------


def test_concurrent_changes_end_with_the_exact_set() -> None:
    desired = DesiredSubscriptions()
    threads_count, per_thread = 40, 100
    barrier = threading.Barrier(threads_count, timeout=5)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            mine = [f"T.S{n}X{i}" for i in range(per_thread)]
            barrier.wait()
            for topic in mine:
                assert desired.add([topic]) == [topic]
            for _ in range(3):
                desired.add(mine)
                desired.topics()
            odd = mine[1::2]
            assert desired.remove(odd) == odd
            assert desired.remove(odd) == []
        except BaseException as exc:  # reported from the main thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=8)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    expected = {f"T.S{n}X{i}" for n in range(threads_count) for i in range(0, per_thread, 2)}
    topics = desired.topics()
    assert len(topics) == len(expected)
    assert set(topics) == expected
    assert len(desired) == len(expected)
    # Each thread's topics are still in the order it added them.
    for n in range(threads_count):
        own = [t for t in topics if t.startswith(f"T.S{n}X")]
        assert own == [f"T.S{n}X{i}" for i in range(0, per_thread, 2)]
