"""Names (Redis keys, NATS subjects) for events, and the events of a batch by name.

A template names the key or subject of an event from ``{cluster}``, ``{ev}``
and ``{sym}``. Without ``{sym}`` a whole frame of one event code has one name,
found once per frame; with it, each event is looked at (its name cached per
event code and symbol).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Hashable, Iterable
from itertools import chain
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from polygon.enums import StreamCluster
from polygon.streaming._channels import symbol_field
from polygon.streaming.errors import ConfigurationError
from polygon.streaming.sinks._base import Batch, BufferedSink, Event, Frame

T = TypeVar("T", bound=Hashable)

TEMPLATE_FIELDS = ("cluster", "ev", "sym")
# Distinct (event code, symbol) pairs remembered; past this the cache starts over.
CACHE_LIMIT = 200_000
# The most events an entry or message holds, short of one frame holding more. A
# consumer decodes an entry at once; past some 700 new objects, Python's garbage
# collector runs during the decoding and walks them all, again and again. Here,
# a consumer spent 1.5-2 us per event on entries of 200 events, 2.5-3.5 on 500
# and 4-5 on 2,000; the cost of an entry itself is small at 200.
ENTRY_EVENTS = 200


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


class Chunk(NamedTuple):
    """Frames of a group that make one entry or message.

    ``offset`` counts the group's events before the first of them.
    """

    offset: int
    size: int
    frames: list[Frame]

    def payload(self) -> list[bytes]:
        """The events as a JSON array of frames, each a JSON array of events,
        in pieces to be sent one after the other.

        A frame received whole is its own text, as it came; the others are
        encoded (``orjson``). Nesting the frames rather than merging them
        spares a copy of every frame's text.
        """
        parts = [b"["]
        for frame in self.frames:
            text = frame.text
            if text is not None:
                parts.append(text.encode())
            else:
                parts.append(orjson.dumps(frame.decoded(), default=str))
            parts.append(b",")
        parts[-1] = b"]"
        return parts

    def events(self) -> list[Event]:
        """The events, in order."""
        events: list[Event] = []
        for frame in self.frames:
            events.extend(frame.decoded())
        return events


class Group:
    """The events of a batch that go to one key or subject, as frames in order.

    :ivar first: the sink's number for the first of them.
    :ivar size: the number of events.
    :ivar frames: whole frames, and frames made here of single events.
    """

    __slots__ = ("_loose", "first", "frames", "size")

    def __init__(self, first: int) -> None:
        self.first = first
        self.size = 0
        self.frames: list[Frame] = []
        self._loose: Frame | None = None

    def add_frame(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.size += frame.size
        self._loose = None

    def add_event(self, event: Event) -> None:
        loose = self._loose
        if loose is None or loose.size >= ENTRY_EVENTS:
            loose = self._loose = Frame(None, 0, [], None)
            self.frames.append(loose)
        assert loose.events is not None
        loose.events.append(event)
        loose.size += 1
        self.size += 1

    def chunks(self) -> list[Chunk]:
        """The frames in runs of about :data:`ENTRY_EVENTS` events, one per
        entry or message (a frame is never split: it may hold more)."""
        chunks: list[Chunk] = []
        offset = size = 0
        run: list[Frame] = []
        for frame in self.frames:
            if run and size + frame.size > ENTRY_EVENTS:
                chunks.append(Chunk(offset, size, run))
                offset, size, run = offset + size, 0, []
            run.append(frame)
            size += frame.size
        if run:
            chunks.append(Chunk(offset, size, run))
        return chunks


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
    for frame in batch.frames:
        code = frame.code
        if code is not None and name_of_code is not None:
            name = name_of_code(code)
            group = groups.get(name)
            if group is None:
                group = groups[name] = Group(number)
            group.add_frame(frame)
        else:
            for offset, event in enumerate(frame.decoded()):
                name = name_of_event(event)
                group = groups.get(name)
                if group is None:
                    group = groups[name] = Group(number + offset)
                group.add_event(event)
        number += frame.size
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


def unpack_batch(data: bytes) -> list[Event] | None:
    """The events of a batch entry or message (a JSON array of frames, each a
    JSON array of events); ``None`` when it is not that."""
    try:
        frames = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(frames) is not list or not set(map(type, frames)) <= {list}:
        return None
    events: list[Event] = frames[0] if len(frames) == 1 else list(chain.from_iterable(frames))
    return events if set(map(type, events)) <= {dict} else None


def unpack_event(data: bytes) -> list[Event] | None:
    """The event of an entry or message that holds one; ``None`` when it does not."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return [event] if type(event) is dict else None
