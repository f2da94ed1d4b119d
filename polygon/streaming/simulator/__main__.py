"""``python -m polygon.streaming.simulator``: serve simulated market data locally.

Prints the URL once listening (clients append ``/stocks``, ``/crypto``, ...)
and runs until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from polygon.streaming.simulator._clock import add_clock_arguments
from polygon.streaming.simulator._server import MarketSimulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m polygon.streaming.simulator",
        description="Serve simulated Polygon/Massive market data over WebSockets.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind, 0 for any (default: %(default)s)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="trades and quotes per symbol per second of market time, 0 for none "
        "(default: %(default)s)",
    )
    add_clock_arguments(parser)
    parser.add_argument(
        "--batch-size", type=int, default=10, help="most events per frame (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible data")
    parser.add_argument(
        "--key",
        action="append",
        dest="keys",
        metavar="KEY",
        help="an accepted API key (repeatable; default: any non-empty key)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each session")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows' proactor loop: Ctrl-C still ends asyncio.run().
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with MarketSimulator(
        args.host,
        args.port,
        valid_keys=args.keys,
        rate=args.rate,
        batch_size=args.batch_size,
        seed=args.seed,
        speed=args.speed,
        start=args.start,
    ) as simulator:
        print(simulator.url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
