"""The polygon-stream command: argument handling and real runs as subprocesses."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import polygon
from polygon.cli import (
    EXIT_OUTPUT_CLOSED,
    UsageError,
    build_parser,
    format_line,
    main,
    resolve_stream,
)
from polygon.enums import StreamCluster
from polygon.streaming.recording import read_recording
from polygon.streaming.simulator import SimulatorThread

pytestmark = pytest.mark.timeout(30)

COMMAND = [sys.executable, "-m", "polygon.cli"]


@pytest.mark.parametrize(
    ("cluster", "given", "expected"),
    [
        ("stocks", "trades", "stock_trades"),
        ("stocks", "T", "stock_trades"),
        ("stocks", "luld", "stock_limit_up_limit_down"),
        ("options", "trades", "option_trades"),
        ("options", "AM", "option_minute_aggregates"),
        ("crypto", "level2_book", "crypto_level2_book"),
        ("crypto", "XL2", "crypto_level2_book"),
        ("forex", "quotes", "forex_quotes"),
        ("indices", "value", "index_value"),
        ("indices", "minute_aggregates", "indices_minute_aggregates"),
        ("stocks", "fair_market_value", "fair_market_value"),
    ],
)
def test_streams_resolve_by_suffix_or_event_code(cluster: str, given: str, expected: str) -> None:
    assert resolve_stream(StreamCluster(cluster), given).name == expected


@pytest.mark.parametrize(("cluster", "given"), [("stocks", "level2_book"), ("indices", "trades")])
def test_a_stream_the_cluster_lacks_is_a_usage_error(cluster: str, given: str) -> None:
    with pytest.raises(UsageError, match=given):
        resolve_stream(StreamCluster(cluster), given)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tail", "bonds", "trades"], "unknown cluster 'bonds'"),
        (["tail", "stocks", "level2_book"], "no stream 'level2_book' on the stocks cluster"),
        (["tail", "stocks", "trades"], "no API key"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_format_line_shows_symbol_price_and_size() -> None:
    event = {"ev": "T", "sym": "AAPL", "p": 187.5, "s": 100}
    line = format_line(StreamCluster.STOCKS, event)
    assert line.split() == ["T", "AAPL", "187.5", "100"]
    book = {"ev": "XL2", "pair": "BTC-USD", "b": [[64000.5, 0.1]], "a": [[64001.0, 0.2]]}
    assert format_line(StreamCluster.CRYPTO, book).split()[:3] == ["XL2", "BTC-USD", "64000.5"]


def test_tail_prints_jsonl_from_a_server_and_stops_at_the_count() -> None:
    with SimulatorThread(rate=200, batch_size=5) as sim:
        result = subprocess.run(
            [
                *COMMAND,
                *("tail", "stocks", "trades", "aapl", "msft", "--host", sim.url),
                *("--api-key", "SECRET-CLI-KEY", "--format", "jsonl", "--count", "25"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 0, result.stderr
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 25
    assert {e["sym"] for e in events} <= {"AAPL", "MSFT"}
    assert all(e["ev"] == "T" for e in events)
    assert "25 events" in result.stderr
    assert "SECRET-CLI-KEY" not in result.stdout + result.stderr


def test_demo_streams_simulated_trades_for_its_duration() -> None:
    result = subprocess.run(
        [*COMMAND, "demo", "--duration", "1.5", "--rate", "100"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 10
    assert all(line.startswith("T ") for line in lines)
    assert "events in" in result.stderr


@pytest.mark.parametrize("name", ["trades.jsonl.gz", "trades.parquet"])
def test_record_then_replay_gives_back_the_same_events(tmp_path: Path, name: str) -> None:
    recording = tmp_path / name
    with SimulatorThread(rate=300, batch_size=5) as sim:
        recorded = subprocess.run(
            [
                *COMMAND,
                *("tail", "stocks", "trades", "AAPL", "MSFT", "--host", sim.url),
                *("--api-key", "k", "--count", "30", "--format", "jsonl"),
                *("--output", str(recording)),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert recorded.returncode == 0, recorded.stderr
    events = list(read_recording(recording))
    assert len(events) >= 30
    assert events[:30] == [orjson.loads(line) for line in recorded.stdout.splitlines()]
    assert f"recorded {len(events)} to {recording}" in recorded.stderr
    if recording.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(recording)  # typed columns, as recorded
        assert table.schema.field("t").type == pa.timestamp("ms", tz="UTC")
        assert table.column("p").to_pylist() == [e["p"] for e in events]

    replayer = subprocess.Popen(
        [*COMMAND, "replay", str(recording), "--port", "0", "--speed", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert replayer.stdout is not None
        first = replayer.stdout.readline()
        assert f"replaying {len(events)} stocks events on ws://" in first
        url = first.rsplit(" ", 1)[-1].strip()
        played = subprocess.run(
            [
                *COMMAND,
                *("tail", "stocks", "trades", "--host", url, "--api-key", "k"),
                *("--format", "jsonl", "--count", str(len(events))),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert played.returncode == 0, played.stderr
        assert [orjson.loads(line) for line in played.stdout.splitlines()] == events
        assert replayer.wait(timeout=10) == 0
    finally:
        replayer.kill()


def test_the_table_format_shows_a_live_view() -> None:
    with SimulatorThread(rate=200, batch_size=5) as sim:
        result = subprocess.run(
            [
                *COMMAND,
                # One pair named: with all of them, which pairs the first 20
                # trades come from is up to the market (the test failed by chance).
                *("tail", "crypto", "trades", "BTC-USD", "--host", sim.url, "--api-key", "k"),
                *("--format", "table", "--count", "20"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 0, result.stderr
    assert "crypto: last event per symbol" in result.stdout
    assert "BTC-USD" in result.stdout
    assert "reconnects 0" in result.stdout


def test_simulate_takes_the_simulator_options() -> None:
    server = subprocess.Popen(
        [*COMMAND, "simulate", "--port", "0", "--seed", "3", "--key", "only-this"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "simulator listening on ws://127.0.0.1:" in line
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_bad_recording_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["replay", str(bad), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1: not JSON" in err
    assert "Traceback" not in err


def test_ctrl_c_exits_cleanly_with_a_summary() -> None:
    with SimulatorThread(rate=100, batch_size=5) as sim:
        tail = subprocess.Popen(
            [*COMMAND, "tail", "stocks", "trades", "--host", sim.url, "--api-key", "k"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert tail.stdout is not None
            assert tail.stdout.readline().startswith("T ")  # streaming has begun
            tail.send_signal(signal.SIGINT)
            _, err = tail.communicate(timeout=10)
        finally:
            tail.kill()
    assert tail.returncode == 0
    assert "events in" in err
    assert "Traceback" not in err


def test_a_closed_pipe_stops_tail_at_once_quietly_and_closes_the_connection() -> None:
    with SimulatorThread(rate=200, batch_size=5) as sim:
        tail = subprocess.Popen(
            [*COMMAND, "tail", "stocks", "trades", "AAPL", "--host", sim.url, "--api-key", "k"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert tail.stdout is not None
            for _ in range(3):  # what `| head -3` reads before it exits
                assert tail.stdout.readline().startswith(b"T ")
            session = sim.call(lambda: sim.simulator.sessions[0])
            tail.stdout.close()
            closed_at = time.monotonic()
            _, err = tail.communicate(timeout=10)
            took = time.monotonic() - closed_at
            # The client ended the WebSocket with a normal closure, not a dropped socket.
            sim.wait_for(lambda: session.connection.close_code is not None, what="the close")
            close_code = sim.call(lambda: session.connection.close_code)
        finally:
            tail.kill()
    assert tail.returncode == EXIT_OUTPUT_CLOSED == 141
    assert err == b"", err.decode()
    assert close_code == 1000
    assert took < 5, f"{took:.1f} s to notice the closed pipe"


def test_demo_into_head_exits_like_cat_in_a_shell_pipeline() -> None:
    command = shlex.join([*COMMAND, "demo", "--duration", "60", "--rate", "50"])
    result = subprocess.run(
        ["bash", "-c", f"{command} | head -2; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 141
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert result.stderr.startswith("demo: simulated stocks trades")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("module", ["polygon", "polygon.cli"])
def test_version_and_python_dash_m(module: str) -> None:
    version = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=20
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"polygon-stream {polygon.__version__}"
    usage = subprocess.run(
        [sys.executable, "-m", module, "tail", "--help"], capture_output=True, text=True, timeout=20
    )
    assert usage.returncode == 0
    assert usage.stdout.startswith("usage: polygon-stream tail ")


# An option or positional line of --help with its text on the same line (after
# two spaces), or on the next, more indented line.
_HELP_ENTRY = re.compile(r"^  (\S.*?)(?:  +(\S.*))?$")


def _entries_without_help(text: str) -> list[str]:
    lines = text.splitlines()
    missing = []
    in_section = False
    for number, line in enumerate(lines):
        if line.endswith(":") and not line.startswith(" "):
            in_section = line in ("options:", "optional arguments:", "positional arguments:")
            continue
        entry = _HELP_ENTRY.match(line)
        if not in_section or entry is None or line.startswith("   "):
            continue
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if entry.group(2) is None and not following.startswith(" " * 6):
            missing.append(entry.group(1))
    return missing


@pytest.mark.parametrize("command", [[], ["tail"], ["demo"], ["replay"], ["simulate"], ["publish"]])
def test_every_option_has_help_text(command: list[str]) -> None:
    parser = build_parser()
    text = subprocess.run(
        [*COMMAND, *command, "--help"], capture_output=True, text=True, timeout=20
    ).stdout
    assert "options:" in text or "optional arguments:" in text
    assert _entries_without_help(text) == []
    assert parser.prog == "polygon-stream"
