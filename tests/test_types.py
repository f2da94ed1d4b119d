"""The typed events agree with the specification and with what the simulator sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polygon.enums import StreamCluster
from polygon.streaming import types
from polygon.streaming._channels import event_codes
from polygon.streaming.simulator import EventFactory, default_symbols

pytestmark = pytest.mark.timeout(10)

SPEC = json.loads((Path(__file__).parent / "data" / "websocket-api.json").read_text())
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]

# Our type -> the specification's schema for it.
SCHEMA_OF = {
    "StockTradeEvent": "StockTradeEvent",
    "StockQuoteEvent": "StockQuoteEvent",
    "StockSecondAggregateEvent": "StockSecondAggregateEvent",
    "StockMinuteAggregateEvent": "StockMinuteAggregateEvent",
    "StockLimitUpLimitDownEvent": "StockLULDEvent",
    "StockImbalanceEvent": "StockImbalanceEvent",
    "OptionTradeEvent": "OptionTradeEvent",
    "OptionQuoteEvent": "OptionQuoteEvent",
    "OptionSecondAggregateEvent": "OptionSecondAggregateEvent",
    "OptionMinuteAggregateEvent": "OptionMinuteAggregateEvent",
    "ForexQuoteEvent": "ForexQuoteEvent",
    "ForexMinuteAggregateEvent": "ForexMinuteAggregateEvent",
    "ForexSecondAggregateEvent": "ForexSecondAggregateEvent",
    "CryptoTradeEvent": "CryptoTradeEvent",
    "CryptoQuoteEvent": "CryptoQuoteEvent",
    "CryptoLevel2BookEvent": "CryptoL2BookEvent",
    "CryptoMinuteAggregateEvent": "CryptoMinuteAggregateEvent",
    "CryptoSecondAggregateEvent": "CryptoSecondAggregateEvent",
    "IndicesSecondAggregateEvent": "IndicesSecondAggregateEvent",
    "IndicesMinuteAggregateEvent": "IndicesMinuteAggregateEvent",
    "IndexValueEvent": "IndicesValueEvent",
    "FairMarketValueEvent": "BusinessWebsocketFairMarketValue",
    "LaunchpadValueEvent": "LaunchpadWebsocketValueEvent",
}


def spec_properties(name: str) -> set[str]:
    schema = SCHEMAS[name]
    if "$ref" in schema:
        return spec_properties(schema["$ref"].rsplit("/", 1)[-1])
    found = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        if "$ref" in part:
            found |= spec_properties(part["$ref"].rsplit("/", 1)[-1])
        found |= set(part.get("properties", {}))
    return found


def keys_of(kind: type) -> set[str]:
    return set(kind.__annotations__)


ALL_TYPES = sorted(
    {(name, kind) for by_code in types.EVENT_TYPES.values() for kind in by_code.values()
     for name in [kind.__name__] if name != "StatusEvent"},
    key=lambda pair: pair[0],
)  # fmt: skip


@pytest.mark.parametrize(("name", "kind"), ALL_TYPES, ids=[n for n, _ in ALL_TYPES])
def test_every_type_has_exactly_the_fields_of_its_schema(name: str, kind: type) -> None:
    spec = spec_properties(SCHEMA_OF[name])
    ours = keys_of(kind)
    # The specification leaves out some fields the live feed sends (crypto
    # aggregates' ox/cx, the crypto trade ID's optionality): ours may add, never miss.
    assert spec <= ours, f"{name} lacks {sorted(spec - ours)}"
    assert ours - spec <= {"ox", "cx"}, f"{name} adds {sorted(ours - spec)}"


@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_every_event_code_of_every_cluster_has_a_type(cluster: StreamCluster) -> None:
    assert set(types.EVENT_TYPES[cluster.value]) == {*event_codes(cluster), "status"}


@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_generated_events_fit_their_types(cluster: StreamCluster) -> None:
    factory = EventFactory(cluster, seed=7)
    symbol = default_symbols(cluster)[0]
    for code in event_codes(cluster):
        kind = types.EVENT_TYPES[cluster.value][code]
        for _ in range(20):
            event = factory.make(code, symbol)
            assert set(event) <= keys_of(kind), (code, set(event) - keys_of(kind))
            assert set(event) >= kind.__required_keys__, (code, kind.__required_keys__ - set(event))
            assert types.is_event(event, kind)


def test_is_event_compares_only_the_code() -> None:
    trade = {"ev": "T", "sym": "AAPL"}
    assert types.is_event(trade, types.StockTradeEvent)
    assert not types.is_event(trade, types.StockQuoteEvent)
    assert not types.is_event({"sym": "AAPL"}, types.StockTradeEvent)
    assert types.is_event({"ev": "status"}, types.StatusEvent)


def test_optional_keys_are_not_required_on_every_python() -> None:
    # typing.TypedDict before 3.11 would count these NotRequired keys as required.
    assert {"c", "trfi", "trft"} <= types.StockTradeEvent.__optional_keys__
    assert not {"c", "trfi", "trft"} & types.StockTradeEvent.__required_keys__
    assert {"ev", "sym", "p", "s", "t"} <= types.StockTradeEvent.__required_keys__
    assert {"c", "i"} <= types.StockQuoteEvent.__optional_keys__
