"""Recording events to JSON lines or Parquet, and reading them back.

Two formats, one interface (``write_batch``, ``write``, ``close``, ``count``):

- :class:`Recorder`: one event per line, exactly as decoded (``orjson``), so any
  JSON-lines tool reads it. A path ending in ``.gz`` is gzip-compressed.
- :class:`ParquetRecorder`: typed columns, one table per event type, written in
  row groups as events arrive (the ``parquet`` extra, pyarrow).

:func:`open_recorder` picks one by the path; :func:`read_recording` reads either
back as the same dicts, and the simulator can play a recording back to any
client (``polygon-stream replay FILE``).

Recording from a client, then analysing with pandas (or polars)::

    from polygon.streaming.recording import ParquetRecorder

    async with AsyncStreamClient(None, "stocks") as client:
        with ParquetRecorder("trades.parquet", event_types=["T"]) as recorder:
            client.add_batch_handler(recorder.write_batch)
            await client.subscribe_stock_trades(["AAPL", "MSFT"])
            await client.handle_messages(reconnect=True)

    import pandas as pd  # or: polars.read_parquet("trades.parquet/*.parquet")

    trades = pd.read_parquet("trades.parquet")  # t is a UTC datetime column
    per_minute = trades.set_index("t").groupby("sym").p.resample("1min").ohlc()
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any

import orjson
from typing_extensions import Self

from polygon.streaming.errors import PolygonStreamError

Event = dict[str, Any]

PARQUET_SUFFIX = ".parquet"
_PART = re.compile(r"^part-(\d+)\.parquet$")


class RecordingError(PolygonStreamError, ValueError):
    """A recording cannot be written or read: its path, a line, or a missing extra."""


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "b")  # type: ignore[return-value]
    return open(path, mode + "b")


class _RecorderBase:
    """What both recorders share: a per-event handler and the ``with`` block."""

    def write_batch(self, events: list[Event]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def write(self, event: Event) -> None:
        """Take one event; usable as a per-event handler."""
        self.write_batch([event])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Recorder(_RecorderBase):
    """Writes events to a JSON-lines file; usable as a batch handler.

    ``write(event)`` takes one event, for use as a per-event handler.

    :param path: where to write; ``.gz`` compresses.
    :param include_status: also record status events.

    Example::

        with Recorder("trades.jsonl.gz") as recorder:
            client.add_batch_handler(recorder.write_batch)
            ...
    """

    def __init__(self, path: str | Path, include_status: bool = False) -> None:
        self.path = Path(path)
        self.include_status = include_status
        self.count = 0
        self._file = _open(self.path, "w")

    def write_batch(self, events: list[Event]) -> None:
        """Write the events of one frame (status events only if asked for)."""
        lines = [
            orjson.dumps(event)
            for event in events
            if self.include_status or event.get("ev") != "status"
        ]
        if lines:
            self._file.write(b"\n".join(lines) + b"\n")
            self.count += len(lines)

    def close(self) -> None:
        self._file.close()


def read_recording(path: str | Path) -> Iterator[Event]:
    """The events of a recording, JSON lines or Parquet, in order.

    A Parquet recording is recognised by its name (``.parquet``) or by being a
    directory; the datasets of its other event types beside it (``day.Q.parquet``
    for ``day.parquet``) are read too, merged in the order of the events' own
    timestamps.

    :raises RecordingError: a line is not a JSON object (its line number is
        named), a Parquet file is unreadable, or pyarrow is missing.
    """
    path = Path(path)
    if path.suffix == PARQUET_SUFFIX or path.is_dir() or _siblings(path):
        return _read_parquet(path)
    return _read_json_lines(path)


def _read_json_lines(path: Path) -> Iterator[Event]:
    with _open(path, "r") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise RecordingError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(event, dict):
                raise RecordingError(f"{path}:{number}: not an event object")
            yield event


# -- Parquet ---------------------------------------------------------------------------


def _arrow() -> ModuleType:
    """The pyarrow side of the Parquet format, or the fix when it is missing."""
    try:
        from polygon.streaming import _recording_arrow
    except ImportError:
        raise RecordingError(
            "Parquet recordings need pyarrow: pip install 'polygon-streaming[parquet]'"
        ) from None
    return _recording_arrow


def _safe_code(code: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", code) or "_"


def dataset_path(path: str | Path, code: str, event_types: Iterable[str] | None = None) -> Path:
    """Where :class:`ParquetRecorder` writes the events of type ``code``.

    When ``event_types`` names exactly one type, that type is written at
    ``path`` itself; any other type goes beside it, its code before the
    suffix: ``day.parquet`` holds the trades of ``tail ... trades``, and a
    recording of several types writes ``day.T.parquet``, ``day.Q.parquet``...
    """
    path = Path(path)
    only = list(event_types or [])
    if only == [code]:
        return path
    return path.with_name(f"{path.stem}.{_safe_code(code)}{path.suffix}")


def _siblings(path: Path) -> list[Path]:
    """The per-type datasets beside ``path`` (``day.*.parquet`` for ``day.parquet``)."""
    if path.suffix != PARQUET_SUFFIX or not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f"{path.stem}.*{path.suffix}"))


def _parts(dataset: Path) -> list[Path]:
    """A dataset's finished part files in the order they were written."""
    if dataset.is_file():
        return [dataset]
    numbered = [(int(m.group(1)), p) for p in dataset.iterdir() if (m := _PART.match(p.name))]
    return [p for _, p in sorted(numbered)]


def _next_part_number(dataset: Path) -> int:
    """The number after the dataset's last part: a new recording adds to an old one."""
    numbers = [int(m.group(1)) for p in dataset.iterdir() if (m := _PART.match(p.name))]
    return max(numbers, default=-1) + 1


def _read_parquet(path: Path) -> Iterator[Event]:
    arrow = _arrow()
    datasets = ([path] if path.exists() else []) + _siblings(path)
    if not datasets:
        raise RecordingError(f"{path}: no such Parquet recording")

    def events_of(dataset: Path) -> Iterator[Event]:
        for part in _parts(dataset):
            try:
                yield from arrow.read_events(part)
            except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
                raise RecordingError(f"{part}: not a readable Parquet file ({exc})") from None

    if len(datasets) == 1:
        return events_of(datasets[0])
    import heapq

    from polygon.streaming.simulator._replay import event_time_ms

    return heapq.merge(
        *(events_of(d) for d in datasets), key=lambda event: event_time_ms(event) or 0.0
    )


class ParquetRecorder(_RecorderBase):
    """Writes events to Parquet, one typed table per event type; usable as a batch handler.

    Each event type is a dataset: a directory of part files (``part-00000.parquet``,
    ...), each one complete row group, which ``pandas.read_parquet``,
    ``polars.scan_parquet`` and ``pyarrow.dataset`` read as one table. A part is
    written when ``row_group_size`` events of its type are waiting, when
    ``flush_interval`` seconds have passed since the first of them arrived
    (checked as events arrive), and at :meth:`close`. It appears under its final
    name only once complete, so a process killed at any moment leaves every
    finished row group readable; only the events still waiting are lost.
    Memory holds at most one row group per event type. A row group is encoded
    and written on the thread that calls :meth:`write_batch` (for
    :class:`~polygon.streaming.async_streaming.AsyncStreamClient`, its event
    loop): about half a second for 65,536 trades on a small machine, while the
    client's buffer holds what arrives; lower ``row_group_size`` for shorter pauses.

    Columns follow the API specification: prices ``float64``, sizes and other
    integers ``int64``, timestamps ``timestamp[ms, UTC]`` (``timestamp[ns, UTC]``
    where the specification says nanoseconds), conditions ``list<int64>``. A
    field the specification does not list, or a value that does not fit its
    column, is kept in the JSON column ``_extra``, so :func:`read_recording`
    gives every event back as it came. ``write(event)`` takes one event, for
    use as a per-event handler.

    :param path: the dataset of the recording (see :func:`dataset_path` for
        where each event type goes). An existing dataset is added to, never
        overwritten.
    :param event_types: the event codes expected (``["T"]``): with exactly one,
        that type is written at ``path`` itself.
    :param row_group_size: events of one type per row group (and part file).
    :param flush_interval: seconds after which waiting events are written
        even if fewer than ``row_group_size``.
    :param include_status: also record status events (as the ``status`` type).
    :raises RecordingError: pyarrow is missing, or ``path`` is a plain file.

    Example::

        with ParquetRecorder("trades.parquet", event_types=["T"]) as recorder:
            client.add_batch_handler(recorder.write_batch)
            ...
    """

    def __init__(
        self,
        path: str | Path,
        event_types: Iterable[str] | None = None,
        *,
        row_group_size: int = 65_536,
        flush_interval: float = 10.0,
        include_status: bool = False,
    ) -> None:
        if row_group_size < 1:
            raise RecordingError(f"row_group_size must be at least 1, not {row_group_size!r}")
        if not flush_interval > 0:
            raise RecordingError(f"flush_interval must be positive, not {flush_interval!r}")
        self._arrow = _arrow()
        self.path = Path(path)
        self.event_types = list(event_types or [])
        self.row_group_size = row_group_size
        self.flush_interval = flush_interval
        self.include_status = include_status
        self.count = 0
        self.parts_written = 0
        self._waiting: dict[str, list[Event]] = {}
        self._first_at: dict[str, float] = {}
        self._next_part: dict[str, int] = {}
        self._closed = False
        if self.path.is_file():
            raise RecordingError(
                f"{self.path} is a file; a Parquet recording is a directory of part files"
            )

    def write_batch(self, events: list[Event]) -> None:
        """Take the events of one frame; write the row groups that are due."""
        if self._closed:
            raise RecordingError(f"{self.path}: the recorder is closed")
        now = time.monotonic()
        for event in events:
            code = str(event.get("ev"))
            if code == "status" and not self.include_status:
                continue
            waiting = self._waiting.setdefault(code, [])
            if not waiting:
                self._first_at[code] = now
            waiting.append(event)
            self.count += 1
            if len(waiting) >= self.row_group_size:
                self._flush(code)
        for code, first_at in list(self._first_at.items()):
            if self._waiting.get(code) and now - first_at >= self.flush_interval:
                self._flush(code)

    def flush(self) -> None:
        """Write every waiting event now, one row group per event type."""
        for code in list(self._waiting):
            self._flush(code)

    def close(self) -> None:
        """Write what is waiting; later writes raise :class:`RecordingError`."""
        if not self._closed:
            self.flush()
            self._closed = True

    def _flush(self, code: str) -> None:
        events = self._waiting.pop(code, [])
        self._first_at.pop(code, None)
        if not events:
            return
        dataset = dataset_path(self.path, code, self.event_types)
        try:
            dataset.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RecordingError(f"{dataset} is a file, not a Parquet dataset") from None
        number = self._next_part.get(code)
        if number is None:
            number = _next_part_number(dataset)
        table = self._arrow.to_table(code, events)
        self._arrow.write_part(table, dataset / f"part-{number:05d}.parquet")
        self._next_part[code] = number + 1
        self.parts_written += 1


def open_recorder(
    path: str | Path, event_types: Iterable[str] | None = None, *, flush_interval: float = 10.0
) -> Recorder | ParquetRecorder:
    """A :class:`ParquetRecorder` for a path ending in ``.parquet``, else a :class:`Recorder`.

    :param event_types: passed to :class:`ParquetRecorder`; ignored for JSON lines.
    :param flush_interval: likewise.
    """
    if Path(path).suffix == PARQUET_SUFFIX:
        return ParquetRecorder(path, event_types, flush_interval=flush_interval)
    return Recorder(path)
