"""Reporting dropped events: a rate-limited WARNING and a typed report.

The buffers count what they drop (``stats``); a user should not have to poll
that to learn of it. The consumer of each client calls :meth:`DropReporter.check`
as it takes frames (a few integer reads), and when the total grew it logs a
WARNING and hands a :class:`~polygon.streaming.errors.SlowConsumerWarning` to
the client's error hook: at once the first time, then at most once per
``interval`` (drops in between are summed into the next report), as nats.py
reports slow consumers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from polygon.streaming.errors import SlowConsumerWarning

logger = logging.getLogger("polygon.streaming.drops")

# Seconds between two reports of dropped events, at least.
REPORT_INTERVAL_SECONDS = 5.0


class DropReporter:
    """Reports growth of a dropped-events total, at most once per ``interval``."""

    def __init__(
        self,
        notify: Callable[[SlowConsumerWarning], None],
        interval: float = REPORT_INTERVAL_SECONDS,
    ) -> None:
        self._notify = notify
        self.interval = interval
        self._reported = 0
        self._next_report = 0.0

    def check(self, total_dropped: int, pending: int, limit: int) -> None:
        """Report if ``total_dropped`` grew and the interval has passed."""
        if total_dropped <= self._reported:
            return
        now = time.monotonic()
        if now < self._next_report:
            return
        warning = SlowConsumerWarning(total_dropped - self._reported, total_dropped, pending, limit)
        self._reported = total_dropped
        self._next_report = now + self.interval
        logger.warning(
            "slow consumer: %d events dropped (%d in all); %d pending, limit %d",
            warning.dropped,
            total_dropped,
            pending,
            limit,
        )
        try:
            self._notify(warning)
        except Exception:
            logger.exception("the error handler raised on a slow-consumer report")
