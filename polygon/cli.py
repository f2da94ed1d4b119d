"""The ``polygon-stream`` command line.

- ``polygon-stream tail CLUSTER STREAM [SYMBOLS...]``: print events as they come.
- ``polygon-stream simulate``: run the local market simulator.
- ``polygon-stream demo``: start the simulator in-process and tail it.
- ``polygon-stream replay FILE``: serve a recording (from ``tail --output``).
- ``polygon-stream publish CLUSTER STREAM [SYMBOLS...] --sink URL``: publish a
  stream to brokers and print nothing else; with ``--leader-lock URL``, only
  while holding the lease, so spares can stand by.

``tail`` and ``demo`` also publish every event to brokers given with ``--sink``
(``redis://host:port/0``, ``nats://host:port``); see the scaling guide.

Errors in the arguments or the environment give one line and exit code 2;
a stream that stops with an error gives one line and exit code 1. When
standard output is closed under it (``polygon-stream tail ... | head -3``), the
command closes its connection, says nothing more and exits with 141, the status
a shell reports for ``cat`` stopped by SIGPIPE (128 + 13).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

import polygon
from polygon._cli_table import TableView, price_of, require_rich
from polygon.enums import StreamCluster
from polygon.streaming import _protocol as proto
from polygon.streaming._channels import STREAMS, Stream, symbol_field
from polygon.streaming._config import resolve_api_key
from polygon.streaming.async_streaming import AsyncStreamClient
from polygon.streaming.errors import ConfigurationError, PolygonStreamError
from polygon.streaming.leader import (
    DEFAULT_LEASE,
    LeaderState,
    Publisher,
    default_lock_name,
    lock_from_url,
)
from polygon.streaming.recording import open_recorder, read_recording
from polygon.streaming.simulator import MarketSimulator, infer_cluster, replay
from polygon.streaming.simulator._clock import add_clock_arguments
from polygon.streaming.sinks import BufferedSink

EXIT_USAGE = 2
EXIT_STREAM_ERROR = 1
# What a shell reports for a command killed by SIGPIPE (128 + 13), as for
# ``cat`` in ``cat big | head -1``: the reader went away before the end.
EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE if hasattr(signal, "SIGPIPE") else 141


# ``--sink`` URL schemes and the broker each means.
SINK_SCHEMES = {"redis": "redis", "rediss": "redis", "nats": "nats", "tls": "nats"}


class UsageError(Exception):
    """A bad argument: reported as one line, never a traceback."""


class OutputClosed(Exception):
    """Standard output was closed by its reader (a ``BrokenPipeError`` on write)."""


def _silence_stdout() -> None:
    """Point standard output at the null device, so that the flush at exit cannot fail.

    After a broken pipe, Python's own flush of ``sys.stdout`` at interpreter exit
    would raise again and print "Exception ignored ..." on standard error.
    """
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def resolve_stream(cluster: StreamCluster, name: str) -> Stream:
    """A stream from a method-name suffix (``trades``) or an event code (``T``)."""
    wanted = name.strip().lower()
    serving = [s for s in STREAMS if s.serves(cluster)]
    for stream in serving:
        if wanted in (stream.name, stream.event_code.lower()):
            return stream
    matches = [s for s in serving if s.name.endswith("_" + wanted)]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(s.name for s in serving)
    raise UsageError(f"no stream {name!r} on the {cluster.value} cluster; choose from: {choices}")


def format_line(cluster: StreamCluster, event: dict[str, Any]) -> str:
    """One readable line for an event: code, symbol, price-like field, size."""
    code = str(event.get("ev", "?"))
    if code == "status":
        return f"status  {event.get('status')}: {event.get('message')}"
    symbol = event.get(symbol_field(cluster, code), "")
    price = price_of(event)
    size = event.get("s", event.get("v", ""))
    return f"{code:<5} {symbol!s:<24} {price!s:>14} {size!s:>10}"


def sink_kind(url: str) -> str:
    """``"redis"`` or ``"nats"``, from a ``--sink`` URL's scheme; a usage error otherwise."""
    scheme, sep, rest = url.partition("://")
    kind = SINK_SCHEMES.get(scheme.lower()) if sep and rest else None
    if kind is None:
        raise UsageError(
            f"--sink {url!r} is not a broker URL: give redis://host:port/db, "
            "rediss://..., nats://host:port or tls://host:port"
        )
    return kind


def make_sink(url: str) -> BufferedSink:
    """The sink for a ``--sink`` URL (its extra missing: a usage error)."""
    kind = sink_kind(url)
    try:
        if kind == "redis":
            from polygon.streaming.sinks.redis import RedisStreamsSink

            return RedisStreamsSink(url)
        from polygon.streaming.sinks.nats import NatsJetStreamSink

        return NatsJetStreamSink(url)
    except ImportError as exc:
        raise UsageError(str(exc)) from None


def _shown_url(url: str) -> str:
    """A sink URL for the summary line, without a password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


class Tail:
    """Prints events from one stream until a duration or count is reached."""

    def __init__(self, args: argparse.Namespace, host: str) -> None:
        self.cluster = proto.normalize_cluster(args.cluster)
        self.stream = resolve_stream(self.cluster, args.stream)
        self.symbols: list[str] | None = args.symbols or None
        self.format: str = args.format
        self.count = args.count
        self.duration = args.duration
        self.seen = 0
        self.output_closed = False
        self._flush_scheduled = False
        self.started = time.monotonic()
        self.sink_urls: list[str] = list(getattr(args, "sink", None) or [])
        self.sinks = [make_sink(url) for url in self.sink_urls]
        self.client = AsyncStreamClient(args.api_key, self.cluster, host=host)
        self.recorder = (
            open_recorder(args.output, [self.stream.event_code], flush_interval=args.flush_interval)
            if args.output
            else None
        )
        self.view = TableView(self.cluster, lambda: self.client.stats) if self.table else None

    @property
    def table(self) -> bool:
        return self.format == "table"

    def on_event(self, event: dict[str, Any]) -> None:
        if self.output_closed or (self.count is not None and self.seen >= self.count):
            return  # the rest of the last frame, while the client closes
        try:
            self._show(event)
        except BrokenPipeError:
            self._stop_for_closed_output()
            return
        self.seen += 1
        if self.count is not None and self.seen >= self.count:
            asyncio.get_running_loop().create_task(self.client.close_stream())

    def _show(self, event: dict[str, Any]) -> None:
        if self.view is not None:
            self.view.on_event(event)
            return
        if self.format == "jsonl":
            sys.stdout.write(orjson.dumps(event).decode() + "\n")
        else:
            sys.stdout.write(format_line(self.cluster, event) + "\n")
        if not self._flush_scheduled:
            # One flush per turn of the loop, not per event: a reader that has
            # gone away is noticed within a frame, and a firehose is not slowed
            # by a system call per line.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.output_closed:
            return
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            self._stop_for_closed_output()

    def _stop_for_closed_output(self) -> None:
        if not self.output_closed:
            self.output_closed = True
            _silence_stdout()
            asyncio.get_running_loop().create_task(self.client.close_stream())

    async def run(self) -> None:
        if self.recorder is not None:
            self.client.add_batch_handler(self.recorder.write_batch)
        if self.view is None:
            await self._stream()
            return
        from rich.live import Live

        # Refreshed from the loop rather than rich's own thread, so that a
        # closed standard output is caught here like in the other formats.
        live = Live(self.view.render(), auto_refresh=False)
        self._render(live, start=True)
        refresher = asyncio.get_running_loop().create_task(self._refresh(live))
        try:
            await self._stream()
        finally:
            refresher.cancel()
            self._render(live, stop=True)

    async def _refresh(self, live: Any) -> None:
        while not self.output_closed:
            await asyncio.sleep(0.25)
            self._render(live)

    def _render(self, live: Any, *, start: bool = False, stop: bool = False) -> None:
        assert self.view is not None
        if self.output_closed:
            return
        try:
            if start:
                live.start()
            live.update(self.view.render(), refresh=True)
            if stop:
                live.stop()
        except BrokenPipeError:
            self._stop_for_closed_output()

    async def _stream(self) -> None:
        for sink in self.sinks:
            await self.client.add_sink(sink)
        subscribe = getattr(self.client, f"subscribe_{self.stream.name}")
        await subscribe(self.symbols, handler_function=self.on_event)
        stopper = None
        if self.duration is not None:
            stopper = asyncio.get_running_loop().call_later(
                self.duration, lambda: asyncio.ensure_future(self.client.close_stream())
            )
        try:
            await self.client.handle_messages(reconnect=True)
        finally:
            if stopper is not None:
                stopper.cancel()
            await self.client.close_stream()
            if self.recorder is not None:
                self.recorder.close()

    def summary(self) -> str:
        stats = self.client.stats
        elapsed = time.monotonic() - self.started
        line = (
            f"{self.seen} events in {elapsed:.1f} s; "
            f"reconnects {stats.reconnects}, dropped {stats.events_dropped}"
        )
        if self.recorder is not None:
            line += f"; recorded {self.recorder.count} to {self.recorder.path}"
        for url, sink in zip(self.sink_urls, self.sinks, strict=True):
            line += (
                f"; sink {_shown_url(url)}: published {sink.stats.published}, "
                f"dropped {sink.stats.dropped}"
            )
        return line


async def _tail(args: argparse.Namespace, host: str) -> None:
    tail = Tail(args, host)
    try:
        await _until_interrupted(tail.run())
    finally:
        if not tail.output_closed:
            sys.stderr.write(tail.summary() + "\n")
    if tail.output_closed:
        raise OutputClosed


async def _until_interrupted(work: Any) -> None:
    """Run ``work``; SIGINT/SIGTERM cancel it so ``finally`` blocks run."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _simulate(args: argparse.Namespace) -> None:
    sim = MarketSimulator(
        args.host,
        args.port,
        rate=args.rate,
        batch_size=args.batch_size,
        seed=args.seed,
        valid_keys=args.key or None,
        speed=args.speed,
        start=args.start,
    )
    async with sim:
        sys.stdout.write(f"simulator listening on {sim.url} (clusters: /stocks, /options, ...)\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


async def _replay(args: argparse.Namespace) -> None:
    """Serve a recording to the first client that subscribes, then stop."""
    events = list(read_recording(args.file))
    cluster = proto.normalize_cluster(args.cluster) if args.cluster else infer_cluster(events)
    async with MarketSimulator(args.host, args.port, rate=0) as sim:
        sys.stdout.write(f"replaying {len(events)} {cluster.value} events on {sim.url}\n")
        sys.stdout.flush()
        await sim.wait_for(lambda: bool(sim.subscriptions(cluster)), timeout=args.wait)
        sent = await replay(sim, cluster, events, speed=args.speed)
        sys.stderr.write(f"replayed {sent} events\n")


async def _publish(args: argparse.Namespace) -> None:
    """Publish one stream to the sinks until SIGTERM/Ctrl-C; state changes on stderr."""
    cluster = proto.normalize_cluster(args.cluster)
    stream = resolve_stream(cluster, args.stream)
    if not args.sink:
        raise UsageError("publish needs at least one --sink URL")
    key = resolve_api_key(args.api_key)
    lock = None
    if args.leader_lock:
        name = args.lock_name or default_lock_name(cluster.value, key)
        try:
            lock = lock_from_url(args.leader_lock, name, lease=args.lease)
        except ImportError as exc:
            raise UsageError(str(exc)) from None

    def on_state(state: LeaderState, reason: str) -> None:
        sys.stderr.write(f"publish: {state.value}: {reason}\n")
        sys.stderr.flush()

    factories = [functools.partial(make_sink, url) for url in args.sink]
    publisher = Publisher(
        key,
        cluster,
        stream.name,
        args.symbols,
        factories,
        lock=lock,
        host=args.host or "socket.polygon.io",
        on_state=on_state,
    )
    if lock is None:
        on_state(LeaderState.LEADER, "publishing (no --leader-lock)")
    try:
        await _until_interrupted(publisher.run())
    finally:
        sys.stderr.write(f"publish: published {publisher.published}, dropped {publisher.dropped}\n")


def _publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cluster", help="stocks, options, forex, crypto or indices")
    parser.add_argument("stream", help="e.g. trades, quotes, minute_aggregates, T, AM, XL2")
    parser.add_argument("symbols", nargs="*", help="symbols (none: every symbol)")
    parser.add_argument(
        "--api-key", help="the API key (default: POLYGON_API_KEY / MASSIVE_API_KEY)"
    )
    parser.add_argument("--host", default=None, help="hostname or ws:// URL of a server")
    parser.add_argument(
        "--sink",
        action="append",
        metavar="URL",
        help="publish every event to this broker: redis://host:port/db or "
        "nats://host:port (repeatable; at least one)",
    )
    parser.add_argument(
        "--leader-lock",
        metavar="URL",
        help="run as one of several publishers: only the holder of a lease in this "
        "broker (redis://... or nats://...) connects",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=DEFAULT_LEASE,
        metavar="SECONDS",
        help=f"how long a lease lasts without renewal (default {DEFAULT_LEASE:g}); "
        "a standby takes over at most this long after the holder dies",
    )
    parser.add_argument(
        "--lock-name",
        help="the lock's name (default: the cluster and a hash of the API key)",
    )


async def _demo(args: argparse.Namespace) -> None:
    async with MarketSimulator(rate=args.rate, batch_size=5) as sim:
        sys.stderr.write(f"demo: simulated {args.cluster} {args.stream} from {sim.url}\n")
        args.api_key = args.api_key or "demo-key"
        await _tail(args, sim.url)


def _tail_arguments(parser: argparse.ArgumentParser, *, demo: bool = False) -> None:
    if demo:
        parser.add_argument(
            "cluster", nargs="?", default="stocks", help="the cluster (default: %(default)s)"
        )
        parser.add_argument(
            "stream", nargs="?", default="trades", help="the stream (default: %(default)s)"
        )
    else:
        parser.add_argument("cluster", help="stocks, options, forex, crypto or indices")
        parser.add_argument("stream", help="e.g. trades, quotes, minute_aggregates, T, AM, XL2")
    parser.add_argument("symbols", nargs="*", help="symbols (none: every symbol)")
    parser.add_argument(
        "--api-key", help="the API key (default: POLYGON_API_KEY / MASSIVE_API_KEY)"
    )
    parser.add_argument(
        "--format",
        choices=("line", "jsonl", "table"),
        default="line",
        help="line: one line per event; jsonl: JSON lines; table: a live view (needs rich)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="record every event: JSON lines (.gz compresses), or Parquet for a name "
        "ending in .parquet (needs pyarrow)",
    )
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="Parquet: write a row group at least this often while events arrive "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=8.0 if demo else None,
        metavar="SECONDS",
        help="stop after this many seconds (default: "
        + ("%(default)s)" if demo else "run until interrupted)"),
    )
    parser.add_argument(
        "--count", type=int, metavar="N", help="stop after printing this many events"
    )
    parser.add_argument(
        "--sink",
        action="append",
        metavar="URL",
        help="also publish every event to a broker: redis://host:port/db or "
        "nats://host:port (repeatable)",
    )
    if demo:
        parser.add_argument(
            "--rate",
            type=float,
            default=4.0,
            help="trades and quotes per symbol per second (default 4)",
        )
    else:
        parser.add_argument("--host", default=None, help="hostname or ws:// URL of a server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polygon-stream",
        description="Stream, record, replay and simulate Polygon.io / Massive.com market data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {polygon.__version__}")
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        help="what to do (COMMAND --help tells more)",
    )
    _tail_arguments(commands.add_parser("tail", help="print events from a stream"))
    _tail_arguments(commands.add_parser("demo", help="tail the local simulator"), demo=True)
    simulate = commands.add_parser("simulate", help="run the local market simulator")
    simulate.add_argument(
        "--host",
        "--bind",
        dest="host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only)",
    )
    simulate.add_argument(
        "--port", type=int, default=8765, help="the port to listen on (default 8765; 0: any free)"
    )
    simulate.add_argument(
        "--rate", type=float, default=100.0, help="trades and quotes per symbol per market second"
    )
    add_clock_arguments(simulate)
    simulate.add_argument(
        "--batch-size", type=int, default=10, help="the most events sent in one frame (default 10)"
    )
    simulate.add_argument("--seed", type=int, help="make the generated data repeatable")
    simulate.add_argument(
        "--key", action="append", help="accept only this API key (repeatable; default: any)"
    )
    replay_ = commands.add_parser("replay", help="serve a recording (from tail --output)")
    replay_.add_argument(
        "file", help="a recording: JSON lines (.gz allowed) or Parquet (a .parquet dataset)"
    )
    replay_.add_argument(
        "--speed", type=float, default=1.0, help="1: the original pace; 10: ten times; 0: at once"
    )
    replay_.add_argument("--cluster", help="the recording's cluster (default: inferred)")
    replay_.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    replay_.add_argument(
        "--port", type=int, default=8765, help="port to listen on, 0 for any (default: %(default)s)"
    )
    replay_.add_argument(
        "--wait", type=float, default=3600.0, help="seconds to wait for a subscriber"
    )
    _publish_arguments(
        commands.add_parser("publish", help="publish a stream to brokers, optionally as a leader")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for url in getattr(args, "sink", None) or []:
            make_sink(url)  # before anything starts: a bad URL or missing extra is one line
        if getattr(args, "format", None) == "table":
            try:
                require_rich()
            except ImportError as exc:
                raise UsageError(str(exc)) from None
        if args.command == "simulate":
            asyncio.run(_until_interrupted(_simulate(args)))
        elif args.command == "replay":
            asyncio.run(_until_interrupted(_replay(args)))
        elif args.command == "publish":
            asyncio.run(_publish(args))
        elif args.command == "demo":
            asyncio.run(_demo(args))
        else:
            host = args.host or "socket.polygon.io"
            asyncio.run(_tail(args, host))
    except (OutputClosed, BrokenPipeError):
        _silence_stdout()
        return EXIT_OUTPUT_CLOSED
    except (UsageError, ConfigurationError) as exc:
        sys.stderr.write(f"polygon-stream: {exc}\n")
        return EXIT_USAGE
    except (OSError, ValueError) as exc:  # an unreadable recording or output file
        sys.stderr.write(f"polygon-stream: {exc}\n")
        return EXIT_USAGE
    except PolygonStreamError as exc:
        sys.stderr.write(f"polygon-stream: {exc}\n")
        return EXIT_STREAM_ERROR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
