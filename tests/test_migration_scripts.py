"""Older scripts as separate processes, where the process's lifetime is the point.

A callback-style script lets its main function return and the stream keeps
the process alive; Ctrl-C (SIGINT) ends it cleanly; a script that only
iterates exits as soon as it is done. Each script is written as a user of the
older library would, with only the simulator's URL added as ``host``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polygon.streaming.simulator import SimulatorThread

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(rate=200, batch_size=4, max_connections_per_key=8) as simulator:
        yield simulator


CALLBACK_SCRIPT = """
import sys
import polygon
from polygon.enums import StreamCluster

def my_own_message_handler(ws, msg):
    print(f"msg received: {msg}", flush=True)

def on_close(ws, close_code, close_msg):
    print(f"Stream close with code: {close_code} || msg: {close_msg}", flush=True)

def main():
    api_key = "YOUR_KEY"
    stream_client = polygon.StreamClient(
        api_key, StreamCluster.STOCKS, sys.argv[1],
        on_message=my_own_message_handler, on_close=on_close,
    )
    stream_client.start_stream_thread()
    stream_client.subscribe_stock_trades(["AMD", "NVDA"])
    stream_client.subscribe_stock_second_aggregates()  # ALL tickers

if __name__ == "__main__":
    main()
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(text))
    return path


def start(script: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_script(tmp_path: Path, script: str, url: str) -> subprocess.CompletedProcess[str]:
    """Run a script to its end; it must exit 0 with no traceback."""
    result = subprocess.run(
        [sys.executable, str(write(tmp_path, script)), url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 20) -> list[str]:
    """Lines of standard output up to the first that holds ``needle``."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    pytest.fail(f"{needle!r} not printed; got {lines[-5:]!r}")


def test_a_callback_script_keeps_streaming_after_main_returns_until_ctrl_c(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    proc = start(write(tmp_path, CALLBACK_SCRIPT), sim.url)
    try:
        # Data keeps coming although main() has returned long before.
        read_until(proc, '"ev":"T"')
        read_until(proc, '"ev":"A"')
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Ctrl-C" in err
    assert "Stream close with code: 1000" in out


def test_ctrl_c_while_the_script_still_runs_closes_the_stream(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    script = """
        import sys, time
        import polygon

        def on_close(ws, code, msg):
            print(f"closed {code}", flush=True)

        client = polygon.StreamClient("KEY", "stocks", sys.argv[1], on_close=on_close,
                                      on_message=lambda ws, msg: None)
        client.start_stream_thread()
        client.subscribe_stock_trades()
        try:
            print("ready", flush=True)
            while True:
                time.sleep(0.05)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """
    proc = start(write(tmp_path, script), sim.url)
    try:
        read_until(proc, "ready")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted" in out
    assert "closed 1000" in out
    assert "Traceback" not in err


def test_close_stream_from_a_callback_ends_the_script(sim: SimulatorThread, tmp_path: Path) -> None:
    script = """
        import json, sys
        import polygon

        count = 0

        def on_message(ws, msg):
            global count
            count += sum(e["ev"] == "XT" for e in json.loads(msg))
            if count >= 20:
                ws.close()

        def on_close(ws, code, msg):
            print(f"done after {count} trades, code {code}", flush=True)

        client = polygon.StreamClient("KEY", "crypto", sys.argv[1], on_message=on_message,
                                      on_close=on_close)
        client.start_stream_thread()
        client.subscribe_crypto_trades(["BTC-USD", "X:ETH-USD"])
    """
    result = run_script(tmp_path, script, sim.url)
    assert "code 1000" in result.stdout
    assert "Traceback" not in result.stderr


def test_an_iterating_script_exits_as_soon_as_it_returns(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    script = """
        import sys
        import polygon

        client = polygon.StreamClient("KEY", "stocks", sys.argv[1])
        client.subscribe_stock_trades(["AMD"])
        for n, event in enumerate(client.iter_messages(include_status=False)):
            if n == 9:
                break
        print("got ten", flush=True)
    """
    started = time.monotonic()
    result = run_script(tmp_path, script, sim.url)
    assert result.stdout.strip() == "got ten"
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 25


def test_the_readme_async_example_prints_with_the_default_handler(
    sim: SimulatorThread, tmp_path: Path
) -> None:
    script = """
        import asyncio, sys
        import polygon
        from polygon.enums import StreamCluster

        async def main():
            stream_client = polygon.AsyncStreamClient("YOUR_KEY", StreamCluster.STOCKS, sys.argv[1])
            await stream_client.subscribe_stock_trades(["AMD", "NVDA"])
            for _ in range(20):
                await stream_client.handle_messages()
            await stream_client.close_stream()

        if __name__ == "__main__":
            asyncio.run(main())
    """
    result = run_script(tmp_path, script, sim.url)
    assert "'ev': 'T'" in result.stdout
    assert "'status'" not in result.stdout
    assert result.stderr == ""
