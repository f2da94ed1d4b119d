"""The live table view of ``polygon-stream tail --format table`` (needs ``rich``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polygon.enums import StreamCluster
from polygon.streaming._channels import symbol_field
from polygon.streaming._stats import StreamStats

if TYPE_CHECKING:
    from rich.table import Table

# The fields that hold a price-like value, by event type, in order of preference.
PRICE_FIELDS = ("p", "bp", "c", "val", "fmv", "b")
_SIZE_FIELDS = ("s", "bs", "v")
MAX_ROWS = 30


def require_rich() -> None:
    """Raise ImportError with the fix when the ``cli`` extra is missing."""
    try:
        import rich  # noqa: F401
    except ImportError:
        raise ImportError(
            "--format table needs rich: pip install 'polygon-streaming[cli]'"
        ) from None


def price_of(event: dict[str, Any]) -> Any:
    """An event's price-like field; for a level 2 book side, its best level's price."""
    price = next((event[f] for f in PRICE_FIELDS if f in event), "")
    if isinstance(price, list):
        price = price[0][0] if price and isinstance(price[0], list) and price[0] else ""
    return price


@dataclass
class _Row:
    code: str
    price: Any
    size: Any
    count: int


class TableView:
    """Keeps the last event per symbol and renders them with the client's counters."""

    def __init__(self, cluster: StreamCluster, stats: Callable[[], StreamStats]) -> None:
        self.cluster = cluster
        self.stats = stats
        self.rows: dict[str, _Row] = {}
        self.started = time.monotonic()
        self._window_start = self.started
        self._window_count = 0
        self._rate = 0.0

    def on_event(self, event: dict[str, Any]) -> None:
        code = str(event.get("ev", "?"))
        symbol = str(event.get(symbol_field(self.cluster, code), "?"))
        row = self.rows.get(symbol)
        price = price_of(event)
        size = next((event[f] for f in _SIZE_FIELDS if f in event), "")
        if row is None:
            self.rows[symbol] = _Row(code, price, size, 1)
        else:
            row.code, row.price, row.size = code, price, size
            row.count += 1
        self._window_count += 1

    def events_per_second(self) -> float:
        now = time.monotonic()
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            self._rate = self._window_count / elapsed
            self._window_start, self._window_count = now, 0
        return self._rate

    def render(self) -> Table:
        from rich.table import Table

        stats = self.stats()
        caption = (
            f"{self.events_per_second():,.0f} events/s · received {stats.events_received:,}"
            f" · reconnects {stats.reconnects} · backlog {stats.backlog:,}"
            f" · dropped {stats.events_dropped:,}"
        )
        table = Table(title=f"{self.cluster.value}: last event per symbol", caption=caption)
        for name, justify in (
            ("symbol", "left"),
            ("ev", "left"),
            ("last", "right"),
            ("size", "right"),
            ("events", "right"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        busiest = sorted(self.rows.items(), key=lambda item: -item[1].count)[:MAX_ROWS]
        for symbol, row in sorted(busiest):
            table.add_row(symbol, row.code, str(row.price), str(row.size), f"{row.count:,}")
        return table
