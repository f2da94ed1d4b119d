"""Coming from the older library: the callback page's usages, run against the simulator.

The blocking client as the older page and test-suite use it: positional
construction with ``on_message``, ``start_stream_thread()`` then subscriptions,
``(symbols, force_uppercase_symbols)`` passed positionally, callbacks that get
the client where the older library passed its socket. Only ``host=`` is added.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import polygon
from polygon import StreamClient
from polygon.streaming import streaming
from polygon.streaming.simulator import SimulatorThread

pytestmark = pytest.mark.timeout(40)

KEY = "MIGRATION-KEY"


@pytest.fixture(scope="module")
def live() -> Iterator[SimulatorThread]:
    with SimulatorThread(rate=400, batch_size=5, max_connections_per_key=8) as simulator:
        yield simulator


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s")
        time.sleep(0.005)


class LastFrame:
    """The older suite's on_message: decodes the raw frame, keeps its last ``ev``."""

    def __init__(self) -> None:
        self.state: str | None = None
        self.unsubscribed = 0

    def __call__(self, ws: StreamClient, msg: str) -> None:
        events = json.loads(msg)
        self.state = events[-1]["ev"]
        self.unsubscribed += sum("unsubscribed" in str(e.get("message")) for e in events)


SUITE_STEPS = {
    "stocks": [("stock_trades", ["AMD", "NVDA"], "T"), ("stock_quotes", ["AMD", "NVDA"], "Q")],
    "options": [("option_trades", None, "T"), ("option_second_aggregates", None, "A")],
    "forex": [("forex_quotes", None, "C")],
    "crypto": [("crypto_trades", None, "XT"), ("crypto_level2_book", None, "XL2")],
    "indices": [("index_value", None, "V")],
}


@pytest.mark.parametrize("cluster", list(SUITE_STEPS))
def test_the_older_suite_flow_on_every_cluster(live: SimulatorThread, cluster: str) -> None:
    handler = LastFrame()
    streamer = polygon.StreamClient(KEY, cluster, live.url, on_message=handler)
    streamer.start_stream_thread()
    try:
        for name, symbols, code in SUITE_STEPS[cluster]:
            getattr(streamer, f"subscribe_{name}")(symbols)
            wait_until(lambda code=code: handler.state == code)
            acks = handler.unsubscribed
            getattr(streamer, f"unsubscribe_{name}")(symbols)
            wait_until(lambda acks=acks: handler.unsubscribed > acks)
            assert handler.state == "status"
    finally:
        streamer.close_stream()


def test_force_uppercase_symbols_is_the_second_positional_argument(live: SimulatorThread) -> None:
    with StreamClient(KEY, "stocks", live.url, on_message=lambda ws, msg: None) as client:
        client.subscribe_stock_quotes(["brk.b"], False)
        assert client.subscriptions == ["Q.brk.b"]
        with pytest.raises(TypeError):
            client.subscribe_stock_trades(["AAPL"], print)  # type: ignore[arg-type]
        got: list[dict[str, Any]] = []
        client.subscribe_stock_trades(["AAPL"], handler_function=got.append)
        client.start_stream_thread()
        wait_until(lambda: len(got) > 2)


def test_close_stream_takes_any_arguments_as_a_signal_handler(live: SimulatorThread) -> None:
    closed: list[int | None] = []
    client = StreamClient(
        KEY, "stocks", live.url, on_close=lambda ws, code, msg: closed.append(code)
    )
    client.start_stream_thread()
    previous = signal.signal(signal.SIGUSR1, client.close_stream)
    try:
        signal.raise_signal(signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert closed == [1000]
    assert client._dispatcher is not None and not client._dispatcher.is_alive()


def test_ws_close_in_a_callback_closes_the_stream(live: SimulatorThread) -> None:
    done = threading.Event()

    def on_message(ws: StreamClient, msg: str) -> None:
        if '"ev":"T"' in msg:
            ws.close()

    client = StreamClient(
        KEY, "stocks", live.url, on_message=on_message, on_close=lambda *args: done.set()
    )
    client.start_stream_thread()
    client.subscribe_stock_trades()
    assert done.wait(10)
    assert client._dispatcher is not None
    client._dispatcher.join(5)
    assert not client._dispatcher.is_alive()


@pytest.mark.parametrize("off", [0, None])
def test_start_stream_thread_with_no_pings(live: SimulatorThread, off: Any) -> None:
    handler = LastFrame()
    with StreamClient(KEY, "crypto", live.url, on_message=handler) as client:
        client.start_stream_thread(ping_interval=off, ping_timeout=off)
        client.subscribe_crypto_trades(["BTC-USD"])
        wait_until(lambda: handler.state == "XT")
        # The connections of this run were opened with the keepalive off.
        assert client._engine._session_options.ping_interval is None
        assert client._engine._session_options.ping_timeout is None


def test_unlimited_reconnection_attempts_with_false(live: SimulatorThread) -> None:
    client = StreamClient(KEY, "stocks", live.url, max_reconnection_attempts=False)
    assert client._retry.max_attempts is None
    client.close_stream()


def test_the_default_handlers_print(
    live: SimulatorThread, capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    with StreamClient(KEY, "stocks", live.url) as client:  # no on_message, no handler
        client.start_stream_thread()
        client.subscribe_stock_trades(["AMD"])

        def printed() -> bool:
            seen.append(capfd.readouterr().out)
            return "'sym': 'AMD'" in "".join(seen)

        wait_until(printed)
    assert "'status'" not in "".join(seen)  # status events are logged, not printed


def test_module_constants_and_ensure_prefix() -> None:
    assert streaming.HOST == "socket.polygon.io"
    assert streaming.DELAYED_HOST == "delayed.polygon.io"
    assert streaming.ensure_prefix("O:tsla120110C00123000") == "O:TSLA120110C00123000"
    assert streaming.ensure_prefix("bTc-Usd", _prefix="X:") == "X:BTC-USD"
    assert streaming.ensure_prefix("*", _prefix="X:") == "*"


def test_change_handler_may_be_awaited_in_either_client() -> None:
    client = StreamClient(KEY, "stocks", "ws://127.0.0.1:9")
    result = client.change_handler("T", print)
    assert hasattr(result, "__await__")
    client.close_stream()


def test_login_and_reconnect_as_on_the_async_client(live: SimulatorThread) -> None:
    client = StreamClient("FIRST-KEY", "stocks", live.url, on_message=lambda ws, msg: None)
    client.login(key="SECOND-KEY")
    assert client.is_connected

    def keys() -> list[str]:
        return [m["params"] for _, _, m in list(live.simulator.actions) if m["action"] == "auth"]

    live.wait_for(lambda: "SECOND-KEY" in keys(), timeout=5)
    assert "FIRST-KEY" not in keys()
    ok, message = client.reconnect()
    assert ok, message
    assert client.is_connected
    client.close_stream()
    ok, message = client.reconnect()
    assert not ok
    assert "closed" in message


def test_ctrl_c_with_no_stream_running_is_pythons_own(live: SimulatorThread) -> None:
    from polygon.streaming import _interrupt

    client = StreamClient(KEY, "stocks", live.url, on_message=lambda ws, msg: None)
    client.start_stream_thread()
    assert client in list(_interrupt._running)
    client.close_stream()
    assert client not in list(_interrupt._running)
    if not list(_interrupt._running):
        with pytest.raises(KeyboardInterrupt):
            _interrupt._on_interrupt(signal.SIGINT, None)
