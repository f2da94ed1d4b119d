"""The ``polygon-stream`` command line.

- ``polygon-stream tail CLUSTER STREAM [SYMBOLS...]``: print events as they come.
- ``polygon-stream simulate``: run the local market simulator.
- ``polygon-stream demo``: start the simulator in-process and tail it.

``tail`` and ``demo`` also publish every event to brokers given with ``--sink``
(``redis://host:port/0``, ``nats://host:port``); see the scaling guide.

Errors in the arguments or the environment give one line and exit code 2;
a stream that stops with an error gives one line and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from polygon.enums import StreamCluster
from polygon.streaming import _protocol as proto
from polygon.streaming._channels import STREAMS, Stream, symbol_field
from polygon.streaming.async_streaming import AsyncStreamClient
from polygon.streaming.errors import ConfigurationError, PolygonStreamError
from polygon.streaming.simulator import MarketSimulator
from polygon.streaming.sinks import BufferedSink

EXIT_USAGE = 2
EXIT_STREAM_ERROR = 1

_PRICE_FIELDS = ("p", "bp", "c", "val", "fmv", "b")

# ``--sink`` URL schemes and the broker each means.
SINK_SCHEMES = {"redis": "redis", "rediss": "redis", "nats": "nats", "tls": "nats"}


class UsageError(Exception):
    """A bad argument: reported as one line, never a traceback."""


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
    price = next((event[f] for f in _PRICE_FIELDS if f in event), "")
    if isinstance(price, list):  # a level 2 book side: show the best level
        price = price[0][0] if price and isinstance(price[0], list) and price[0] else ""
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
        self.format = args.format
        self.count = args.count
        self.duration = args.duration
        self.seen = 0
        self.started = time.monotonic()
        self.sink_urls: list[str] = list(getattr(args, "sink", None) or [])
        self.sinks = [make_sink(url) for url in self.sink_urls]
        self.client = AsyncStreamClient(args.api_key, self.cluster, host=host)

    def on_event(self, event: dict[str, Any]) -> None:
        if self.count is not None and self.seen >= self.count:
            return  # the rest of the last frame, while the client closes
        if self.format == "jsonl":
            sys.stdout.write(orjson.dumps(event).decode() + "\n")
        else:
            sys.stdout.write(format_line(self.cluster, event) + "\n")
        self.seen += 1
        if self.count is not None and self.seen >= self.count:
            asyncio.get_running_loop().create_task(self.client.close_stream())

    async def run(self) -> None:
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

    def summary(self) -> str:
        stats = self.client.stats
        elapsed = time.monotonic() - self.started
        line = (
            f"{self.seen} events in {elapsed:.1f} s; "
            f"reconnects {stats.reconnects}, dropped {stats.events_dropped}"
        )
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
        sys.stderr.write(tail.summary() + "\n")


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
    sim = MarketSimulator(args.bind, args.port, rate=args.rate, batch_size=args.batch_size)
    async with sim:
        sys.stdout.write(f"simulator listening on {sim.url} (clusters: /stocks, /options, ...)\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


async def _demo(args: argparse.Namespace) -> None:
    async with MarketSimulator(rate=args.rate, batch_size=5) as sim:
        sys.stderr.write(f"demo: simulated {args.cluster} {args.stream} from {sim.url}\n")
        args.api_key = args.api_key or "demo-key"
        await _tail(args, sim.url)


def _tail_arguments(parser: argparse.ArgumentParser, *, demo: bool = False) -> None:
    if demo:
        parser.add_argument("cluster", nargs="?", default="stocks")
        parser.add_argument("stream", nargs="?", default="trades")
    else:
        parser.add_argument("cluster", help="stocks, options, forex, crypto or indices")
        parser.add_argument("stream", help="e.g. trades, quotes, minute_aggregates, T, AM, XL2")
    parser.add_argument("symbols", nargs="*", help="symbols (none: every symbol)")
    parser.add_argument(
        "--api-key", help="the API key (default: POLYGON_API_KEY / MASSIVE_API_KEY)"
    )
    parser.add_argument("--format", choices=("line", "jsonl"), default="line")
    parser.add_argument("--duration", type=float, default=8.0 if demo else None)
    parser.add_argument("--count", type=int)
    parser.add_argument(
        "--sink",
        action="append",
        metavar="URL",
        help="also publish every event to a broker: redis://host:port/db or "
        "nats://host:port (repeatable)",
    )
    if demo:
        parser.add_argument("--rate", type=float, default=40.0, help="events per second")
    else:
        parser.add_argument("--host", default=None, help="hostname or ws:// URL of a server")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polygon-stream", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _tail_arguments(commands.add_parser("tail", help="print events from a stream"))
    _tail_arguments(commands.add_parser("demo", help="tail the local simulator"), demo=True)
    simulate = commands.add_parser("simulate", help="run the local market simulator")
    simulate.add_argument("--bind", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8765)
    simulate.add_argument("--rate", type=float, default=100.0)
    simulate.add_argument("--batch-size", type=int, default=10)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        for url in getattr(args, "sink", None) or []:
            make_sink(url)  # before anything starts: a bad URL or missing extra is one line
        if args.command == "simulate":
            asyncio.run(_until_interrupted(_simulate(args)))
        elif args.command == "demo":
            asyncio.run(_demo(args))
        else:
            host = args.host or "socket.polygon.io"
            asyncio.run(_tail(args, host))
    except (UsageError, ConfigurationError) as exc:
        sys.stderr.write(f"polygon-stream: {exc}\n")
        return EXIT_USAGE
    except PolygonStreamError as exc:
        sys.stderr.write(f"polygon-stream: {exc}\n")
        return EXIT_STREAM_ERROR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
