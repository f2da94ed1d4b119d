"""What a client's buffer takes in memory when it holds its limit of events.

A fresh process builds ``--events`` realistic stock trades (:mod:`benchmarks.feed`)
in frames of ``--per-frame`` and holds them the way each client's buffer does:

- **decoded**: ``AsyncStreamClient`` buffers each frame as the list that
  ``orjson.loads`` returns;
- **raw**: ``StreamClient`` buffers each plain data frame as its text, in a
  ``(count, text)`` pair, and its consumer decodes it.

Each figure is the growth of the resident set (``/proc/self/statm``) per event,
so it includes what the allocators keep beside the objects (``tracemalloc``,
used before, counted the objects alone: 687 bytes per decoded trade, against
759 here). Run by :mod:`benchmarks.run`; by hand::

    python -m benchmarks.footprint --events 100000 --per-frame 100
"""

from __future__ import annotations

import argparse
import json
import os
from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson

from benchmarks.feed import BLOCK_EVENTS, trade_events


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def footprint(events: int, per_frame: int) -> dict[str, float]:
    """Bytes per event: held decoded, and held as raw text."""
    block = trade_events(BLOCK_EVENTS)
    frames = events // per_frame

    def text(index: int) -> str:
        start = (index * per_frame) % BLOCK_EVENTS
        chunk = [block[(start + i) % BLOCK_EVENTS] for i in range(per_frame)]
        return (b"[" + b",".join(chunk) + b"]").decode()

    before = resident_bytes()
    raw: deque[tuple[int, str]] = deque((-1, text(i)) for i in range(frames))
    after_raw = resident_bytes()
    decoded: deque[Any] = deque(orjson.loads(frame) for _, frame in raw)
    after_decoded = resident_bytes()
    held = frames * per_frame
    result = {
        "raw": (after_raw - before) / held,
        "decoded": (after_decoded - after_raw) / held,
    }
    del decoded, raw
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-frame", type=int, default=100)
    args = parser.parse_args(argv)
    print("RESULT " + json.dumps(footprint(args.events, args.per_frame)), flush=True)


if __name__ == "__main__":
    main()
