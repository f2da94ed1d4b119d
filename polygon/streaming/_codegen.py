"""Generates the ``subscribe_*`` / ``unsubscribe_*`` methods of both clients.

The methods are real, typed, documented methods (mypy and Sphinx see them),
made from the one stream table in :mod:`polygon.streaming._channels` instead of
being written out by hand forty-six times per client. The output is committed;
a test fails when it is out of date. Regenerate with::

    python -m polygon.streaming._codegen
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from polygon.enums import StreamCluster
from polygon.streaming._channels import STREAMS, Stream

HERE = Path(__file__).parent

# The reference page names the index value unsubscribe method both ways.
ALIASES = {"unsubscribe_indices_value": "unsubscribe_index_value"}

_SYMBOL_NOTES = {
    StreamCluster.STOCKS: "Tickers such as ``'AAPL'`` or ``'BRK.B'``.",
    StreamCluster.OPTIONS: (
        "Option contracts such as ``'SPY241220P00720000'``; the ``O:`` prefix is added "
        "when missing."
    ),
    StreamCluster.FOREX: (
        "Currency pairs such as ``'EUR/USD'``; a ``C:`` prefix is accepted and dropped."
    ),
    StreamCluster.CRYPTO: (
        "Crypto pairs such as ``'BTC-USD'``; an ``X:`` prefix is accepted and dropped."
    ),
    StreamCluster.INDICES: (
        "Index tickers such as ``'SPX'``; the ``I:`` prefix is added when missing."
    ),
}

_EXAMPLE_SYMBOLS = {
    StreamCluster.STOCKS: "['AAPL', 'MSFT']",
    StreamCluster.OPTIONS: "['SPY241220P00720000']",
    StreamCluster.FOREX: "['EUR/USD']",
    StreamCluster.CRYPTO: "['BTC-USD']",
    StreamCluster.INDICES: "['SPX']",
}

_CLUSTER_ORDER = list(StreamCluster)

# The TypedDict (polygon.streaming.types) of each stream's events, which types
# its handler_function.
EVENT_TYPE = {
    "fair_market_value": "FairMarketValueEvent",
    "stock_trades": "StockTradeEvent",
    "stock_quotes": "StockQuoteEvent",
    "stock_minute_aggregates": "StockMinuteAggregateEvent",
    "stock_second_aggregates": "StockSecondAggregateEvent",
    "stock_limit_up_limit_down": "StockLimitUpLimitDownEvent",
    "stock_imbalances": "StockImbalanceEvent",
    "option_trades": "OptionTradeEvent",
    "option_quotes": "OptionQuoteEvent",
    "option_minute_aggregates": "OptionMinuteAggregateEvent",
    "option_second_aggregates": "OptionSecondAggregateEvent",
    "forex_quotes": "ForexQuoteEvent",
    "forex_minute_aggregates": "ForexMinuteAggregateEvent",
    "forex_second_aggregates": "ForexSecondAggregateEvent",
    "crypto_trades": "CryptoTradeEvent",
    "crypto_quotes": "CryptoQuoteEvent",
    "crypto_minute_aggregates": "CryptoMinuteAggregateEvent",
    "crypto_second_aggregates": "CryptoSecondAggregateEvent",
    "crypto_level2_book": "CryptoLevel2BookEvent",
    "indices_minute_aggregates": "IndicesMinuteAggregateEvent",
    "indices_second_aggregates": "IndicesSecondAggregateEvent",
    "index_value": "IndexValueEvent",
}

_HEADER = '''"""Generated from the stream table by ``python -m polygon.streaming._codegen``."""

from __future__ import annotations

from typing import Any

from polygon.streaming._protocol import Symbols
from polygon.streaming.types import (
{type_imports}
)


class {cls}:
    """The stream methods of {client}.

    One ``subscribe_*`` and one ``unsubscribe_*`` method per row of the stream table.
    """

    {prefix}def _subscribe(
        self,
        stream: str,
        symbols: Symbols,
        handler_function: EventHandler[Any] | None,
        force_uppercase_symbols: bool,
    ) -> None:
        raise NotImplementedError

    {prefix}def _unsubscribe(
        self,
        stream: str,
        symbols: Symbols,
        force_uppercase_symbols: bool,
    ) -> None:
        raise NotImplementedError
'''

_SUBSCRIBE = '''
    {prefix}def subscribe_{name}(
        self,
        symbols: Symbols = None,
{params}    ) -> None:
        """{docstring}
        """
        {await_}self._subscribe(
            "{name}",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )
'''

_UNSUBSCRIBE = '''
    {prefix}def {method}(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """{docstring}
        """
        {await_}self._unsubscribe("{name}", symbols, force_uppercase_symbols)
'''

_INDENT = " " * 8

# The async client keeps the reference page's order, (symbols, handler_function,
# force_uppercase_symbols); the blocking client's older signature is (symbols,
# force_uppercase_symbols), so its handler_function is keyword-only.
_PARAMS = {
    "async": (
        "        handler_function: EventHandler[{event_type}] | None = None,\n"
        "        force_uppercase_symbols: bool = True,\n"
    ),
    "sync": (
        "        force_uppercase_symbols: bool = True,\n"
        "        *,\n"
        "        handler_function: EventHandler[{event_type}] | None = None,\n"
    ),
}
_WIDTH = 96


def _paragraph(text: str) -> str:
    return textwrap.fill(text, _WIDTH, initial_indent=_INDENT, subsequent_indent=_INDENT)


def _field(name: str, text: str) -> str:
    return textwrap.fill(
        f":{name}: {text}", _WIDTH, initial_indent=_INDENT, subsequent_indent=_INDENT + "    "
    )


def _docstring(summary: str, *blocks: str) -> str:
    body = "\n\n".join(b for b in blocks if b)
    return f"{summary}\n\n{body}"


_RAISES_SYMBOL = (
    "raises ~polygon.streaming.errors.InvalidSymbolError",
    "a symbol is not a non-empty string free of commas and whitespace; nothing is recorded "
    "or sent.",
)
_RAISES_STREAM = (
    "raises ~polygon.streaming.errors.StreamNotAvailableError",
    "the client's cluster does not serve this stream.",
)
_ALL_SYMBOLS = (
    "``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string is sent "
    "exactly as given, as the request's ``params``."
)


def _subscribe_doc(stream: Stream, flavour: dict[str, str], fields: dict[str, str]) -> str:
    params = "\n".join(
        [
            _field("param symbols", f"{fields['symbol_note']} {_ALL_SYMBOLS}"),
            _field("param handler_function", flavour["handler_doc"]),
            _field("param force_uppercase_symbols", "upper-case the symbols before sending them."),
            _field(*_RAISES_SYMBOL),
            _field(*_RAISES_STREAM),
        ]
    )
    call = f"{flavour['await_']}client.subscribe_{stream.name}("
    args = f"{fields['example']}, {flavour['example_handler']}"
    if len(_INDENT) + 4 + len(call) + len(args) + 1 > 100:
        args = f"\n{_INDENT}        {args}\n{_INDENT}    "
    example = f"{_INDENT}Example::\n\n{_INDENT}    {call}{args})"
    return _docstring(
        f"Subscribe to {fields['title']} (``{stream.event_code}`` events).",
        _paragraph(f"{stream.description} {fields['where']}"),
        params,
        _paragraph(flavour["returns"]),
        example,
    )


def _unsubscribe_doc(
    stream: Stream, flavour: dict[str, str], fields: dict[str, str], alias: str
) -> str:
    symbols = (
        f"the symbols to drop, written as for :meth:`subscribe_{stream.name}`; ``None``, "
        f"``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription "
        f"(``{stream.event_code}.*``) only."
    )
    params = "\n".join(
        [
            _field("param symbols", symbols),
            _field("param force_uppercase_symbols", "upper-case the symbols before sending them."),
            _field(*_RAISES_SYMBOL),
        ]
    )
    note = (
        _paragraph(f"The same as :meth:`{alias}`, under the name the reference docs use.")
        if alias
        else ""
    )
    return _docstring(
        f"Unsubscribe from {fields['title']} (``{stream.event_code}`` events).",
        note,
        params,
        _paragraph(flavour["returns"]),
    )


_FLAVOURS = {
    "async": {
        "path": HERE / "_async_methods.py",
        "cls": "AsyncStreamMethods",
        "client": ":class:`~polygon.streaming.async_streaming.AsyncStreamClient`",
        "prefix": "async ",
        "await_": "await ",
        "handler_type": "Handler",
        "kind": "async",
        "example_handler": "on_event",
        "handler_doc": (
            "called with each decoded event of this stream (a dict); a function or a "
            "coroutine function. It replaces the handler for these events; without one the "
            "current handler stays (at first, one that prints)."
        ),
        "returns": (
            "Returns once the request is on the wire. With no connection up and no reconnect "
            "loop running, it connects and logs in first; while the loop is reconnecting, the "
            "change is recorded and sent on the next connection."
        ),
    },
    "sync": {
        "path": HERE / "_sync_methods.py",
        "cls": "SyncStreamMethods",
        "client": ":class:`~polygon.streaming.streaming.StreamClient`",
        "prefix": "",
        "await_": "",
        "handler_type": "SyncHandler",
        "kind": "sync",
        "example_handler": "handler_function=on_event",
        "handler_doc": (
            "keyword-only: a plain function, called with each decoded event of this stream "
            "(a dict) on the dispatcher thread, or on the thread running ``iter_messages()`` "
            "when there is no dispatcher; a coroutine function raises :class:`TypeError`. It "
            "replaces the handler for these events; without one the current handler stays "
            "(at first, one that prints)."
        ),
        "returns": (
            "Blocks until the request is on the wire while the stream runs; before the stream "
            "starts, or while it reconnects, the change is recorded and sent on the next "
            "connection. Safe to call from any thread. Raises "
            ":class:`~polygon.streaming.errors.StreamConnectionError` if the loop thread "
            "does not answer within the client's ``call_timeout``."
        ),
    },
}


def _where(stream: Stream) -> str:
    clusters = [c.value for c in _CLUSTER_ORDER if c in stream.clusters]
    if len(clusters) == 1:
        return f"Served on the {clusters[0]} cluster."
    return "Served on the " + ", ".join(clusters[:-1]) + f" and {clusters[-1]} clusters."


def _first_cluster(stream: Stream) -> StreamCluster:
    return next(c for c in _CLUSTER_ORDER if c in stream.clusters)


def _symbol_note(stream: Stream) -> str:
    if len(stream.clusters) > 1:
        return "Symbols as the client's cluster writes them (see :ref:`symbol-rules`)."
    return _SYMBOL_NOTES[_first_cluster(stream)]


def _methods(stream: Stream, flavour: dict[str, str]) -> str:
    fields = {
        "title": stream.name.replace("_", " "),
        "where": _where(stream),
        "symbol_note": _symbol_note(stream),
        "example": _EXAMPLE_SYMBOLS[_first_cluster(stream)],
    }
    event_type = EVENT_TYPE[stream.name]
    params = _PARAMS[flavour["kind"]].format(event_type=event_type)
    common = {**flavour, "name": stream.name, "event_type": event_type, "params": params}
    text = _SUBSCRIBE.format(docstring=_subscribe_doc(stream, flavour, fields), **common)
    unsubscribe = f"unsubscribe_{stream.name}"
    text += _UNSUBSCRIBE.format(
        method=unsubscribe, docstring=_unsubscribe_doc(stream, flavour, fields, ""), **common
    )
    for alias, target in ALIASES.items():
        if target == unsubscribe:
            doc = _unsubscribe_doc(stream, flavour, fields, target)
            text += _UNSUBSCRIBE.format(method=alias, docstring=doc, **common)
    return text


def render(kind: str) -> str:
    flavour = _FLAVOURS[kind]
    names = sorted({"EventHandler", *EVENT_TYPE.values()})
    imports = "\n".join(f"    {name}," for name in names)
    header_fields = {k: v for k, v in flavour.items() if k != "path"}
    parts = [_HEADER.format(type_imports=imports, **header_fields)]
    parts.extend(_methods(stream, {k: str(v) for k, v in flavour.items()}) for stream in STREAMS)
    return "".join(parts)


def outputs() -> dict[Path, str]:
    return {Path(str(flavour["path"])): render(kind) for kind, flavour in _FLAVOURS.items()}


def main(argv: list[str]) -> int:
    stale = [
        path for path, text in outputs().items() if not path.exists() or path.read_text() != text
    ]
    if "--check" in argv:
        for path in stale:
            sys.stderr.write(f"{path} is out of date: run python -m polygon.streaming._codegen\n")
        return 1 if stale else 0
    for path, text in outputs().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
