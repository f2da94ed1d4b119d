"""Names (Redis keys, NATS subjects) for events, from a template, computed once each."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from polygon.streaming._channels import symbol_field
from polygon.streaming.sinks._base import BufferedSink, Event

T = TypeVar("T")

TEMPLATE_FIELDS = ("cluster", "ev", "sym")
# Distinct (event code, symbol) pairs remembered; past this the cache starts over.
CACHE_LIMIT = 200_000


def check_template(template: str, what: str) -> None:
    """Raise ``ValueError`` unless ``template`` uses only ``{cluster}``, ``{ev}``, ``{sym}``."""
    try:
        template.format(cluster="c", ev="e", sym="s")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"bad {what} {template!r}: it may use only {{cluster}}, {{ev}} and {{sym}}"
        ) from exc


class TopicCache(Generic[T]):
    """``render(sink.topic_fields(event))`` per (event code, symbol), cached."""

    def __init__(self, sink: BufferedSink, render: Callable[[dict[str, str]], T]) -> None:
        self._sink = sink
        self._render = render
        self._fields: dict[Any, str] = {}
        self._names: dict[tuple[Any, Hashable], T] = {}

    def __call__(self, event: Event) -> T:
        code = event.get("ev")
        field = self._fields.get(code)
        if field is None:
            cluster = self._sink.cluster
            if cluster is None:
                return self._render(self._sink.topic_fields(event))
            field = self._fields[code] = symbol_field(cluster, str(code))
        symbol = event.get(field)
        if not isinstance(symbol, str) and symbol is not None:
            return self._render(self._sink.topic_fields(event))
        ident = (code, symbol)
        name = self._names.get(ident)
        if name is None:
            if len(self._names) >= CACHE_LIMIT:
                self._names.clear()
            name = self._names[ident] = self._render(self._sink.topic_fields(event))
        return name
