"""Every example runs against the simulator and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from polygon.streaming.simulator import SimulatorThread

pytestmark = pytest.mark.timeout(60)

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    # Several connections per key: examples run one after another, and a
    # closing one must not evict (or be evicted by) the next.
    with SimulatorThread(rate=200, batch_size=5, max_connections_per_key=4) as simulator:
        yield simulator


def run(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=40,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_every_example_is_covered() -> None:
    covered = {
        "async_handlers.py",
        "async_iteration.py",
        "async_reconnect.py",
        "blocking_callbacks.py",
        "iter_messages.py",
        "change_handler.py",
        "older_callback_script.py",
        "record_to_file.py",
        "typed_handlers.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == covered


def test_async_handlers(sim: SimulatorThread) -> None:
    out = run("async_handlers.py", sim.url, "1.5").stdout
    assert "trade  AAPL" in out or "trade  MSFT" in out
    assert "quote  AAPL" in out


def test_async_reconnect(sim: SimulatorThread) -> None:
    out = run("async_reconnect.py", sim.url, "1.5").stdout
    assert "[status] auth_success" in out
    assert "BTC-USD" in out
    assert "StreamStats(" in out


def test_blocking_callbacks(sim: SimulatorThread) -> None:
    out = run("blocking_callbacks.py", sim.url, "1.5").stdout
    assert "raw frame: [" in out
    assert "trade AAPL" in out or "trade NVDA" in out
    assert "closed (1000)" in out


def test_iter_messages(sim: SimulatorThread) -> None:
    out = run("iter_messages.py", sim.url, "20").stdout.splitlines()
    assert out[19].startswith("20 ")
    assert "O:SPY241220P00720000" in "\n".join(out)


def test_change_handler(sim: SimulatorThread) -> None:
    out = run("change_handler.py", sim.url, "2").stdout
    assert "." in out.split("TRADE")[0]
    assert "TRADE AAPL" in out


def test_record_to_file(sim: SimulatorThread, tmp_path: Path) -> None:
    import gzip

    import orjson

    path = tmp_path / "trades.jsonl.gz"
    out = run("record_to_file.py", sim.url, "1.5", str(path)).stdout
    with gzip.open(path, "rb") as recorded:
        events = [orjson.loads(line) for line in recorded]
    trades = [e for e in events if e["ev"] == "T"]
    assert len(trades) > 10
    assert f"recorded {len(events)} events" in out


def test_typed_handlers(sim: SimulatorThread) -> None:
    out = run("typed_handlers.py", sim.url, "1.5").stdout
    assert "BTC-USD" in out


def test_async_iteration(sim: SimulatorThread) -> None:
    out = run("async_iteration.py", sim.url, "15").stdout.splitlines()
    assert out[14].startswith("15 ")
    assert "BTC-USD" in "\n".join(out)
    assert out[15].startswith("StreamStats(")


def test_older_callback_script(sim: SimulatorThread) -> None:
    # main() returns at once: the stream keeps the process alive until a callback closes it.
    out = run("older_callback_script.py", sim.url, "5").stdout
    assert out.count("msg received: ") >= 5
    assert "Stream close with code: 1000" in out
