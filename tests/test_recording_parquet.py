"""Parquet recordings: typed columns, row groups as they go, kill -9.

Recording from the simulator and replaying into a client: tests/test_cli.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from polygon.enums import StreamCluster
from polygon.streaming import _recording_columns_gen
from polygon.streaming._channels import event_codes
from polygon.streaming._recording_columns import COLUMNS
from polygon.streaming.recording import (
    ParquetRecorder,
    Recorder,
    RecordingError,
    dataset_path,
    open_recorder,
    read_recording,
)
from polygon.streaming.simulator import EventFactory, SimulatorThread, default_symbols

pytestmark = pytest.mark.timeout(60)

Event = dict[str, Any]
COMMAND = [sys.executable, "-m", "polygon"]
SPEC = Path(__file__).parent / "data" / "websocket-api.json"
UTC_MS = pa.timestamp("ms", tz="UTC")


def trades(count: int, start_ms: int = 1_700_000_000_000) -> list[Event]:
    return [
        {"ev": "T", "sym": "AAPL", "p": 100.0 + q / 100, "s": 100, "c": [12, 37], "q": q,
         "t": start_ms + q}
        for q in range(count)
    ]  # fmt: skip


def test_the_shipped_columns_are_made_from_the_specification() -> None:
    spec = json.loads(SPEC.read_text(encoding="utf-8"))
    assert (Path(_recording_columns_gen.__file__).with_name("_recording_columns.py")).read_text(
        encoding="utf-8"
    ) == _recording_columns_gen.render(spec)


def test_columns_are_typed_from_the_specification(tmp_path: Path) -> None:
    with ParquetRecorder(tmp_path / "day.parquet", ["T"]) as recorder:
        recorder.write_batch(trades(3))
    schema = pq.read_table(tmp_path / "day.parquet").schema
    assert schema.field("p").type == pa.float64()  # price
    assert schema.field("s").type == pa.int64()  # size
    assert schema.field("t").type == UTC_MS
    assert schema.field("trft").type == UTC_MS
    assert schema.field("c").type == pa.list_(pa.int64())  # conditions
    assert schema.field("sym").type == pa.string()
    assert schema.field("_extra").type == pa.string()
    assert schema.names == [name for name, _ in COLUMNS["T"]] + ["_extra"]
    assert dict(COLUMNS["XT"])["s"] == "float"  # crypto sizes are fractional in the spec
    assert dict(COLUMNS["FMV"])["t"] == "time_ns"
    assert dict(COLUMNS["XL2"])["b"] == "levels"
    assert dict(COLUMNS["AM"])["s"] == "time_ms"


@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_every_event_type_of_a_cluster_comes_back_as_it_was(
    tmp_path: Path, cluster: StreamCluster
) -> None:
    factory = EventFactory(cluster, seed=7)
    events = [
        factory.make(code, symbol)
        for _ in range(3)
        for code in event_codes(cluster)
        for symbol in default_symbols(cluster)[:2]
    ]
    path = tmp_path / "all.parquet"
    with ParquetRecorder(path) as recorder:
        recorder.write_batch(events)
    codes = set(event_codes(cluster))
    assert {p.name for p in tmp_path.iterdir()} == {f"all.{code}.parquet" for code in codes}
    for code in codes:
        table = pq.read_table(dataset_path(path, code))
        assert table.column("ev").to_pylist() == [code] * 6
        assert table.column("_extra").null_count == 6, f"{code}: a field fell out of its column"
    back = list(read_recording(path))
    # The types are merged by time, so compare them as sorted lists of events.
    assert sorted(back, key=_canonical) == sorted(events, key=_canonical)


def _canonical(event: Event) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def test_unknown_fields_and_misfit_values_are_kept_in_extra(tmp_path: Path) -> None:
    odd = [
        {"ev": "T", "sym": "AAPL", "p": "n/a", "s": 100, "t": 1_700_000_000_000, "new": [1]},
        {"ev": "T", "sym": "AAPL", "p": 1.5, "s": 2.5, "t": 1_700_000_000_000_000_000},
        {"ev": "ZZ", "what": {"nested": True}},
        {"ev": "T", "sym": "AAPL", "p": 2, "s": True, "c": [1, "x"]},
    ]
    path = tmp_path / "odd.parquet"
    with ParquetRecorder(path) as recorder:
        recorder.write_batch(odd)
    assert list(read_recording(path.with_name("odd.ZZ.parquet"))) == [odd[2]]
    back = list(read_recording(path.with_name("odd.T.parquet")))
    assert back == [odd[0], odd[1], odd[3]]
    assert [type(e["s"]) for e in back] == [int, float, bool]
    table = pq.read_table(path.with_name("odd.T.parquet"))
    assert table.column("p").to_pylist() == [None, 1.5, 2.0]
    assert orjson.loads(table.column("_extra")[0].as_py()) == {"p": "n/a", "new": [1]}


def test_row_groups_are_written_as_events_arrive(tmp_path: Path) -> None:
    path = tmp_path / "day.parquet"
    recorder = ParquetRecorder(path, ["T"], row_group_size=10)
    recorder.write_batch(trades(35))
    parts = sorted(path.iterdir())
    assert [p.name for p in parts] == [f"part-0000{n}.parquet" for n in range(3)]
    assert all(pq.ParquetFile(p).metadata.num_row_groups == 1 for p in parts)
    assert len(list(read_recording(path))) == 30  # five wait for their row group
    recorder.close()
    assert len(list(read_recording(path))) == 35
    with pytest.raises(RecordingError, match="closed"):
        recorder.write_batch(trades(1))
    # A second recording into the same dataset adds parts after the first's.
    with ParquetRecorder(path, ["T"]) as again:
        again.write_batch(trades(2, start_ms=1_800_000_000_000))
    assert (path / "part-00004.parquet").is_file()
    assert len(list(read_recording(path))) == 37


def test_waiting_events_are_written_after_the_flush_interval(tmp_path: Path) -> None:
    path = tmp_path / "day.parquet"
    recorder = ParquetRecorder(path, ["T"], flush_interval=0.05)
    recorder.write_batch(trades(3))
    assert not path.exists()
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.06)  # the interval, which must pass before the next batch flushes
        recorder.write_batch([])
    assert len(list(read_recording(path))) == 3
    recorder.close()


def test_bad_arguments_and_paths_are_recording_errors(tmp_path: Path) -> None:
    plain = tmp_path / "file.parquet"
    plain.write_text("not a dataset")
    with pytest.raises(RecordingError, match=r"file\.parquet is a file"):
        ParquetRecorder(plain)
    with pytest.raises(RecordingError, match="row_group_size must be at least 1, not 0"):
        ParquetRecorder(tmp_path / "x.parquet", row_group_size=0)
    with pytest.raises(RecordingError, match="no such Parquet recording"):
        list(read_recording(tmp_path / "missing.parquet"))
    broken = tmp_path / "broken.parquet"
    broken.mkdir()
    (broken / "part-00000.parquet").write_bytes(b"PAR1 cut short")
    with pytest.raises(RecordingError, match=r"part-00000\.parquet: not a readable Parquet"):
        list(read_recording(broken))
    assert isinstance(open_recorder(tmp_path / "x.jsonl"), Recorder)


def test_without_pyarrow_the_error_says_which_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from polygon.streaming.recording import ParquetRecorder\n"
        f"ParquetRecorder({str(tmp_path / 'x.parquet')!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "RecordingError" in result.stderr
    assert "pip install 'polygon-streaming[parquet]'" in result.stderr
    cli = subprocess.run(
        [sys.executable, "-c", code.splitlines()[0] + "\nfrom polygon.cli import main\n"
         f"raise SystemExit(main(['demo', '--output', {str(tmp_path / 'y.parquet')!r}]))"],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert cli.returncode == 2
    assert "polygon-stream: Parquet recordings need pyarrow" in cli.stderr


def test_a_killed_recording_leaves_every_finished_row_group_readable(tmp_path: Path) -> None:
    path = tmp_path / "day.parquet"
    with SimulatorThread(rate=400, batch_size=5) as sim:
        tail = subprocess.Popen(
            [
                *COMMAND,
                *("tail", "stocks", "trades", "--host", sim.url, "--api-key", "k"),
                *("--output", str(path), "--flush-interval", "0.05"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while len(list(path.glob("part-*.parquet"))) < 4:
                assert time.monotonic() < deadline, "no row groups were written"
                assert tail.poll() is None, tail.communicate()[1]
                time.sleep(0.05)  # polling the directory, bounded by the deadline
            tail.send_signal(signal.SIGKILL)
            tail.wait(timeout=10)
        finally:
            tail.kill()
    assert tail.returncode == -signal.SIGKILL
    parts = sorted(path.glob("part-*.parquet"))
    assert len(parts) >= 4
    # Every finished part opens on its own, and the dataset reads whole with
    # pyarrow (which skips a hidden part that was being written at the kill).
    rows = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
    assert ds.dataset(path, format="parquet").to_table().num_rows == rows
    events = list(read_recording(path))
    assert len(events) == rows
    assert all(e["ev"] == "T" for e in events)
