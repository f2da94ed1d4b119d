"""Generated events match the API specification, field for field and type for type."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from polygon.enums import StreamCluster
from polygon.streaming._channels import event_codes, symbol_field
from polygon.streaming.simulator import EventFactory, default_symbols
from polygon.streaming.simulator._data import OTC_SYMBOLS
from polygon.streaming.simulator._market import SymbolMarket

SPEC_PATH = Path(__file__).parent / "data" / "websocket-api.json"

SCHEMA_NAMES: dict[StreamCluster, dict[str, str]] = {
    StreamCluster.STOCKS: {
        "T": "StockTradeEvent",
        "Q": "StockQuoteEvent",
        "A": "StockSecondAggregateEvent",
        "AM": "StockMinuteAggregateEvent",
        "LULD": "StockLULDEvent",
        "NOI": "StockImbalanceEvent",
        "FMV": "BusinessWebsocketFairMarketValue",
        "LV": "LaunchpadWebsocketValueEvent",
    },
    StreamCluster.OPTIONS: {
        "T": "OptionTradeEvent",
        "Q": "OptionQuoteEvent",
        "A": "OptionSecondAggregateEvent",
        "AM": "OptionMinuteAggregateEvent",
        "FMV": "BusinessWebsocketFairMarketValue",
        "LV": "LaunchpadWebsocketValueEvent",
    },
    StreamCluster.FOREX: {
        "C": "ForexQuoteEvent",
        "CA": "ForexMinuteAggregateEvent",
        "CAS": "ForexSecondAggregateEvent",
        "FMV": "BusinessWebsocketFairMarketValue",
        "LV": "LaunchpadWebsocketValueEvent",
    },
    StreamCluster.CRYPTO: {
        "XT": "CryptoTradeEvent",
        "XQ": "CryptoQuoteEvent",
        "XL2": "CryptoL2BookEvent",
        "XA": "CryptoMinuteAggregateEvent",
        "XAS": "CryptoSecondAggregateEvent",
        "FMV": "BusinessWebsocketFairMarketValue",
        "LV": "LaunchpadWebsocketValueEvent",
    },
    StreamCluster.INDICES: {
        "A": "IndicesSecondAggregateEvent",
        "AM": "IndicesMinuteAggregateEvent",
        "V": "IndicesValueEvent",
    },
}

# Fields the service sends only sometimes: the trade reporting facility on
# off-exchange trades, and ``otc`` ("left off if false") on OTC tickers.
CONDITIONAL_FIELDS: dict[tuple[StreamCluster, str], frozenset[str]] = {
    (StreamCluster.STOCKS, "T"): frozenset({"trfi", "trft"}),
    (StreamCluster.STOCKS, "A"): frozenset({"otc"}),
    (StreamCluster.STOCKS, "AM"): frozenset({"otc"}),
}

CASES = [(cluster, code) for cluster in StreamCluster for code in event_codes(cluster)]


def _case_id(case: tuple[StreamCluster, str]) -> str:
    return f"{case[0].value}-{case[1]}"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    return loaded


def resolve(node: Any, spec: dict[str, Any]) -> Any:
    """``node`` with every ``$ref`` replaced by what it points to."""
    if isinstance(node, list):
        return [resolve(item, spec) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return resolve(target, spec)
    return {key: resolve(value, spec) for key, value in node.items()}


def properties(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The merged properties of a schema, following ``allOf`` and ``$ref``."""
    schema = resolve(schema, spec)
    merged: dict[str, dict[str, Any]] = {}
    for part in schema.get("allOf", []):
        for name, prop in properties(part, spec).items():
            merged.setdefault(name, {}).update(prop)
    for name, prop in schema.get("properties", {}).items():
        merged.setdefault(name, {}).update(prop)
    return merged


def schema_properties(spec: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return properties(spec["components"]["schemas"][name], spec)


def type_errors(value: Any, prop: dict[str, Any], where: str) -> list[str]:
    """What is wrong with ``value`` under the JSON schema ``prop`` (types and enums)."""
    if "enum" in prop and value not in prop["enum"]:
        return [f"{where}={value!r} not in {prop['enum']}"]
    expected = prop.get("type")
    checks = {
        # bool is an int in Python but not in JSON.
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, float),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        None: value is not None,
    }
    if not checks.get(expected, False):
        return [f"{where}={value!r} is not of type {expected}"]
    errors: list[str] = []
    if expected == "array" and "items" in prop:
        for index, item in enumerate(value):
            errors.extend(type_errors(item, prop["items"], f"{where}[{index}]"))
    return errors


def sample_symbols(cluster: StreamCluster) -> list[str]:
    symbols = list(default_symbols(cluster))
    if cluster is StreamCluster.STOCKS:
        symbols.append(sorted(OTC_SYMBOLS)[0])
    return symbols


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_generated_events_have_exactly_the_spec_fields(
    case: tuple[StreamCluster, str], spec: dict[str, Any]
) -> None:
    cluster, code = case
    props = schema_properties(spec, SCHEMA_NAMES[cluster][code])
    conditional = CONDITIONAL_FIELDS.get(case, frozenset())
    factory = EventFactory(cluster, seed=7)
    seen: set[str] = set()
    for round_ in range(30):
        for symbol in sample_symbols(cluster):
            # What a client decodes, not what Python built.
            event = orjson.loads(orjson.dumps(factory.make(code, symbol)))
            where = f"{cluster.value} {code} #{round_}"
            assert set(event) <= set(props), f"{where}: extra fields {set(event) - set(props)}"
            missing = set(props) - conditional - set(event)
            assert not missing, f"{where}: missing fields {missing}"
            errors = [e for k, v in event.items() for e in type_errors(v, props[k], k)]
            assert not errors, f"{where}: {errors}"
            assert event["ev"] == code
            assert event[symbol_field(cluster, code)] == symbol
            seen |= set(event)
    # Over many events every field of the schema shows up, conditional ones too.
    assert seen == set(props)


@pytest.mark.timeout(10)
def test_schema_table_matches_the_spec_paths(spec: dict[str, Any]) -> None:
    """The code-to-schema table above agrees with the spec's own per-path schemas."""
    for cluster, table in SCHEMA_NAMES.items():
        assert set(table) == set(event_codes(cluster)), cluster
        for code, name in table.items():
            prefix = {"FMV": "/business", "LV": "/launchpad"}.get(code, "")
            path = f"{prefix}/{cluster.value}/{code}"
            response = spec["paths"][path]["get"]["responses"]["200"]
            path_schema = response["content"]["application/json"]["schema"]
            path_props = properties(path_schema, spec)
            assert set(path_props) == set(schema_properties(spec, name)), path


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_sequence_numbers_increase_per_symbol(case: tuple[StreamCluster, str]) -> None:
    cluster, code = case
    factory = EventFactory(cluster)
    last: dict[str, int] = defaultdict(int)
    for _ in range(20):
        for symbol in default_symbols(cluster):
            event = factory.make(code, symbol)
            if "q" not in event:
                return
            assert event["q"] > last[symbol]
            last[symbol] = event["q"]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_prices_are_coherent(case: tuple[StreamCluster, str]) -> None:
    cluster, code = case
    factory = EventFactory(cluster, seed=3)
    for _ in range(20):
        for symbol in default_symbols(cluster):
            event = factory.make(code, symbol)
            # Forex quotes name their sides "b" and "a"; elsewhere those mean other things.
            bid, ask = ("b", "a") if code == "C" else ("bp", "ap")
            if bid in event:
                assert 0 < event[bid] < event[ask], event
            if "h" in event and "o" in event:
                assert event["l"] <= min(event["o"], event["c"]) <= event["h"], event
                assert event["l"] <= max(event["o"], event["c"]) <= event["h"], event
                assert event["s"] < event["e"], event
            # "p" is a price only in trades (the forex quote keeps its pair there).
            price_fields = ("p", "fmv", "val") if code in ("T", "XT") else ("fmv", "val")
            for field in price_fields:
                if field in event:
                    assert isinstance(event[field], float) and event[field] > 0, event


@pytest.mark.timeout(10)
def test_crypto_book_levels_are_price_size_pairs() -> None:
    book = EventFactory("crypto", seed=1).make("XL2", "BTC-USD")
    bids, asks = book["b"], book["a"]
    assert bids and asks
    assert all(len(level) == 2 and level[1] > 0 for level in bids + asks)
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    assert bids[0][0] < asks[0][0]
    assert book["r"] >= book["t"]


@pytest.mark.timeout(10)
def test_same_seed_same_events_apart_from_time() -> None:
    time_fields = {"t", "r", "s", "e", "trft"}

    def run(seed: int) -> list[dict[str, Any]]:
        factory = EventFactory(StreamCluster.STOCKS, seed=seed)
        events = [factory.make(code, "AAPL") for code in event_codes(StreamCluster.STOCKS) * 5]
        return [{k: v for k, v in e.items() if k not in time_fields} for e in events]

    assert run(11) == run(11)
    assert run(11) != run(12)


@pytest.mark.timeout(10)
def test_default_universes() -> None:
    stocks = default_symbols("stocks")
    assert {"AAPL", "MSFT", "NVDA", "SPY", "QQQ", "BRK.B"} <= set(stocks)
    options = default_symbols(StreamCluster.OPTIONS)
    assert "O:SPY241220P00720000" in options
    for contract in options:
        # O: + root + YYMMDD + C/P + strike * 1000 in eight digits.
        body = contract.removeprefix("O:")
        assert contract.startswith("O:") and body[-9] in "CP" and body[-8:].isdigit()
        assert body[-15:-9].isdigit()
    assert all("/" in pair and not pair.startswith("C:") for pair in default_symbols("forex"))
    assert all("-" in pair and not pair.startswith("X:") for pair in default_symbols("crypto"))
    assert set(default_symbols("indices")) == {"I:SPX", "I:NDX", "I:DJI", "I:VIX", "I:RUT"}


@pytest.mark.timeout(10)
def test_unknown_event_code_is_refused() -> None:
    factory = EventFactory(StreamCluster.FOREX)
    with pytest.raises(ValueError, match="XT"):
        factory.make("XT", "BTC-USD")
    assert factory.event_codes == event_codes(StreamCluster.FOREX)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cluster", list(StreamCluster), ids=lambda c: c.value)
def test_the_generated_market_sends_exactly_the_spec_fields(
    cluster: StreamCluster, spec: dict[str, Any]
) -> None:
    """What the market generates over time (not only make()) matches the schemas too."""
    factory = EventFactory(cluster, seed=5)
    seen: dict[str, set[str]] = defaultdict(set)
    for symbol in sample_symbols(cluster):
        market = SymbolMarket(factory, symbol)
        now = 1_748_871_000_000 + 500.0
        events = market.open(now, 4.0)
        for _ in range(160):  # two and a half market minutes
            now += 1_000.0
            events += market.advance(now, 4.0)
        for event in orjson.loads(orjson.dumps(events)):
            code = event["ev"]
            props = schema_properties(spec, SCHEMA_NAMES[cluster][code])
            conditional = CONDITIONAL_FIELDS.get((cluster, code), frozenset())
            assert set(props) - conditional <= set(event) <= set(props), event
            errors = [e for k, v in event.items() for e in type_errors(v, props[k], k)]
            assert not errors, f"{code}: {errors}"
            assert event[symbol_field(cluster, code)] == symbol
            seen[code] |= set(event)
    # Every stream of the cluster is generated, with every field of its schema.
    assert set(seen) == set(event_codes(cluster))
    for code, fields in seen.items():
        assert fields == set(schema_properties(spec, SCHEMA_NAMES[cluster][code])), code


@pytest.mark.timeout(10)
@pytest.mark.parametrize("cluster", list(StreamCluster), ids=lambda c: c.value)
def test_one_off_bars_span_their_window(cluster: StreamCluster) -> None:
    factory = EventFactory(cluster, seed=2, clock=lambda: 1_748_871_000_123)
    for code in event_codes(cluster):
        if code in ("A", "CAS", "XAS", "AM", "CA", "XA"):
            bar = factory.make(code, default_symbols(cluster)[0])
            length = 60_000 if code in ("AM", "CA", "XA") else 1_000
            assert bar["e"] - bar["s"] == length and bar["s"] % length == 0, bar
            assert bar["e"] <= 1_748_871_000_123, bar
