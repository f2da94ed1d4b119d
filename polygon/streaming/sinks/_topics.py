"""Names (Redis keys, NATS subjects) for events, and the events of a batch by name.

A template names the key or subject of an event from ``{cluster}``, ``{ev}``
and ``{sym}``. Without ``{sym}`` a whole frame of one event code has one name,
found once per frame; with it, each event is looked at (its name cached per
event code and symbol).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

import orjson

from polygon.enums import StreamCluster
from polygon.streaming._channels import symbol_field
from polygon.streaming.errors import ConfigurationError
from polygon.streaming.sinks._base import Batch, BufferedSink, Event

T = TypeVar("T", bound=Hashable)

TEMPLATE_FIELDS = ("cluster", "ev", "sym")
# Distinct (event code, symbol) pairs remembered; past this the cache starts over.
CACHE_LIMIT = 200_000


def check_template(template: str, what: str) -> None:
    """Raise ``ConfigurationError`` unless ``template`` uses only cluster, ev and sym."""
    try:
        template.format(cluster="c", ev="e", sym="s")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigurationError(
            f"bad {what} {template!r}: it may use only {{cluster}}, {{ev}} and {{sym}}"
        ) from exc


def uses_symbol(template: str) -> bool:
    """Whether ``template`` names a key or subject per symbol (it has ``{sym}``)."""
    return any(field == "sym" for _, field, _, _ in string.Formatter().parse(template))


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


class CodeNames(Generic[T]):
    """``render`` of the fields of a code, per event code: for templates without ``{sym}``."""

    def __init__(self, sink: BufferedSink, render: Callable[[dict[str, str]], T]) -> None:
        self._sink = sink
        self._render = render
        self._names: dict[str, T] = {}

    def __call__(self, code: str) -> T:
        name = self._names.get(code)
        if name is None:
            cluster = self._sink.cluster
            fields = {"cluster": cluster.value if cluster else "unknown", "ev": code}
            name = self._names[code] = self._render({**fields, "sym": "unknown"})
        return name


class Group:
    """The events of a batch that go to one key or subject.

    :ivar first: the sink's number for the first of them.
    :ivar events: the events, in order.
    :ivar texts: the frames they came in, as received, when each holds exactly
        events of this group; ``None`` otherwise.
    """

    __slots__ = ("events", "first", "texts")

    def __init__(self, first: int, events: list[Event], texts: list[str] | None) -> None:
        self.first = first
        self.events = events
        self.texts = texts

    def payload(self) -> bytes:
        """The events as one JSON array: the frames' own text when there is
        one, else encoded (``orjson``)."""
        texts = self.texts
        if texts is None:
            return orjson.dumps(self.events, default=str)
        if len(texts) == 1:
            return texts[0].encode()
        # One join and one encoding: the frames are large, copies add up.
        parts = ["["]
        for text in texts:
            parts.append(_inside(text))
            parts.append(",")
        parts[-1] = "]"
        return "".join(parts).encode()


def _inside(text: str) -> str:
    """A JSON array's text without its brackets."""
    if text[:1] != "[" or text[-1:] != "]":
        text = text.strip()
    return text[1:-1]


def group_batch(
    batch: Batch,
    name_of_event: Callable[[Event], T],
    name_of_code: Callable[[str], T] | None,
) -> dict[T, Group]:
    """The batch's events by name, in order, each name with its first event's number.

    ``name_of_code`` (for templates without ``{sym}``) names a whole frame of
    one event code at once, and keeps its text; otherwise every event is
    named by ``name_of_event``. What this returns depends on the batch alone,
    so a batch written again after a failure gives the same groups.
    """
    groups: dict[T, Group] = {}
    number = batch.first
    for code, events, text in batch.frames:
        if code is not None and name_of_code is not None:
            name = name_of_code(code)
            group = groups.get(name)
            if group is None:
                groups[name] = Group(number, list(events), None if text is None else [text])
            else:
                group.events.extend(events)
                if group.texts is not None and text is not None:
                    group.texts.append(text)
                else:
                    group.texts = None
        else:
            for offset, event in enumerate(events):
                name = name_of_event(event)
                group = groups.get(name)
                if group is None:
                    groups[name] = Group(number + offset, [event], None)
                else:
                    group.events.append(event)
                    group.texts = None
        number += len(events)
    return groups


class SymbolFilter:
    """Keep the events of some symbols: filtering in the consumer, for layouts
    whose keys or subjects do not name the symbol.

    :param symbols: the symbols to keep, as the events hold them (``"BRK.B"``).
    :param cluster: the cluster, which says which field holds an event's symbol.
    """

    def __init__(self, symbols: Iterable[str], cluster: str | StreamCluster) -> None:
        if isinstance(symbols, str):
            symbols = [symbols]
        self.symbols = frozenset(symbols)
        try:
            self.cluster = StreamCluster(cluster)
        except ValueError as exc:
            raise ConfigurationError(f"unknown cluster {cluster!r}") from exc
        self._fields: dict[Any, str] = {}

    def __call__(self, events: list[Event]) -> list[Event]:
        fields, symbols, kept = self._fields, self.symbols, []
        for event in events:
            code = event.get("ev")
            field = fields.get(code)
            if field is None:
                field = fields[code] = symbol_field(self.cluster, str(code))
            symbol = event.get(field)
            if type(symbol) is str and symbol in symbols:
                kept.append(event)
        return kept
