"""The simulator's market clock: market time runs ``speed`` times the wall clock.

Every generated event is stamped with market time (Unix milliseconds). The clock
starts at ``start`` (by default the current time) when the simulator first
starts serving, and keeps running from there, across restarts of the server too,
as a market's clock would. Nothing here does I/O.
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import datetime, timezone

from polygon.streaming.errors import ConfigurationError

MarketStart = str | datetime | int | float | None


def parse_start(start: MarketStart) -> int | None:
    """``start`` as Unix milliseconds, or ``None`` for "now".

    Accepts an ISO 8601 string (``2025-06-02T13:30:00Z``; no offset means UTC),
    an aware or naive (UTC) :class:`~datetime.datetime`, or Unix milliseconds.
    """
    if start is None:
        return None
    if isinstance(start, bool):
        raise ConfigurationError(f"start must be an ISO time or Unix milliseconds, got {start!r}")
    if isinstance(start, (int, float)):
        if not math.isfinite(start) or start < 0:
            raise ConfigurationError(f"start must be Unix milliseconds >= 0, got {start!r}")
        return int(start)
    if isinstance(start, str):
        try:
            # fromisoformat only takes a trailing "Z" from Python 3.11 on.
            text = start.strip()
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ConfigurationError(
                f"start must be an ISO time such as 2025-06-02T13:30:00Z, got {start!r}"
            ) from None
    elif isinstance(start, datetime):
        moment = start
    else:
        raise ConfigurationError(f"start must be an ISO time or Unix milliseconds, got {start!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def check_speed(speed: float) -> float:
    """``speed`` as a float, or :class:`ConfigurationError` naming the bad value."""
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise ConfigurationError(f"speed must be a number > 0, got {speed!r}")
    if not math.isfinite(speed) or speed <= 0:
        raise ConfigurationError(f"speed must be a number > 0, got {speed!r}")
    return float(speed)


class MarketClock:
    """Market time in Unix milliseconds, running ``speed`` times the wall clock.

    ``start`` is an ISO 8601 time (``"2025-06-02T13:30:00Z"``; without an
    offset, UTC) or Unix milliseconds. Until :meth:`begin` is called the clock
    stands still at its start; after that it runs. With no ``start`` it begins
    at the wall-clock time of :meth:`begin`. Bad values raise
    :class:`~polygon.streaming.errors.ConfigurationError` naming them.
    """

    def __init__(self, speed: float = 1.0, start: str | float | None = None) -> None:
        self._speed = check_speed(speed)
        self._start_ms = parse_start(start)
        self._anchor: float | None = None  # time.monotonic() when the clock began

    @property
    def speed(self) -> float:
        """How many market seconds pass in one wall-clock second."""
        return self._speed

    @property
    def start_ms(self) -> int:
        """Where the clock started (or will start), in Unix milliseconds."""
        if self._start_ms is None:
            return time.time_ns() // 1_000_000
        return self._start_ms

    @property
    def running(self) -> bool:
        return self._anchor is not None

    def begin(self) -> None:
        """Start the clock, once; later calls leave it running where it is."""
        if self._anchor is None:
            self._start_ms = self.start_ms
            self._anchor = time.monotonic()

    def now_ms(self) -> int:
        """The current market time in Unix milliseconds."""
        return int(self.now_ms_float())

    def now_ms_float(self) -> float:
        """The current market time, with the fraction of a millisecond."""
        if self._anchor is None:
            return float(self.start_ms)
        assert self._start_ms is not None  # set by begin()
        return self._start_ms + (time.monotonic() - self._anchor) * 1000.0 * self._speed


def _speed_argument(text: str) -> float:
    try:
        return check_speed(float(text))
    except (ValueError, ConfigurationError) as exc:
        raise argparse.ArgumentTypeError(f"invalid speed {text!r}: a number > 0") from exc


def _start_argument(text: str) -> int:
    try:
        start = parse_start(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    assert start is not None
    return start


def add_clock_arguments(parser: argparse.ArgumentParser) -> None:
    """``--speed`` and ``--start``, shared by both commands that run the simulator."""
    parser.add_argument(
        "--speed",
        type=_speed_argument,
        default=1.0,
        help="market seconds per wall-clock second (default: %(default)s)",
    )
    parser.add_argument(
        "--start",
        type=_start_argument,
        default=None,
        metavar="ISO_TIME",
        help="market time to start at, e.g. 2025-06-02T13:30:00Z (default: now)",
    )


__all__ = ["MarketClock", "MarketStart", "add_clock_arguments", "check_speed", "parse_start"]
