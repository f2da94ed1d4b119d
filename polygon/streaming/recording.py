"""Recording events to JSON lines, and reading them back.

A recording is one event per line, exactly as decoded (``orjson``), so any
JSON-lines tool reads it and :func:`read_recording` gives back the same dicts.
A path ending in ``.gz`` is gzip-compressed. The simulator can play a
recording back to any client (``polygon-stream replay FILE``).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson
from typing_extensions import Self

Event = dict[str, Any]


def _open(path: Path, mode: str) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "b")  # type: ignore[return-value]
    return open(path, mode + "b")


class Recorder:
    """Writes events to a JSON-lines file; usable as a batch handler.

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

    def write(self, event: Event) -> None:
        """Write one event; usable as a per-event handler."""
        self.write_batch([event])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_recording(path: str | Path) -> Iterator[Event]:
    """The events of a recording, in order.

    :raises ValueError: a line is not a JSON object (its line number is named).
    """
    with _open(Path(path), "r") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(event, dict):
                raise ValueError(f"{path}:{number}: not an event object")
            yield event
