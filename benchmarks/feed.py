"""The feed: a WebSocket server process that is never the bottleneck.

It accepts one connection on 127.0.0.1, speaks just enough of the Polygon
protocol for the clients (``connected``, ``auth_success``, a subscription
acknowledgement), then writes pre-built frames straight to the socket and waits
for the client to close. Server frames are unmasked, so every data frame is
built once, up front, and a whole block of them (10,000 events, about 1 MB) is
written with one ``sendall``; the kernel copies it, Python does nothing per
event.

The data is framed by two status frames the clients route like any other
status: ``bench_start`` just before the first data frame and ``bench_end`` just
after the last one, so a client can time exactly the data.

Paced mode (``--rate``) writes frames on a schedule instead (catching up in one
write when a sleep overshoots). With ``--stamp`` every event's ``t`` field is
the feed's ``time.time_ns()`` at the write, patched into the pre-built frame in
place (fixed-width digits in a ``bytearray``), so a client can measure the
latency from the feed's write to its handler.

Run by :mod:`benchmarks.run`; by hand::

    python -m benchmarks.feed --events 1000000 --per-frame 100
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import random
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

# Distinct events built up front; the data is this block, written again and again.
BLOCK_EVENTS = 10_000
# The width of the ``t`` field: nanoseconds since the epoch (19 digits until 2286).
STAMP_WIDTH = 19
PLACEHOLDER_T = 1_700_000_000_000_000_000
START_STATUS = "bench_start"
END_STATUS = "bench_end"
# How long the feed waits for the client to close after the last frame.
CLOSE_WAIT_SECONDS = 120.0

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x8, 0x9, 0xA

SYMBOLS = (
    "AAPL",
    "MSFT",
    "NVDA",
    "AMZN",
    "GOOGL",
    "META",
    "TSLA",
    "BRK.B",
    "JPM",
    "V",
    "UNH",
    "XOM",
    "LLY",
    "AVGO",
    "MA",
    "HD",
    "PG",
    "COST",
    "JNJ",
    "MRK",
    "ABBV",
    "CVX",
    "PEP",
    "KO",
    "ADBE",
    "WMT",
    "CRM",
    "BAC",
    "NFLX",
    "AMD",
    "TMO",
    "LIN",
    "ACN",
    "MCD",
    "CSCO",
    "ABT",
    "DHR",
    "ORCL",
    "INTC",
    "QCOM",
    "SPY",
    "QQQ",
    "IWM",
)
CONDITIONS: tuple[list[int], ...] = ([], [12], [37], [14, 41], [12, 37], [2, 12, 37])
SIZES = (1, 3, 5, 10, 25, 50, 100, 100, 100, 200, 300, 500, 1000)


def trade_events(count: int, seed: int = 5) -> list[bytes]:
    """``count`` realistic stock trades as JSON, about 110 bytes each.

    Fields in the service's order: ``ev sym x i z p s c t q``. ``t`` is a
    19-digit placeholder (patched with the write time in stamped mode).
    """
    rng = random.Random(seed)
    events = []
    for seq in range(count):
        symbol = rng.choice(SYMBOLS)
        event = {
            "ev": "T",
            "sym": symbol,
            "x": rng.randint(1, 21),
            "i": str(rng.randrange(10**13, 10**14)),
            "z": 3 if symbol in ("QQQ", "AAPL", "MSFT", "NVDA") else rng.randint(1, 2),
            "p": round(rng.uniform(5.0, 900.0), rng.choice((2, 2, 4))),
            "s": rng.choice(SIZES),
            "c": rng.choice(CONDITIONS),
            "t": PLACEHOLDER_T,
            "q": 1_000_000 + seq,
        }
        events.append(orjson.dumps(event))
    return events


def frame_bytes(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    """One unmasked server frame (RFC 6455 section 5.2), FIN set."""
    n = len(payload)
    first = bytes((0x80 | opcode,))
    if n < 126:
        header = first + bytes((n,))
    elif n < 2**16:
        header = first + bytes((126,)) + n.to_bytes(2, "big")
    else:
        header = first + bytes((127,)) + n.to_bytes(8, "big")
    return header + payload


def status_frame(status: str, message: str) -> bytes:
    return frame_bytes(orjson.dumps([{"ev": "status", "status": status, "message": message}]))


@dataclass
class DataFrames:
    """One block of pre-built data frames and where each event's ``t`` digits are."""

    frames: list[bytearray]
    stamp_offsets: list[list[int]]
    per_frame: int

    @classmethod
    def build(cls, per_frame: int, block_events: int = BLOCK_EVENTS) -> DataFrames:
        events = trade_events(block_events)
        frames: list[bytearray] = []
        offsets: list[list[int]] = []
        placeholder = b'"t":%d' % PLACEHOLDER_T
        for start in range(0, block_events, per_frame):
            frame = bytearray(
                frame_bytes(b"[" + b",".join(events[start : start + per_frame]) + b"]")
            )
            found = []
            at = frame.find(placeholder)
            while at >= 0:
                found.append(at + 4)
                at = frame.find(placeholder, at + 1)
            if len(found) != per_frame:
                raise AssertionError("every event must carry exactly one t field")
            frames.append(frame)
            offsets.append(found)
        return cls(frames, offsets, per_frame)

    def block(self) -> bytes:
        return b"".join(self.frames)


class FrameReader:
    """Reads the client's (masked) frames from a blocking socket."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(initial)

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the client closed the connection")
            self.buf += chunk

    def read(self) -> tuple[int, bytes]:
        self._need(2)
        opcode, second = self.buf[0] & 0x0F, self.buf[1]
        length, pos = second & 0x7F, 2
        if length == 126:
            self._need(4)
            length, pos = int.from_bytes(self.buf[2:4], "big"), 4
        elif length == 127:
            self._need(10)
            length, pos = int.from_bytes(self.buf[2:10], "big"), 10
        mask = b""
        if second & 0x80:
            self._need(pos + 4)
            mask, pos = bytes(self.buf[pos : pos + 4]), pos + 4
        self._need(pos + length)
        payload = bytes(self.buf[pos : pos + length])
        del self.buf[: pos + length]
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return opcode, payload


def read_handshake(sock: socket.socket) -> tuple[dict[str, str], bytes]:
    """The client's HTTP upgrade request: its headers, and any bytes after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("the client closed the connection during the handshake")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, rest


def accept_response(key: str) -> bytes:
    accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()


class FeedConnection:
    """One client connection: the handshake, the login, the data, the close."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.close_sent = False
        self.reader: FrameReader | None = None

    def send(self, data: bytes | bytearray) -> None:
        with self.lock:
            self.sock.sendall(data)

    def handshake(self) -> None:
        headers, rest = read_handshake(self.sock)
        self.send(accept_response(headers["sec-websocket-key"]))
        self.reader = FrameReader(self.sock, rest)
        self.send(status_frame("connected", "Connected Successfully"))
        self._expect_action("auth")
        self.send(status_frame("auth_success", "authenticated"))
        params = self._expect_action("subscribe")
        acks = [
            {"ev": "status", "status": "success", "message": f"subscribed to: {topic}"}
            for topic in params.split(",")
        ]
        self.send(frame_bytes(orjson.dumps(acks)))

    def _expect_action(self, action: str) -> str:
        assert self.reader is not None
        while True:
            opcode, payload = self.reader.read()
            if opcode == _OP_PING:
                self.send(frame_bytes(payload, _OP_PONG))
            elif opcode == _OP_TEXT:
                message = orjson.loads(payload)
                if message.get("action") == action:
                    return str(message.get("params", ""))

    def serve_control_frames(self) -> None:
        """Answer pings and the close handshake while the data is written (a thread)."""
        assert self.reader is not None
        try:
            while True:
                opcode, payload = self.reader.read()
                if opcode == _OP_PING:
                    self.send(frame_bytes(payload, _OP_PONG))
                elif opcode == _OP_CLOSE:
                    with self.lock:
                        if not self.close_sent:
                            self.close_sent = True
                            self.sock.sendall(frame_bytes(payload[:2], _OP_CLOSE))
                    return
        except (EOFError, OSError):
            return
        finally:
            self.closed.set()

    def write_all(self, data: DataFrames, events: int) -> None:
        """Every frame, as fast as the socket takes them."""
        block = data.block()
        full, rest = divmod(events, BLOCK_EVENTS)
        for _ in range(full):
            self.send(block)
        if rest:
            self.send(b"".join(data.frames[: rest // data.per_frame]))

    def write_paced(self, data: DataFrames, events: int, rate: float, stamp: bool) -> None:
        """Frames on a schedule of ``rate`` events/s; late frames go out together."""
        frames, offsets = data.frames, data.stamp_offsets
        count = len(frames)
        total = events // data.per_frame
        interval = data.per_frame * 1e9 / rate
        start = time.monotonic_ns()
        sent = 0
        while sent < total:
            due = start + int(sent * interval)
            now = time.monotonic_ns()
            if now < due:
                time.sleep((due - now) / 1e9)
                now = time.monotonic_ns()
            upto = min(total, int((now - start) / interval) + 1)
            if stamp:
                digits = b"%d" % time.time_ns()
                for index in range(sent, upto):
                    frame = frames[index % count]
                    for offset in offsets[index % count]:
                        frame[offset : offset + STAMP_WIDTH] = digits
            if upto - sent == 1:
                self.send(frames[sent % count])
            else:
                self.send(b"".join(frames[i % count] for i in range(sent, upto)))
            sent = upto

    def finish(self) -> None:
        """Wait for the client's close (answered by the control thread), then hang up."""
        self.closed.wait(CLOSE_WAIT_SECONDS)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve_one(
    listener: socket.socket,
    events: int,
    per_frame: int,
    rate: float | None,
    stamp: bool,
) -> dict[str, Any]:
    """Serve one connection; a summary of what was written and what it cost."""
    data = DataFrames.build(per_frame)
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = FeedConnection(sock)
    conn.handshake()
    control = threading.Thread(target=conn.serve_control_frames, daemon=True)
    control.start()
    conn.send(status_frame(START_STATUS, f"{events} events in frames of {per_frame}"))
    wall, cpu = time.perf_counter(), cpu_seconds()
    try:
        if rate is None:
            conn.write_all(data, events)
        else:
            conn.write_paced(data, events, rate, stamp)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        conn.send(status_frame(END_STATUS, f"{events} events sent"))
    except OSError as exc:  # the client went away early: report it, do not hang
        return {"error": repr(exc)}
    conn.finish()
    return {
        "events": events,
        "per_frame": per_frame,
        "write_seconds": wall,
        "cpu_seconds": cpu,
        "events_per_second": events / wall if wall > 0 else None,
    }


def listen(port: int = 0) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    return listener


def round_events(events: int, per_frame: int) -> int:
    """Whole frames only: round up to a multiple of ``per_frame``."""
    return -(-events // per_frame) * per_frame


class FeedProcess:
    """A feed in a child process (for :mod:`benchmarks.run`)."""

    def __init__(
        self,
        events: int,
        per_frame: int,
        rate: float | None = None,
        stamp: bool = False,
        cwd: Path | None = None,
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "benchmarks.feed",
            "--events",
            str(events),
            "--per-frame",
            str(per_frame),
        ]
        if rate is not None:
            args += ["--rate", str(rate)]
        if stamp:
            args.append("--stamp")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=cwd)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"the feed did not start: {line!r}")
        self.port = int(line.split()[1])

    def result(self, timeout: float) -> dict[str, Any]:
        """The feed's summary once it exits (killed after ``timeout`` seconds)."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return {"error": "the feed did not finish in time"}
        for line in out.splitlines():
            if line.startswith("DONE "):
                summary: dict[str, Any] = json.loads(line[5:])
                return summary
        return {"error": f"the feed exited with {self.proc.returncode} and no summary"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--per-frame", type=int, default=100)
    parser.add_argument("--rate", type=float, default=None, help="events/s (default: flat out)")
    parser.add_argument("--stamp", action="store_true", help="put the write time in each t")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if BLOCK_EVENTS % args.per_frame:
        parser.error(f"--per-frame must divide {BLOCK_EVENTS}")
    events = round_events(args.events, args.per_frame)
    listener = listen(args.port)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    summary = serve_one(listener, events, args.per_frame, args.rate, args.stamp)
    listener.close()
    print("DONE " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
