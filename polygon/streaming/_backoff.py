"""Reconnect delays: exponential backoff with jitter."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from polygon.streaming.errors import ConfigurationError

# The default cap of the delays (max_reconnection_delay).
MAX_DELAY = 60.0
# A connection that stayed up this long is healthy even if it delivered no data
# (a quiet subscription): when it drops, the backoff starts over.
STABLE_CONNECTION_SECONDS = 5.0


class Backoff:
    """Delays ``initial * 2**n`` capped at ``max(max_delay, initial)``, each
    stretched by up to ``jitter`` (25%) so that many clients cut off together
    do not come back in lockstep. The first delay is ``initial`` or a little more.
    """

    def __init__(
        self,
        initial: float,
        max_delay: float = MAX_DELAY,
        jitter: float = 0.25,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if (
            isinstance(initial, bool)
            or not isinstance(initial, (int, float))
            or not math.isfinite(initial)
            or initial < 0
        ):
            raise ConfigurationError(
                f"reconnection_delay must be a number of seconds >= 0, got {initial!r}"
            )
        self.initial = float(initial)
        self.cap = max(float(max_delay), self.initial)
        self.jitter = jitter
        self._rng = rng
        self._failures = 0

    def next_delay(self) -> float:
        base: float = min(self.cap, self.initial * 2.0 ** min(self._failures, 30))
        self._failures += 1
        return base * (1.0 + self.jitter * self._rng())

    def reset(self) -> None:
        self._failures = 0
