"""Generated from the stream table by ``python -m polygon.streaming._codegen``."""

from __future__ import annotations

from typing import Any

from polygon.streaming._protocol import Symbols
from polygon.streaming.types import (
    CryptoLevel2BookEvent,
    CryptoMinuteAggregateEvent,
    CryptoQuoteEvent,
    CryptoSecondAggregateEvent,
    CryptoTradeEvent,
    EventHandler,
    FairMarketValueEvent,
    ForexMinuteAggregateEvent,
    ForexQuoteEvent,
    ForexSecondAggregateEvent,
    IndexValueEvent,
    IndicesMinuteAggregateEvent,
    IndicesSecondAggregateEvent,
    OptionMinuteAggregateEvent,
    OptionQuoteEvent,
    OptionSecondAggregateEvent,
    OptionTradeEvent,
    StockImbalanceEvent,
    StockLimitUpLimitDownEvent,
    StockMinuteAggregateEvent,
    StockQuoteEvent,
    StockSecondAggregateEvent,
    StockTradeEvent,
)


class AsyncStreamMethods:
    """The stream methods of :class:`~polygon.streaming.async_streaming.AsyncStreamClient`.

    One ``subscribe_*`` and one ``unsubscribe_*`` method per row of the stream table.
    """

    async def _subscribe(
        self,
        stream: str,
        symbols: Symbols,
        handler_function: EventHandler[Any] | None,
        force_uppercase_symbols: bool,
    ) -> None:
        raise NotImplementedError

    async def _unsubscribe(
        self,
        stream: str,
        symbols: Symbols,
        force_uppercase_symbols: bool,
    ) -> None:
        raise NotImplementedError

    async def subscribe_fair_market_value(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[FairMarketValueEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to fair market value (``FMV`` events).

        Fair market value, computed by the provider (business plans). Served on the stocks,
        options, forex and crypto clusters.

        :param symbols: Symbols as the client's cluster writes them (see :ref:`symbol-rules`).
            ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string is sent
            exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_fair_market_value(['AAPL', 'MSFT'], on_event)
        """
        await self._subscribe(
            "fair_market_value",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_fair_market_value(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from fair market value (``FMV`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_fair_market_value`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``FMV.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("fair_market_value", symbols, force_uppercase_symbols)

    async def subscribe_stock_trades(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[StockTradeEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to stock trades (``T`` events).

        Every trade on US stock exchanges. Served on the stocks cluster.

        :param symbols: Tickers such as ``'AAPL'`` or ``'BRK.B'``. ``None``, ``[]``, ``['*']``
            or ``'all'`` mean every symbol; a plain string is sent exactly as given, as the
            request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_stock_trades(['AAPL', 'MSFT'], on_event)
        """
        await self._subscribe(
            "stock_trades",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_stock_trades(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from stock trades (``T`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_stock_trades`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``T.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("stock_trades", symbols, force_uppercase_symbols)

    async def subscribe_stock_quotes(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[StockQuoteEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to stock quotes (``Q`` events).

        National best bid and offer for stocks. Served on the stocks cluster.

        :param symbols: Tickers such as ``'AAPL'`` or ``'BRK.B'``. ``None``, ``[]``, ``['*']``
            or ``'all'`` mean every symbol; a plain string is sent exactly as given, as the
            request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_stock_quotes(['AAPL', 'MSFT'], on_event)
        """
        await self._subscribe(
            "stock_quotes",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_stock_quotes(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from stock quotes (``Q`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_stock_quotes`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``Q.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("stock_quotes", symbols, force_uppercase_symbols)

    async def subscribe_stock_minute_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[StockMinuteAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to stock minute aggregates (``AM`` events).

        One-minute OHLCV bars for stocks. Served on the stocks cluster.

        :param symbols: Tickers such as ``'AAPL'`` or ``'BRK.B'``. ``None``, ``[]``, ``['*']``
            or ``'all'`` mean every symbol; a plain string is sent exactly as given, as the
            request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_stock_minute_aggregates(['AAPL', 'MSFT'], on_event)
        """
        await self._subscribe(
            "stock_minute_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_stock_minute_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from stock minute aggregates (``AM`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_stock_minute_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``AM.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("stock_minute_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_stock_second_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[StockSecondAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to stock second aggregates (``A`` events).

        One-second OHLCV bars for stocks. Served on the stocks cluster.

        :param symbols: Tickers such as ``'AAPL'`` or ``'BRK.B'``. ``None``, ``[]``, ``['*']``
            or ``'all'`` mean every symbol; a plain string is sent exactly as given, as the
            request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_stock_second_aggregates(['AAPL', 'MSFT'], on_event)
        """
        await self._subscribe(
            "stock_second_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_stock_second_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from stock second aggregates (``A`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_stock_second_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``A.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("stock_second_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_stock_limit_up_limit_down(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[StockLimitUpLimitDownEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to stock limit up limit down (``LULD`` events).

        Limit up / limit down price bands for stocks. Served on the stocks cluster.

        :param symbols: Tickers such as ``'AAPL'`` or ``'BRK.B'``. ``None``, ``[]``, ``['*']``
            or ``'all'`` mean every symbol; a plain string is sent exactly as given, as the
            request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_stock_limit_up_limit_down(['AAPL', 'MSFT'], on_event)
        """
        await self._subscribe(
            "stock_limit_up_limit_down",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_stock_limit_up_limit_down(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from stock limit up limit down (``LULD`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_stock_limit_up_limit_down`; ``None``, ``[]``, ``['*']`` or
            ``'all'`` drop the every-symbol subscription (``LULD.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("stock_limit_up_limit_down", symbols, force_uppercase_symbols)

    async def subscribe_stock_imbalances(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[StockImbalanceEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to stock imbalances (``NOI`` events).

        Opening and closing auction imbalances. Served on the stocks cluster.

        :param symbols: Tickers such as ``'AAPL'`` or ``'BRK.B'``. ``None``, ``[]``, ``['*']``
            or ``'all'`` mean every symbol; a plain string is sent exactly as given, as the
            request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_stock_imbalances(['AAPL', 'MSFT'], on_event)
        """
        await self._subscribe(
            "stock_imbalances",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_stock_imbalances(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from stock imbalances (``NOI`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_stock_imbalances`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``NOI.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("stock_imbalances", symbols, force_uppercase_symbols)

    async def subscribe_option_trades(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[OptionTradeEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to option trades (``T`` events).

        Every trade on option contracts. Served on the options cluster.

        :param symbols: Option contracts such as ``'SPY241220P00720000'``; the ``O:`` prefix is
            added when missing. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a
            plain string is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_option_trades(['SPY241220P00720000'], on_event)
        """
        await self._subscribe(
            "option_trades",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_option_trades(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from option trades (``T`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_option_trades`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``T.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("option_trades", symbols, force_uppercase_symbols)

    async def subscribe_option_quotes(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[OptionQuoteEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to option quotes (``Q`` events).

        Best bid and offer for option contracts. Served on the options cluster.

        :param symbols: Option contracts such as ``'SPY241220P00720000'``; the ``O:`` prefix is
            added when missing. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a
            plain string is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_option_quotes(['SPY241220P00720000'], on_event)
        """
        await self._subscribe(
            "option_quotes",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_option_quotes(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from option quotes (``Q`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_option_quotes`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``Q.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("option_quotes", symbols, force_uppercase_symbols)

    async def subscribe_option_minute_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[OptionMinuteAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to option minute aggregates (``AM`` events).

        One-minute OHLCV bars for option contracts. Served on the options cluster.

        :param symbols: Option contracts such as ``'SPY241220P00720000'``; the ``O:`` prefix is
            added when missing. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a
            plain string is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_option_minute_aggregates(['SPY241220P00720000'], on_event)
        """
        await self._subscribe(
            "option_minute_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_option_minute_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from option minute aggregates (``AM`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_option_minute_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``AM.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("option_minute_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_option_second_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[OptionSecondAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to option second aggregates (``A`` events).

        One-second OHLCV bars for option contracts. Served on the options cluster.

        :param symbols: Option contracts such as ``'SPY241220P00720000'``; the ``O:`` prefix is
            added when missing. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a
            plain string is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_option_second_aggregates(['SPY241220P00720000'], on_event)
        """
        await self._subscribe(
            "option_second_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_option_second_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from option second aggregates (``A`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_option_second_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``A.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("option_second_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_forex_quotes(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[ForexQuoteEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to forex quotes (``C`` events).

        Quotes for currency pairs. Served on the forex cluster.

        :param symbols: Currency pairs such as ``'EUR/USD'``; a ``C:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_forex_quotes(['EUR/USD'], on_event)
        """
        await self._subscribe(
            "forex_quotes",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_forex_quotes(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from forex quotes (``C`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_forex_quotes`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``C.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("forex_quotes", symbols, force_uppercase_symbols)

    async def subscribe_forex_minute_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[ForexMinuteAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to forex minute aggregates (``CA`` events).

        One-minute OHLCV bars for currency pairs. Served on the forex cluster.

        :param symbols: Currency pairs such as ``'EUR/USD'``; a ``C:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_forex_minute_aggregates(['EUR/USD'], on_event)
        """
        await self._subscribe(
            "forex_minute_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_forex_minute_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from forex minute aggregates (``CA`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_forex_minute_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``CA.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("forex_minute_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_forex_second_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[ForexSecondAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to forex second aggregates (``CAS`` events).

        One-second OHLCV bars for currency pairs. Served on the forex cluster.

        :param symbols: Currency pairs such as ``'EUR/USD'``; a ``C:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_forex_second_aggregates(['EUR/USD'], on_event)
        """
        await self._subscribe(
            "forex_second_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_forex_second_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from forex second aggregates (``CAS`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_forex_second_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``CAS.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("forex_second_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_crypto_trades(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[CryptoTradeEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to crypto trades (``XT`` events).

        Every trade on crypto pairs. Served on the crypto cluster.

        :param symbols: Crypto pairs such as ``'BTC-USD'``; an ``X:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_crypto_trades(['BTC-USD'], on_event)
        """
        await self._subscribe(
            "crypto_trades",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_crypto_trades(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from crypto trades (``XT`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_crypto_trades`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``XT.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("crypto_trades", symbols, force_uppercase_symbols)

    async def subscribe_crypto_quotes(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[CryptoQuoteEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to crypto quotes (``XQ`` events).

        Best bid and offer for crypto pairs. Served on the crypto cluster.

        :param symbols: Crypto pairs such as ``'BTC-USD'``; an ``X:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_crypto_quotes(['BTC-USD'], on_event)
        """
        await self._subscribe(
            "crypto_quotes",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_crypto_quotes(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from crypto quotes (``XQ`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_crypto_quotes`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``XQ.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("crypto_quotes", symbols, force_uppercase_symbols)

    async def subscribe_crypto_minute_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[CryptoMinuteAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to crypto minute aggregates (``XA`` events).

        One-minute OHLCV bars for crypto pairs. Served on the crypto cluster.

        :param symbols: Crypto pairs such as ``'BTC-USD'``; an ``X:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_crypto_minute_aggregates(['BTC-USD'], on_event)
        """
        await self._subscribe(
            "crypto_minute_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_crypto_minute_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from crypto minute aggregates (``XA`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_crypto_minute_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``XA.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("crypto_minute_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_crypto_second_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[CryptoSecondAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to crypto second aggregates (``XAS`` events).

        One-second OHLCV bars for crypto pairs. Served on the crypto cluster.

        :param symbols: Crypto pairs such as ``'BTC-USD'``; an ``X:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_crypto_second_aggregates(['BTC-USD'], on_event)
        """
        await self._subscribe(
            "crypto_second_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_crypto_second_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from crypto second aggregates (``XAS`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_crypto_second_aggregates`; ``None``, ``[]``, ``['*']`` or ``'all'``
            drop the every-symbol subscription (``XAS.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("crypto_second_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_crypto_level2_book(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[CryptoLevel2BookEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to crypto level2 book (``XL2`` events).

        Level 2 order book snapshots for crypto. Served on the crypto cluster.

        :param symbols: Crypto pairs such as ``'BTC-USD'``; an ``X:`` prefix is accepted and
            dropped. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_crypto_level2_book(['BTC-USD'], on_event)
        """
        await self._subscribe(
            "crypto_level2_book",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_crypto_level2_book(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from crypto level2 book (``XL2`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_crypto_level2_book`; ``None``, ``[]``, ``['*']`` or ``'all'`` drop
            the every-symbol subscription (``XL2.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("crypto_level2_book", symbols, force_uppercase_symbols)

    async def subscribe_indices_minute_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[IndicesMinuteAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to indices minute aggregates (``AM`` events).

        One-minute OHLC bars for indices. Served on the indices cluster.

        :param symbols: Index tickers such as ``'SPX'``; the ``I:`` prefix is added when
            missing. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_indices_minute_aggregates(['SPX'], on_event)
        """
        await self._subscribe(
            "indices_minute_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_indices_minute_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from indices minute aggregates (``AM`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_indices_minute_aggregates`; ``None``, ``[]``, ``['*']`` or
            ``'all'`` drop the every-symbol subscription (``AM.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("indices_minute_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_indices_second_aggregates(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[IndicesSecondAggregateEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to indices second aggregates (``A`` events).

        One-second OHLC bars for indices. Served on the indices cluster.

        :param symbols: Index tickers such as ``'SPX'``; the ``I:`` prefix is added when
            missing. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_indices_second_aggregates(['SPX'], on_event)
        """
        await self._subscribe(
            "indices_second_aggregates",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_indices_second_aggregates(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from indices second aggregates (``A`` events).

        :param symbols: the symbols to drop, written as for
            :meth:`subscribe_indices_second_aggregates`; ``None``, ``[]``, ``['*']`` or
            ``'all'`` drop the every-symbol subscription (``A.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("indices_second_aggregates", symbols, force_uppercase_symbols)

    async def subscribe_index_value(
        self,
        symbols: Symbols = None,
        handler_function: EventHandler[IndexValueEvent] | None = None,
        force_uppercase_symbols: bool = True,
    ) -> None:
        """Subscribe to index value (``V`` events).

        The value of an index, as it is computed. Served on the indices cluster.

        :param symbols: Index tickers such as ``'SPX'``; the ``I:`` prefix is added when
            missing. ``None``, ``[]``, ``['*']`` or ``'all'`` mean every symbol; a plain string
            is sent exactly as given, as the request's ``params``.
        :param handler_function: called with each decoded event of this stream (a dict); a
            function or a coroutine function. It replaces the handler for these events; without
            one the current handler stays (at first, one that prints).
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.
        :raises ~polygon.streaming.errors.StreamNotAvailableError: the client's cluster does not
            serve this stream.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.

        Example::

            await client.subscribe_index_value(['SPX'], on_event)
        """
        await self._subscribe(
            "index_value",
            symbols,
            handler_function,
            force_uppercase_symbols,
        )

    async def unsubscribe_index_value(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from index value (``V`` events).

        :param symbols: the symbols to drop, written as for :meth:`subscribe_index_value`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``V.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("index_value", symbols, force_uppercase_symbols)

    async def unsubscribe_indices_value(
        self, symbols: Symbols = None, force_uppercase_symbols: bool = True
    ) -> None:
        """Unsubscribe from index value (``V`` events).

        The same as :meth:`unsubscribe_index_value`, under the name the reference docs use.

        :param symbols: the symbols to drop, written as for :meth:`subscribe_index_value`;
            ``None``, ``[]``, ``['*']`` or ``'all'`` drop the every-symbol subscription
            (``V.*``) only.
        :param force_uppercase_symbols: upper-case the symbols before sending them.
        :raises ~polygon.streaming.errors.InvalidSymbolError: a symbol is not a non-empty string
            free of commas and whitespace; nothing is recorded or sent.

        Returns once the request is on the wire. With no connection up and no reconnect loop
        running, it connects and logs in first; while the loop is reconnecting, the change is
        recorded and sent on the next connection.
        """
        await self._unsubscribe("index_value", symbols, force_uppercase_symbols)
