"""Events to typed Arrow tables and Parquet part files, and back (needs ``pyarrow``).

Only :mod:`polygon.streaming.recording` imports this module, and only once a
Parquet recording is asked for, so the package works without pyarrow.

Each event type has a fixed schema: the fields of the specification
(``_recording_columns.py``) in its order, then ``_extra``. A field the
specification does not list, or a value that does not fit its column (a
string where a price belongs, a timestamp in the wrong unit), goes into
``_extra`` as a JSON object, so nothing received is lost and reading a part
back gives the event exactly as it came.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from polygon.streaming._recording_columns import COLUMNS

Event = dict[str, Any]

EXTRA = "_extra"
_UTC = "UTC"
_INT64 = (-(2**63), 2**63)
# A millisecond timestamp beyond this (the year 5138) is really in another unit.
_MAX_MS = 10**14

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "time_ms": pa.timestamp("ms", tz=_UTC),
    "time_ns": pa.timestamp("ns", tz=_UTC),
    "int_list": pa.list_(pa.int64()),
    "levels": pa.list_(pa.list_(pa.float64())),
}


def _is_int(value: object, low: int = _INT64[0], high: int = _INT64[1]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_level(value: object) -> bool:
    return isinstance(value, list) and all(_is_number(v) for v in value)


_FITS: dict[str, Callable[[object], bool]] = {
    "string": lambda v: isinstance(v, str),
    "float": _is_number,
    "int": _is_int,
    "bool": lambda v: isinstance(v, bool),
    "time_ms": lambda v: _is_int(v, -_MAX_MS, _MAX_MS),
    "time_ns": _is_int,
    "int_list": lambda v: isinstance(v, list) and all(_is_int(i) for i in v),
    "levels": lambda v: isinstance(v, list) and all(_is_level(level) for level in v),
}


def columns_of(code: str) -> tuple[tuple[str, str], ...]:
    """The typed columns of an event code (only ``ev`` for a code the spec lacks)."""
    return COLUMNS.get(code, (("ev", "string"),))


def schema_of(code: str) -> pa.Schema:
    fields = [pa.field(name, ARROW_TYPES[kind]) for name, kind in columns_of(code)]
    return pa.schema([*fields, pa.field(EXTRA, pa.string())])


def _column(values: list[Any], kind: str, extras: list[Event | None], name: str) -> pa.Array:
    """One typed column; a value that does not fit moves to its row's extras."""
    arrow_type = ARROW_TYPES[kind]
    if kind != "time_ms" or all(v is None or _FITS[kind](v) for v in values):
        try:
            return pa.array(values, type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass  # some value does not fit: sort them out one by one below
    fits = _FITS[kind]
    kept: list[Any] = []
    for row, value in enumerate(values):
        if value is None or fits(value):
            kept.append(value)
            continue
        kept.append(None)
        extra = extras[row]
        if extra is None:
            extra = extras[row] = {}
        extra[name] = value
    return pa.array(kept, type=arrow_type)


def to_table(code: str, events: list[Event]) -> pa.Table:
    """The events of one type as a table of :func:`schema_of` ``code``."""
    columns = columns_of(code)
    known = {name for name, _ in columns}
    extras: list[Event | None] = [
        None if event.keys() <= known else {k: v for k, v in event.items() if k not in known}
        for event in events
    ]
    arrays = [_column([e.get(name) for e in events], kind, extras, name) for name, kind in columns]
    extra_json = [None if extra is None else orjson.dumps(extra).decode() for extra in extras]
    arrays.append(pa.array(extra_json, type=pa.string()))
    return pa.Table.from_arrays(arrays, schema=schema_of(code))


def write_part(table: pa.Table, final: Path) -> None:
    """Write ``table`` as one row group to ``final``, which appears only once complete.

    The file is written under a hidden temporary name (readers of a dataset
    skip names that start with a dot) and renamed when its footer is on disk.
    """
    temporary = final.with_name(f".{final.name}.tmp")
    pq.write_table(table, temporary, row_group_size=max(table.num_rows, 1))
    os.replace(temporary, final)


def _plain(table: pa.Table) -> pa.Table:
    """Timestamps back to the integers the service sends."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(index, field.name, pc.cast(table.column(index), pa.int64()))
    return table


def read_events(path: Path) -> Iterator[Event]:
    """The events of one Parquet file, as they were received."""
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches():
        for row in _plain(pa.Table.from_batches([batch])).to_pylist():
            extra = row.pop(EXTRA, None)
            event = {name: value for name, value in row.items() if value is not None}
            if extra:
                event.update(orjson.loads(extra))
            yield event
