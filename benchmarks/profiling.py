"""Profile one client against the feed with py-spy, and say where the time goes.

Runs a feed and one client process (:mod:`benchmarks.clients`) under
``py-spy record --nonblocking --threads -f raw`` (sampling without stopping the
process, so the figures stay close to an unprofiled run), keeps the raw
collapsed stacks, and prints per thread: the busiest source lines (self time)
and the functions with the most inclusive time. Start-up (imports) and idle
samples are left out. py-spy is not a dependency: ``pip install py-spy``.

    python -m benchmarks.profiling --mode async_handler --per-frame 100
    python -m benchmarks.profiling --mode sync_callback --per-frame 1 --events 300000

The raw stacks are written to ``benchmarks/results/profiles/<mode>-<n>.txt``;
``py-spy`` can render them, or load them in https://www.speedscope.app.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from benchmarks.clients import MODES
from benchmarks.feed import FeedProcess, round_events

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "profiles"
DEFAULT_EVENTS = {1: 300_000, 10: 1_000_000, 100: 3_000_000}
# Stacks through these are start-up or shutdown, not the stream.
EXCLUDED = ("_find_and_load", "_call_with_frames_removed", "<frozen runpy>")


def summarize(path: Path, top: int = 15) -> str:
    """Per thread: share of samples, top lines by self time, top functions inclusive."""
    names: dict[str, str] = {}
    threads: Counter[str] = Counter()
    self_time: dict[str, Counter[str]] = {}
    inclusive: dict[str, Counter[str]] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # "thread (tid): name", or "thread (tid)" when py-spy missed the name.
        match = re.match(r"thread \((\w+)\)(?:: (.*))?", frames[0])
        thread = match.group(1) if match else frames[0]
        if match and match.group(2):
            names[thread] = match.group(2)
        frames = frames[1:]
        if not frames or any(x in f for f in frames for x in EXCLUDED[:2]):
            continue
        n = int(count)
        total += n
        threads[thread] += n
        self_time.setdefault(thread, Counter())[frames[-1]] += n
        seen = set()
        for frame in frames:
            function = re.sub(r":\d+\)$", ")", frame)
            if function not in seen:
                seen.add(function)
                inclusive.setdefault(thread, Counter())[function] += n
    lines = [f"{path.name}: {total} samples"]
    for thread, n in threads.most_common():
        name = names.get(thread, thread)
        lines.append(f"\n== thread {name}: {100 * n / total:.1f}% of samples")
        lines.append("-- self time, by line")
        for frame, k in self_time[thread].most_common(top):
            lines.append(f"{100 * k / total:6.1f}%  {frame}")
        lines.append("-- inclusive, by function")
        skip = ("<module>", "main (", "run (", "_run_module", "_run_code", "Runner.", "BaseEvent")
        shown = 0
        for function, k in inclusive[thread].most_common():
            if function.startswith(skip) or "threading.py" in function:
                continue
            lines.append(f"{100 * k / total:6.1f}%  {function}")
            shown += 1
            if shown == top:
                break
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, default="floor")
    parser.add_argument("--per-frame", type=int, default=100)
    parser.add_argument("--events", type=int)
    parser.add_argument("--rate", type=int, default=1000, help="samples per second")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--summarize", type=Path, help="only summarize this raw profile")
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.summarize, args.top))
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        sys.exit("py-spy is not installed: pip install py-spy")
    events = round_events(
        args.events or DEFAULT_EVENTS.get(args.per_frame, 1_000_000), args.per_frame
    )
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"{args.mode}-{args.per_frame}.txt"
    feed = FeedProcess(events, args.per_frame)
    command = [
        py_spy,
        "record",
        "--nonblocking",
        "--threads",
        "-r",
        str(args.rate),
        "-f",
        "raw",
        "-o",
        str(out),
        "--",
        sys.executable,
        "-m",
        "benchmarks.clients",
        "--mode",
        args.mode,
        "--port",
        str(feed.port),
        "--events",
        str(events),
        "--per-frame",
        str(args.per_frame),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    feed.result(timeout=30.0)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            print(line[:300])
    if not out.exists():
        sys.exit(f"py-spy failed: {proc.stderr[-2000:]}")
    print(summarize(out, args.top))


if __name__ == "__main__":
    main()
