"""The benchmark suite: our clients against the floor, on one machine, in one run.

``make bench`` runs ``python -m benchmarks.run`` from the repository root. Every
measurement is a fresh feed process (:mod:`benchmarks.feed`) and a fresh client
process (:mod:`benchmarks.clients`), so nothing carries over between runs; the
runs of all interfaces are interleaved, so a slow minute of the machine hits
them all alike. Results go to ``benchmarks/results/`` as JSON and as an RST
fragment that ``docs/performance.rst`` includes.

Figures:

- **throughput**: events per second between the feed's first and last data
  frame, median of ``--repeats`` runs (min and max shown), at 1, 10 and 100
  events per frame; the ratio to the floor: the floor runs before the first
  interface and after each one, and each run is divided by the mean of the floor
  runs right before and after it (the median of those ratios is shown); CPU
  seconds (all threads) per million events.
- **latency**: the feed stamps each event with its write time; the handler
  subtracts it from its own clock. 50,000 events/s in frames of 10; p50, p99,
  p99.9 and max; median over 5 runs (max: the largest), so one run disturbed by
  another process does not decide the figure.
- **slow consumer**: 2 million events (and 500,000, to show there is no
  growth) at 200,000 events/s through a handler ten times slower, with the
  clients' default ``drop_oldest`` buffer: peak RSS and the counters.

- **against a baseline** (``--baseline REV``): the throughput runs of every
  interface are repeated with ``polygon/`` as of the git revision ``REV``, in
  the same run and with the same measuring code, alternating which goes first;
  each run is paired with its own floor runs, and the table sets each
  interface's median ratio beside the baseline's. A change of the data path is
  judged by this, not by a table from another day: this machine's speed moves
  by more than the changes measured.

Options: ``--quick`` for a subset in about a minute; see ``--help``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.clients import BATCH_SETTERS
from benchmarks.feed import FeedProcess, round_events

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CLIENT_TIMEOUT = 180.0
# Where the measured processes run: a copy of polygon/ and benchmarks/ taken when
# the run starts (see snapshot()), so edits made meanwhile cannot mix two
# versions of the code into one table.
WORKDIR = ROOT


def snapshot() -> tuple[Path, str]:
    """Copy polygon/ and benchmarks/ to a temporary directory; that, and a hash of polygon/."""
    global WORKDIR
    tmp = Path(tempfile.mkdtemp(prefix="polygon-bench-"))
    skip = shutil.ignore_patterns("__pycache__", "results", "*.pyc")
    shutil.copytree(ROOT / "polygon", tmp / "polygon", ignore=skip)
    shutil.copytree(ROOT / "benchmarks", tmp / "benchmarks", ignore=skip)
    WORKDIR = tmp
    sys.path.insert(0, str(tmp))  # available() and slow_consumer() import polygon from it
    return tmp, tree_hash(tmp)


def tree_hash(root: Path) -> str:
    """A short hash of the Python sources of ``root/polygon``."""
    digest = hashlib.sha256()
    for path in sorted((root / "polygon").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Baseline:
    """``polygon/`` as of another git revision, measured with this run's ``benchmarks/``."""

    revision: str
    commit: str
    workdir: Path
    tree: str


def baseline_snapshot(revision: str, workdir: Path) -> Baseline:
    """Extract ``polygon/`` at ``revision`` beside a copy of the snapshot's
    ``benchmarks/`` (so both sides run the same measuring code)."""
    where = workdir / "baseline"
    where.mkdir()
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", "--short", f"{revision}^{{commit}}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if commit.returncode != 0:
        raise SystemExit(f"--baseline: {revision!r} is not a commit of this repository")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit.stdout.strip(), "polygon"],
        capture_output=True,
        cwd=ROOT,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    shutil.copytree(workdir / "benchmarks", where / "benchmarks")
    return Baseline(revision, commit.stdout.strip(), where, tree_hash(where))


@dataclass(frozen=True)
class Interface:
    """One way of consuming the stream, and its targets (ratios to the floor)."""

    mode: str
    label: str
    # events per frame -> the least ratio to the floor that meets the target.
    targets: dict[int, float] = field(default_factory=dict)
    # The p99 latency target in microseconds, if any.
    p99_target_us: float | None = None
    # Whether the mode exists yet: a class of polygon, and attribute names of which
    # one must be present.
    requires: tuple[str, tuple[str, ...]] | None = None
    in_latency: bool = True


DRAIN = Interface("drain", "feed capacity (raw socket read, no WebSocket parsing)")
FLOOR = Interface("floor", "floor: websockets recv + orjson.loads + one call per event")
INTERFACES = (
    FLOOR,
    Interface(
        "async_handler",
        "AsyncStreamClient, per-event handler",
        {100: 0.90, 1: 0.85},
        p99_target_us=2000.0,
    ),
    Interface("async_coroutine", "AsyncStreamClient, per-event async def handler", {}),
    Interface(
        "sync_callback",
        "StreamClient, per-event callback",
        {100: 0.85, 1: 0.60},
        p99_target_us=5000.0,
    ),
    Interface(
        "sync_iter",
        "StreamClient.iter_messages()",
        {100: 0.80, 1: 0.50},
        p99_target_us=5000.0,
    ),
    # ---- The batch interface (issue 5: "go past the floor"). --------------------------
    # Each row is skipped, with a message, until its method exists. The API measured:
    # ``add_batch_handler(fn)`` (or ``set_batch_handler(fn)``) on both clients, fn
    # called once per frame with the list of its events, and
    # ``StreamClient.iter_batches()`` yielding those lists. The harness side is in
    # benchmarks/clients.py; no per-event handler is set in these runs.
    Interface(
        "async_batch",
        "AsyncStreamClient, batch handler",
        {100: 1.10},
        p99_target_us=2000.0,
        requires=("AsyncStreamClient", BATCH_SETTERS),
    ),
    Interface(
        "sync_batch",
        "StreamClient, batch callback",
        {100: 1.10},
        p99_target_us=5000.0,
        requires=("StreamClient", BATCH_SETTERS),
    ),
    Interface(
        "iter_batches",
        "StreamClient.iter_batches()",
        {100: 1.10},
        p99_target_us=5000.0,
        requires=("StreamClient", ("iter_batches",)),
    ),
)
SLOW_CLIENTS = ("async_handler", "sync_callback")


@dataclass(frozen=True)
class Plan:
    repeats: int = 7
    sizes: tuple[int, ...] = (1, 10, 100)
    # events per frame -> data events per throughput run: 2 to 4 s of data, so
    # that a run's start (the allocator's arenas growing, caches warming) is a
    # small share of it; with 1 s runs the figures moved twice as much.
    events: dict[int, int] = field(
        default_factory=lambda: {1: 300_000, 10: 1_500_000, 100: 3_000_000}
    )
    extras: bool = True  # the async def handler row and the feed-capacity row
    latency_rate: float = 50_000.0
    latency_per_frame: int = 10
    latency_events: int = 150_000  # 3 s at 50,000/s
    latency_warmup: int = 25_000
    latency_runs: int = 5
    slow_events: tuple[int, ...] = (500_000, 2_000_000)
    slow_feed_rate: float = 200_000.0
    slow_consumer_rate: float = 20_000.0
    slow_per_frame: int = 100


FULL = Plan()
QUICK = Plan(
    repeats=3,
    sizes=(1, 100),
    events={1: 60_000, 10: 200_000, 100: 400_000},
    extras=False,
    latency_events=75_000,
    latency_warmup=15_000,
    latency_runs=2,
    slow_events=(200_000, 600_000),
)


def available(interface: Interface) -> tuple[bool, str]:
    if interface.requires is None:
        return True, ""
    import polygon

    owner, names = interface.requires
    if any(hasattr(getattr(polygon, owner), name) for name in names):
        return True, ""
    return False, f"{owner} has no {' or '.join(names)} yet"


# -- running one measurement ----------------------------------------------------------------


def run_client(
    mode: str,
    scenario: str,
    events: int,
    per_frame: int,
    rate: float | None = None,
    stamp: bool = False,
    consumer_rate: float = 0.0,
    warmup: int = 0,
    code: Path | None = None,
) -> dict[str, Any]:
    """One feed process and one client process; the client's result with the feed's.

    ``code``: where the client process takes ``polygon`` from (default: the snapshot).
    """
    feed = FeedProcess(events, per_frame, rate=rate, stamp=stamp, cwd=WORKDIR)
    args = [
        sys.executable,
        "-m",
        "benchmarks.clients",
        "--mode",
        mode,
        "--scenario",
        scenario,
        "--port",
        str(feed.port),
        "--events",
        str(events),
        "--per-frame",
        str(per_frame),
        "--consumer-rate",
        str(consumer_rate),
        "--warmup",
        str(warmup),
    ]
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            cwd=code or WORKDIR,
            check=False,
        )
    except subprocess.TimeoutExpired:
        feed.kill()
        return {"error": f"{mode} did not finish in {CLIENT_TIMEOUT} s"}
    result: dict[str, Any] = {"error": f"{mode} printed no result: {proc.stderr[-2000:]}"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
    result["feed"] = feed.result(timeout=30.0)
    if proc.stderr.strip() and "error" not in result:
        result["stderr"] = proc.stderr[-2000:]
    return result


def log(message: str) -> None:
    print(message, flush=True)


# -- the three parts ----------------------------------------------------------------------


def throughput(
    plan: Plan, interfaces: Sequence[Interface], baseline: Baseline | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Interleaved runs: every repeat runs every interface at every frame size, and
    the floor before the first interface and after each one.

    Each run is compared with the floor runs right before and after it, so a
    machine that speeds up or slows down over a minute (this one does, by about
    10 %) moves both sides of the ratio alike. With a ``baseline``, each
    interface also runs on the baseline's code, right before or after ours (in
    turn), with a floor run after it too. Returns our rows, and the baseline's.
    """
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        i.mode: {k: [] for k in plan.sizes} for i in interfaces
    }
    base_runs: dict[str, dict[int, list[dict[str, Any]]]] = {
        i.mode: {k: [] for k in plan.sizes} for i in interfaces
    }
    others = [i for i in interfaces if i.mode != FLOOR.mode]
    for repeat in range(plan.repeats):
        # Which code runs first alternates, so neither is always the one after the other.
        codes: list[Path | None] = [None]
        if baseline is not None:
            codes = [None, baseline.workdir] if repeat % 2 == 0 else [baseline.workdir, None]
        for per_frame in plan.sizes:
            events = round_events(plan.events[per_frame], per_frame)
            label = f"{repeat + 1}/{plan.repeats}"
            # The feed-capacity row is not a client: the floor run after it is its pair.
            drained = (
                measure(DRAIN.mode, runs, per_frame, events, label) if DRAIN in others else None
            )
            before = measure(FLOOR.mode, runs, per_frame, events, label)
            if drained is not None:
                pair_with_floor(drained, [before])
            for interface in others:
                if interface is DRAIN:
                    continue
                for code in codes:
                    into = runs if code is None else base_runs
                    result = measure(interface.mode, into, per_frame, events, label, code)
                    after = measure(FLOOR.mode, runs, per_frame, events, label)
                    pair_with_floor(result, [before, after])
                    before = after
    rows = summarize_throughput(runs, interfaces, plan.sizes)
    if baseline is None:
        return rows, None
    measured = [i for i in others if i is not DRAIN]
    return rows, {
        "revision": baseline.revision,
        "commit": baseline.commit,
        "polygon_tree": baseline.tree,
        "throughput": summarize_throughput(base_runs, measured, plan.sizes),
    }


def measure(
    mode: str,
    runs: dict[str, dict[int, list[dict[str, Any]]]],
    per_frame: int,
    events: int,
    repeat: str,
    code: Path | None = None,
) -> dict[str, Any]:
    """One throughput run of ``mode`` (on the baseline's ``code`` if given), kept in
    ``runs`` and logged."""
    result = run_client(mode, "throughput", events, per_frame, code=code)
    ran = result.get("polygon_dir")
    if code is not None and ran is not None and not Path(ran).is_relative_to(code):
        result = {"error": f"the baseline run imported polygon from {ran}, not {code}"}
    runs[mode][per_frame].append(result)
    name = mode if code is None else f"{mode} (baseline)"
    if "error" in result:
        log(f"  {name} {per_frame}/frame: ERROR {result['error']}")
        return result
    dropped = result.get("stats", {}).get("events_dropped", 0)
    note = f"  ({dropped} dropped)" if dropped else ""
    log(
        f"  run {repeat} {per_frame:>3}/frame "
        f"{name:<27} {result['events_per_second']:>12,.0f} ev/s{note}"
    )
    return result


def pair_with_floor(result: dict[str, Any], floors: Sequence[dict[str, Any]]) -> None:
    """Note in ``result`` the floor runs it is compared with (those that did not fail)."""
    good = [f for f in floors if "error" not in f]
    result["floor_pair"] = {
        key: [f[key] for f in good] for key in ("events_per_second", "cpu_per_million")
    }


def summarize_throughput(
    runs: dict[str, dict[int, list[dict[str, Any]]]],
    interfaces: Sequence[Interface],
    sizes: Iterable[int],
) -> dict[str, Any]:
    """Medians, and ratios to the floor: each run against the floor runs paired
    with it (the mean of their figures), then the median of those ratios."""
    rows: dict[str, Any] = {}
    for per_frame in sizes:
        for interface in interfaces:
            mine = runs[interface.mode][per_frame]
            good = [r for r in mine if "error" not in r]
            row: dict[str, Any] = {
                "runs": len(good),
                "errors": [r["error"] for r in mine if "error" in r],
            }
            if good:
                rates = [r["events_per_second"] for r in good]
                if interface is FLOOR:
                    ratios = [1.0] * len(good)
                    cpu_ratios = [1.0] * len(good)
                else:
                    ratios = paired_ratios(good, "events_per_second", mine_over_floor=True)
                    cpu_ratios = paired_ratios(good, "cpu_per_million", mine_over_floor=False)
                row.update(
                    median=statistics.median(rates),
                    min=min(rates),
                    max=max(rates),
                    rates=rates,
                    cpu_per_million=statistics.median(r["cpu_per_million"] for r in good),
                    gc_per_million=statistics.median(
                        r.get("gc_seconds", 0.0) / r["delivered"] * 1e6 for r in good
                    ),
                    dropped=sum(r.get("stats", {}).get("events_dropped", 0) for r in good),
                    feed_cpu_fraction=max(
                        r["feed"].get("cpu_seconds", 0)
                        / max(r["feed"].get("write_seconds", 1), 1e-9)
                        for r in good
                    ),
                )
                if cpu_ratios:
                    row["cpu_ratio"] = statistics.median(cpu_ratios)
                    row["cpu_ratios"] = cpu_ratios
                row["each_run"] = [
                    {
                        k: r.get(k)
                        for k in ("events_per_second", "cpu_per_million", "gc_seconds", "seconds")
                    }
                    | {"dropped": r.get("stats", {}).get("events_dropped", 0)}
                    for r in good
                ]
                if ratios:
                    row.update(
                        ratio=statistics.median(ratios),
                        ratio_min=min(ratios),
                        ratio_max=max(ratios),
                        ratios=ratios,
                    )
                target = interface.targets.get(per_frame)
                if target is not None:
                    row["target"] = target
                    row["met"] = bool(ratios) and row["ratio"] >= target
            rows.setdefault(interface.mode, {})[str(per_frame)] = row
    return rows


def paired_ratios(runs: Sequence[dict[str, Any]], key: str, mine_over_floor: bool) -> list[float]:
    """Per run: its ``key`` over the mean of its paired floor runs' (or the inverse)."""
    ratios = []
    for run in runs:
        floors = run.get("floor_pair", {}).get(key)
        if not floors:
            continue  # both floor runs failed, or results from before the pairing
        floor = statistics.fmean(floors)
        ratios.append(run[key] / floor if mine_over_floor else floor / run[key])
    return ratios


def latency(plan: Plan, interfaces: Sequence[Interface]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    events = round_events(plan.latency_events, plan.latency_per_frame)
    results: dict[str, list[dict[str, Any]]] = {i.mode: [] for i in interfaces}
    for repeat in range(plan.latency_runs):
        for interface in interfaces:
            result = run_client(
                interface.mode,
                "latency",
                events,
                plan.latency_per_frame,
                rate=plan.latency_rate,
                stamp=True,
                warmup=plan.latency_warmup,
            )
            results[interface.mode].append(result)
            if "error" in result:
                log(f"  latency {interface.mode}: ERROR {result['error']}")
            else:
                lat = result["latency"]
                log(
                    f"  latency run {repeat + 1}/{plan.latency_runs} {interface.mode:<16} "
                    f"p50 {lat['p50_us']:8.0f} us  p99 {lat['p99_us']:8.0f} us  "
                    f"max {lat['max_us']:8.0f} us"
                )
    for interface in interfaces:
        good = [r for r in results[interface.mode] if "error" not in r]
        row: dict[str, Any] = {
            "runs": len(good),
            "errors": [r["error"] for r in results[interface.mode] if "error" in r],
        }
        if good:
            lats = [r["latency"] for r in good]
            row.update(
                p50_us=statistics.median(x["p50_us"] for x in lats),
                p99_us=statistics.median(x["p99_us"] for x in lats),
                p999_us=statistics.median(x["p999_us"] for x in lats),
                max_us=max(x["max_us"] for x in lats),
                p99_runs_us=[x["p99_us"] for x in lats],
                cpu_percent=statistics.median(100 * r["cpu_seconds"] / r["seconds"] for r in good),
                dropped=sum(r.get("stats", {}).get("events_dropped", 0) for r in good),
            )
            if interface.p99_target_us is not None:
                row["p99_target_us"] = interface.p99_target_us
                row["met"] = row["p99_us"] < interface.p99_target_us
        rows[interface.mode] = row
    return rows


def bytes_per_event(events: int) -> dict[str, float]:
    """What one buffered event costs in memory, decoded and as raw text, measured
    in a fresh process holding ``events`` of them (:mod:`benchmarks.footprint`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.footprint", "--events", str(events)],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        cwd=WORKDIR,
        check=True,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise RuntimeError(f"benchmarks.footprint printed no result: {proc.stderr[-2000:]}")


def slow_consumer(plan: Plan) -> dict[str, Any]:
    from polygon.streaming._buffer import DEFAULT_MAX_BUFFERED_EVENTS

    per_event = bytes_per_event(DEFAULT_MAX_BUFFERED_EVENTS)
    rows: dict[str, Any] = {
        "max_buffered_events": DEFAULT_MAX_BUFFERED_EVENTS,
        "bytes_per_event": per_event,
        "feed_rate": plan.slow_feed_rate,
        "consumer_rate": plan.slow_consumer_rate,
        "per_frame": plan.slow_per_frame,
        "clients": {},
    }
    for mode in SLOW_CLIENTS:
        # AsyncStreamClient buffers decoded frames; StreamClient buffers the text of
        # plain data frames, which its consumer decodes one at a time.
        per = per_event["raw"] if mode.startswith("sync") else per_event["decoded"]
        expected_mb = DEFAULT_MAX_BUFFERED_EVENTS * per / 2**20
        by_size: dict[str, Any] = {}
        for events in plan.slow_events:
            events = round_events(events, plan.slow_per_frame)
            result = run_client(
                mode,
                "slow",
                events,
                plan.slow_per_frame,
                rate=plan.slow_feed_rate,
                consumer_rate=plan.slow_consumer_rate,
            )
            if "error" in result:
                log(f"  slow {mode} {events}: ERROR {result['error']}")
                by_size[str(events)] = {"error": result["error"]}
                continue
            stats = result["stats"]
            received, delivered = stats["events_received"], stats["events_delivered"]
            dropped = stats["events_dropped"]
            peak_mb = result["peak_rss_kb"] / 1024
            base_mb = result["rss_at_start_kb"] / 1024
            row = {
                "events": events,
                "seconds": result["seconds"],
                "peak_rss_mb": peak_mb,
                "rss_at_start_mb": base_mb,
                "buffer_mb": peak_mb - base_mb,
                "expected_buffer_mb": expected_mb,
                "received": received,
                "delivered": delivered,
                "dropped": dropped,
                "backlog": stats["backlog"],
                "handled": result["handled"],
                "consumer_rate": result["consumer_rate"],
                "exact": dropped == received - delivered and result["handled"] + dropped == events,
            }
            by_size[str(events)] = row
            log(
                f"  slow {mode:<14} {events:>9,} events: peak RSS {peak_mb:6.1f} MB "
                f"(start {base_mb:5.1f} MB), handled {row['handled']:,}, dropped {dropped:,}, "
                f"exact: {row['exact']}"
            )
        sizes = [v for v in by_size.values() if "error" not in v]
        summary: dict[str, Any] = {"runs": by_size}
        if len(sizes) >= 2:
            small, large = sizes[0], sizes[-1]
            summary["growth_mb"] = large["peak_rss_mb"] - small["peak_rss_mb"]
            summary["within_limit"] = all(
                s["buffer_mb"] <= 1.25 * s["expected_buffer_mb"] for s in sizes
            )
            summary["no_growth"] = summary["growth_mb"] <= 0.1 * small["peak_rss_mb"]
            summary["exact"] = all(s["exact"] for s in sizes)
        rows["clients"][mode] = summary
    return rows


# -- reporting ----------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False)
        return out.stdout.strip()

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "polygon")),
        "python": platform.python_version(),
        "websockets": version("websockets"),
        "orjson": version("orjson"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "load_average": os.getloadavg()[0],
    }


def fmt_rate(value: float) -> str:
    return f"{value / 1000:,.0f}k"


def throughput_table(rows: dict[str, Any], interfaces: Sequence[Interface]) -> list[list[str]]:
    table = [
        [
            "interface",
            "ev/frame",
            "events/s median",
            "min - max",
            "ratio",
            "ratio min - max",
            "CPU s/M ev",
            "CPU ratio",
            "GC s/M ev",
            "target",
        ]
    ]
    sizes = sorted({int(k) for mode in rows.values() for k in mode})
    for per_frame in sizes:
        for interface in interfaces:
            row = rows.get(interface.mode, {}).get(str(per_frame))
            if row is None:
                continue
            if "median" not in row:
                table.append([interface.label, str(per_frame), "failed", *[""] * 7])
                continue
            target = ""
            if "target" in row:
                target = f">= {row['target']:.2f}: " + ("met" if row["met"] else "NOT met")
            ratio = f"{row['ratio']:.2f}" if "ratio" in row else ""
            spread = f"{row['ratio_min']:.2f} - {row['ratio_max']:.2f}" if "ratio" in row else ""
            drops = f" ({row['dropped']:,} dropped)" if row.get("dropped") else ""
            table.append(
                [
                    interface.label,
                    str(per_frame),
                    fmt_rate(row["median"]) + drops,
                    f"{fmt_rate(row['min'])} - {fmt_rate(row['max'])}",
                    ratio,
                    spread,
                    f"{row['cpu_per_million']:.2f}",
                    f"{row['cpu_ratio']:.2f}" if "cpu_ratio" in row else "",
                    f"{row.get('gc_per_million', 0.0):.2f}",
                    target,
                ]
            )
    return table


def baseline_table(
    ours: dict[str, Any], theirs: dict[str, Any], interfaces: Sequence[Interface]
) -> list[list[str]]:
    """Per interface and frame size: our median ratio to the floor, the baseline's,
    and ours over theirs (the median, and the range over the repeats)."""
    table = [["interface", "ev/frame", "ratio", "baseline ratio", "ours / baseline", "per repeat"]]
    sizes = sorted({int(k) for mode in theirs.values() for k in mode})
    for per_frame in sizes:
        for interface in interfaces:
            mine = ours.get(interface.mode, {}).get(str(per_frame), {})
            base = theirs.get(interface.mode, {}).get(str(per_frame), {})
            if not base:
                continue  # the floor, or an interface the baseline run left out
            if "ratio" not in mine or "ratio" not in base:
                table.append([interface.label, str(per_frame), "failed", "", "", ""])
                continue
            # The n-th run of each side is from the same repeat, side by side; once a
            # run failed on one side that pairing is lost, and no range is shown.
            each: list[float] = []
            if len(mine["ratios"]) == len(base["ratios"]):
                each = [a / b for a, b in zip(mine["ratios"], base["ratios"], strict=True)]
            table.append(
                [
                    interface.label,
                    str(per_frame),
                    f"{mine['ratio']:.2f}",
                    f"{base['ratio']:.2f}",
                    f"{mine['ratio'] / base['ratio']:.2f}",
                    f"{min(each):.2f} - {max(each):.2f}" if each else "",
                ]
            )
    return table


def latency_table(rows: dict[str, Any], interfaces: Sequence[Interface]) -> list[list[str]]:
    table = [["interface", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "CPU %", "p99 target"]]
    for interface in interfaces:
        row = rows.get(interface.mode)
        if row is None:
            continue
        if "p50_us" not in row:
            table.append([interface.label, "failed", "", "", "", "", ""])
            continue
        target = ""
        if "p99_target_us" in row:
            verdict = "met" if row["met"] else "NOT met"
            target = f"< {row['p99_target_us'] / 1000:g} ms: {verdict}"
        table.append(
            [
                interface.label,
                f"{row['p50_us'] / 1000:.2f}",
                f"{row['p99_us'] / 1000:.2f}",
                f"{row['p999_us'] / 1000:.2f}",
                f"{row['max_us'] / 1000:.2f}",
                f"{row['cpu_percent']:.0f}",
                target,
            ]
        )
    return table


def slow_table(rows: dict[str, Any]) -> list[list[str]]:
    labels = {i.mode: i.label.split(",")[0] for i in INTERFACES}
    table = [
        [
            "client",
            "events",
            "peak RSS MB",
            "buffer MB (at the limit)",
            "received",
            "delivered",
            "dropped",
            "exact",
        ]
    ]
    for mode, summary in rows["clients"].items():
        for row in summary["runs"].values():
            if "error" in row:
                table.append([labels[mode], "failed", "", "", "", "", "", ""])
                continue
            table.append(
                [
                    labels[mode],
                    f"{row['events']:,}",
                    f"{row['peak_rss_mb']:.0f}",
                    f"{row['buffer_mb']:.0f} ({row['expected_buffer_mb']:.0f})",
                    f"{row['received']:,}",
                    f"{row['delivered']:,}",
                    f"{row['dropped']:,}",
                    "yes" if row["exact"] else "NO",
                ]
            )
    return table


def text_table(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for n, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rst_table(table: list[list[str]], title: str, widths: str | None = None) -> str:
    lines = [f".. list-table:: {title}", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in table:
        first = True
        for cell in row:
            prefix = "   * - " if first else "     - "
            lines.append(prefix + (cell.replace("*", r"\*") if cell else ".."))
            first = False
    return "\n".join(lines)


def report(results: dict[str, Any], interfaces: Sequence[Interface]) -> tuple[str, str]:
    """The plain-text report and the RST fragment."""
    env = {"load_average_after": float("nan"), **results["environment"]}
    plan = results["plan"]
    dirty = " + uncommitted changes" if env["dirty"] else ""
    tree = env.get("polygon_tree")
    dirty += f" (polygon/ tree {tree})" if tree else ""
    where = (
        f"{env['date']}, commit {env['commit']}{dirty}; Python {env['python']}, "
        f"websockets {env['websockets']}, orjson {env['orjson']}; "
        f"{env['cpu']}, {env['cores']} cores, Linux {env['kernel']}; load average "
        f"{env['load_average']:.2f} before, {env['load_average_after']:.2f} after."
    )
    parts_text = [f"Measured {where}"]
    parts_rst = [
        ".. This file is written by ``python -m benchmarks.run``; do not edit it.",
        "",
        f"Measured {where}",
    ]
    if "throughput" in results:
        table = throughput_table(results["throughput"], [DRAIN, *interfaces])
        feed_busy = max(
            (
                row.get("feed_cpu_fraction", 0.0)
                for mode, rows in results["throughput"].items()
                if mode != DRAIN.mode
                for row in rows.values()
            ),
            default=0.0,
        )
        head = (
            f"Throughput: median of {plan['repeats']} runs; ratio: each run divided by the mean "
            "of the floor's runs right before and after it, median (and range) of those; "
            "CPU: all threads of the client "
            "process, median; CPU ratio: the floor's CPU per event over this one's (paired "
            "like the ratio; it moves less when the machine is shared); GC: time in the cyclic "
            "garbage collector (gc.callbacks), median. The feed's CPU time was at most "
            f"{100 * feed_busy:.0f} % of a run's (feed capacity rows aside)."
        )
        parts_text += ["", head, text_table(table)]
        parts_rst += ["", rst_table(table, head, "26 6 11 13 6 10 7 7 7 14")]
    if "baseline" in results:
        head, table = against_baseline(results, interfaces)
        parts_text += ["", head, text_table(table)]
        parts_rst += ["", rst_table(table, head)]
    if "latency" in results:
        table = latency_table(results["latency"], interfaces)
        head = (
            f"Latency from the feed's write to the handler: {plan['latency_rate']:,.0f} events/s "
            f"in frames of {plan['latency_per_frame']}; median over {plan['latency_runs']} "
            "run(s) of "
            f"{plan['latency_events'] - plan['latency_warmup']:,} events each (max: the largest)."
        )
        parts_text += ["", head, text_table(table)]
        parts_rst += ["", rst_table(table, head)]
    if "slow_consumer" in results:
        slow = results["slow_consumer"]
        table = slow_table(slow)
        head = (
            f"Slow consumer: feed at {slow['feed_rate']:,.0f} events/s in frames of "
            f"{slow['per_frame']}, handler at {slow['consumer_rate']:,.0f} events/s, default "
            f"buffer (max_buffered_events={slow['max_buffered_events']:,}, drop_oldest); "
            "buffer MB = peak RSS (VmHWM) - RSS at the first data frame; at the limit = "
            "what max_buffered_events trades take held as the client buffers them, measured "
            f"in a fresh process: {slow['bytes_per_event']['decoded']:.0f} B each decoded "
            f"(AsyncStreamClient), {slow['bytes_per_event']['raw']:.0f} B each as frame "
            "text (StreamClient); exact = dropped == received - delivered and handled + "
            "dropped == sent."
        )
        parts_text += ["", head, text_table(table)]
        parts_rst += ["", rst_table(table, head)]
    return "\n".join(parts_text) + "\n", "\n".join(parts_rst) + "\n"


def against_baseline(
    results: dict[str, Any], interfaces: Sequence[Interface]
) -> tuple[str, list[list[str]]]:
    """The heading and the table that set our ratios beside the baseline's."""
    base = results["baseline"]
    table = baseline_table(results["throughput"], base["throughput"], interfaces)
    head = (
        f"Against the baseline: polygon/ as of {base['revision']} (commit "
        f"{base['commit']}, tree {base['polygon_tree']}) and this tree "
        f"({results['environment'].get('polygon_tree', '?')}), in the same "
        f"{results['plan']['repeats']} repeats with the same measuring code, each run "
        "paired with its own floor runs; ratio: the median ratio to the floor of each; "
        "ours / baseline: the quotient of the medians, and its range over the repeats "
        "(each repeat's two runs side by side)."
    )
    return head, table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset, in about a minute")
    parser.add_argument("--repeats", type=int, help="throughput runs per figure (default 7)")
    parser.add_argument("--sizes", help="events per frame, e.g. 1,100 (default 1,10,100)")
    parser.add_argument("--only", help="interfaces (modes), e.g. floor,async_handler")
    parser.add_argument(
        "--parts",
        default="throughput,latency,slow",
        help="which parts to run (default: throughput,latency,slow)",
    )
    parser.add_argument("--out", type=Path, help="results directory")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run every interface's throughput with polygon/ as of this git revision "
        "(results to benchmarks/results/baseline/ unless --out is given)",
    )
    parser.add_argument(
        "--report", type=Path, help="only rebuild the tables from this results.json"
    )
    args = parser.parse_args(argv)
    if args.report:
        write_report(args.out or args.report.parent, json.loads(args.report.read_text()))
        return

    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = replace(plan, repeats=args.repeats)
    if args.sizes:
        plan = replace(plan, sizes=tuple(int(s) for s in args.sizes.split(",")))
    default_out = RESULTS / "quick" if args.quick else RESULTS
    if args.baseline:
        default_out = RESULTS / "baseline"
    out = args.out or default_out
    parts = set(args.parts.split(","))

    workdir, tree = snapshot()
    try:
        baseline = baseline_snapshot(args.baseline, workdir) if args.baseline else None
        run_plan(plan, args.only, parts, out, tree, baseline)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_plan(
    plan: Plan,
    only: str | None,
    parts: set[str],
    out: Path,
    tree: str,
    baseline: Baseline | None = None,
) -> None:
    interfaces: list[Interface] = []
    for interface in INTERFACES:
        ok, why = available(interface)
        if not ok:
            log(f"skipped: {interface.label}: {why}")
            continue
        if interface.mode == "async_coroutine" and not plan.extras:
            continue
        if only and interface.mode not in only.split(",") and interface is not FLOOR:
            continue
        interfaces.append(interface)

    started = time.monotonic()
    results: dict[str, Any] = {"environment": environment(), "plan": plan.__dict__}
    results["environment"]["polygon_tree"] = tree
    out.mkdir(parents=True, exist_ok=True)
    if "throughput" in parts:
        log("throughput")
        modes = [DRAIN, *interfaces] if plan.extras else interfaces
        results["throughput"], against = throughput(plan, modes, baseline)
        if against is not None:
            results["baseline"] = against
        save(out, results)
    if "latency" in parts:
        log("latency")
        results["latency"] = latency(plan, [i for i in interfaces if i.in_latency])
        save(out, results)
    if "slow" in parts:
        log("slow consumer")
        results["slow_consumer"] = slow_consumer(plan)
    results["seconds"] = time.monotonic() - started
    results["environment"]["load_average_after"] = os.getloadavg()[0]
    results["interfaces"] = [i.mode for i in interfaces]
    save(out, results)
    write_report(out, results)
    log(f"{results['seconds']:.0f} s")


def save(out: Path, results: dict[str, Any]) -> None:
    """Write what there is so far (a crash later loses nothing)."""
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def write_report(out: Path, results: dict[str, Any]) -> None:
    modes = results.get("interfaces") or [i.mode for i in INTERFACES]
    interfaces = [i for i in INTERFACES if i.mode in modes]
    text, rst = report(results, interfaces)
    (out / "table.rst").write_text(rst)
    (out / "table.txt").write_text(text)
    if "baseline" in results:
        # The comparison alone, for a page that shows the full table elsewhere.
        head, table = against_baseline(results, interfaces)
        (out / "baseline.rst").write_text(
            ".. This file is written by ``python -m benchmarks.run``; do not edit it.\n\n"
            + rst_table(table, head)
            + "\n"
        )
    log("")
    log(text)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    log(f"written to {shown}/")


if __name__ == "__main__":
    main()
