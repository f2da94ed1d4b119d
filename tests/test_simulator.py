"""The market simulator, driven by a raw WebSocket client over real sockets."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from polygon.enums import StreamCluster
from polygon.streaming.simulator import MarketSimulator, SimulatorThread, default_symbols

pytestmark = pytest.mark.anyio

Frame = list[dict[str, Any]]


@pytest.fixture
async def sim() -> AsyncIterator[MarketSimulator]:
    async with MarketSimulator(rate=0, auth_timeout=5.0) as simulator:
        yield simulator


async def recv_frame(ws: ClientConnection, timeout: float = 5.0) -> Frame:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    frame = orjson.loads(raw)
    assert isinstance(frame, list), raw
    return frame


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(message).decode())


def statuses(frame: Frame) -> list[tuple[str, str]]:
    assert all(event["ev"] == "status" for event in frame), frame
    return [(event["status"], event["message"]) for event in frame]


async def open_session(
    sim: MarketSimulator, key: str | None = "KEY", cluster: str = "stocks", **kwargs: Any
) -> ClientConnection:
    """Connect, check the greeting, and authenticate unless ``key`` is None."""
    ws = await connect(f"{sim.url}/{cluster}", **kwargs)
    assert statuses(await recv_frame(ws)) == [("connected", "Connected Successfully")]
    if key is not None:
        await send(ws, {"action": "auth", "params": key})
        assert statuses(await recv_frame(ws)) == [("auth_success", "authenticated")]
    return ws


async def subscribe(ws: ClientConnection, params: str) -> Frame:
    await send(ws, {"action": "subscribe", "params": params})
    return await recv_frame(ws)


async def closed_by_server(ws: ClientConnection, timeout: float = 5.0) -> ConnectionClosed:
    """Read until the connection ends; return how it ended."""

    async def drain() -> ConnectionClosed:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            return exc

    return await asyncio.wait_for(drain(), timeout)


# -- session protocol ----------------------------------------------------------


@pytest.mark.timeout(10)
async def test_connect_and_authenticate_with_any_key(sim: MarketSimulator) -> None:
    async with await open_session(sim, "anything") as ws:
        await sim.wait_for(lambda: any(s.authenticated for s in sim.sessions), what="auth")
        [session] = sim.sessions
        assert session.cluster is StreamCluster.STOCKS
        assert session.api_key == "anything"
        assert session.subscriptions == set()
        assert sim.connections_accepted == 1
        assert sim.actions == [
            (session.id, StreamCluster.STOCKS, {"action": "auth", "params": "anything"})
        ]
        assert ws.state.name == "OPEN"


@pytest.mark.timeout(10)
async def test_auth_failure_is_reported_then_closed_with_1008() -> None:
    async with MarketSimulator(rate=0, valid_keys={"good"}) as sim:
        async with await open_session(sim, key=None) as ws:
            await send(ws, {"action": "auth", "params": "bad"})
            assert statuses(await recv_frame(ws)) == [("auth_failed", "authentication failed")]
            closed = await closed_by_server(ws)
            assert closed.rcvd is not None and closed.rcvd.code == 1008
        async with await open_session(sim, "good"):
            pass


@pytest.mark.timeout(10)
async def test_the_key_stays_out_of_the_logs(
    sim: MarketSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with await open_session(sim, "SECRET-KEY-123456"):
        pass
    # The raw test client logs its own frames; only the server's records count.
    server_lines = [
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith("websockets.client")
    ]
    assert any('"action":"auth"' in line for line in server_lines)  # logged, redacted
    assert not [line for line in server_lines if "SECRET-KEY" in line]


@pytest.mark.timeout(10)
async def test_empty_key_is_refused_even_when_any_key_is_accepted(sim: MarketSimulator) -> None:
    async with await open_session(sim, key=None) as ws:
        await send(ws, {"action": "auth", "params": ""})
        assert statuses(await recv_frame(ws))[0][0] == "auth_failed"
        assert (await closed_by_server(ws)).rcvd is not None


@pytest.mark.timeout(10)
async def test_auth_timeout() -> None:
    async with (
        MarketSimulator(rate=0, auth_timeout=0.2) as sim,
        await open_session(sim, key=None) as ws,
    ):
        frame = await recv_frame(ws, timeout=3)
        assert statuses(frame) == [("auth_timeout", "authentication timed out")]
        closed = await closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1008


@pytest.mark.timeout(10)
async def test_unknown_path_is_404(sim: MarketSimulator) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{sim.url}/futures")
    assert info.value.response.status_code == 404
    assert sim.connections_accepted == 0


@pytest.mark.timeout(10)
async def test_every_cluster_path_is_served(sim: MarketSimulator) -> None:
    for cluster in StreamCluster:
        async with await open_session(sim, cluster=cluster.value):
            pass
    assert sim.connections_accepted == len(StreamCluster)


@pytest.mark.timeout(10)
async def test_subscribe_acks_every_topic_in_one_frame(sim: MarketSimulator) -> None:
    async with await open_session(sim) as ws:
        frame = await subscribe(ws, "T.AAPL,Q.MSFT,T.BRK.B,AM.*")
        assert statuses(frame) == [
            ("success", "subscribed to: T.AAPL"),
            ("success", "subscribed to: Q.MSFT"),
            ("success", "subscribed to: T.BRK.B"),
            ("success", "subscribed to: AM.*"),
        ]
        expected = {"T.AAPL", "Q.MSFT", "T.BRK.B", "AM.*"}
        await sim.wait_for(lambda: sim.subscriptions("stocks") == expected, what="topics")
        assert sim.sessions[0].subscriptions == expected
        assert sim.subscriptions(StreamCluster.CRYPTO) == set()


@pytest.mark.timeout(10)
async def test_invalid_topics_get_errors_naming_them(sim: MarketSimulator) -> None:
    async with await open_session(sim) as ws:
        frame = await subscribe(ws, "T.AAPL,XT.BTC-USD,T.,Q.MS FT,NODOT")
        assert [s for s, _ in statuses(frame)] == ["success", "error", "error", "error", "error"]
        for (_, message), topic in zip(
            statuses(frame)[1:], ["XT.BTC-USD", "T.", "Q.MS FT", "NODOT"], strict=True
        ):
            assert topic in message
        assert sim.subscriptions("stocks") == {"T.AAPL"}


@pytest.mark.timeout(10)
async def test_unsubscribe(sim: MarketSimulator) -> None:
    async with await open_session(sim) as ws:
        await subscribe(ws, "T.AAPL,Q.AAPL")
        await send(ws, {"action": "unsubscribe", "params": "T.AAPL,T.NOPE"})
        assert statuses(await recv_frame(ws)) == [
            ("success", "unsubscribed to: T.AAPL"),
            ("success", "unsubscribed to: T.NOPE"),
        ]
        assert sim.subscriptions("stocks") == {"Q.AAPL"}


@pytest.mark.timeout(10)
async def test_bad_requests_get_errors_and_the_connection_stays(sim: MarketSimulator) -> None:
    async with await open_session(sim, key=None) as ws:
        await send(ws, {"action": "subscribe", "params": "T.AAPL"})
        [(status, message)] = statuses(await recv_frame(ws))
        assert status == "error" and "auth" in message
        await ws.send("not json")
        [(status, message)] = statuses(await recv_frame(ws))
        assert status == "error" and "JSON" in message
        await ws.send("[1, 2]")
        [(status, message)] = statuses(await recv_frame(ws))
        assert status == "error" and "object" in message
        await send(ws, {"action": "dance", "params": "T.AAPL"})
        [(status, message)] = statuses(await recv_frame(ws))
        assert status == "error" and "dance" in message
        await send(ws, {"action": "auth", "params": "KEY"})
        assert statuses(await recv_frame(ws))[0][0] == "auth_success"
        await send(ws, {"action": "auth", "params": "KEY"})
        assert statuses(await recv_frame(ws))[0][0] == "error"
        await send(ws, {"action": "subscribe", "params": 42})
        assert statuses(await recv_frame(ws))[0][0] == "error"
        assert statuses(await subscribe(ws, "T.AAPL"))[0][0] == "success"
        actions = [message.get("action") for _, _, message in sim.actions]
        assert actions == ["subscribe", "dance", "auth", "auth", "subscribe", "subscribe"]


# -- delivery --------------------------------------------------------------------


@pytest.mark.timeout(10)
async def test_publish_delivers_only_subscribed_events(sim: MarketSimulator) -> None:
    factory = sim.factory("stocks")
    trade_aapl, trade_msft = factory.make("T", "AAPL"), factory.make("T", "MSFT")
    quote_aapl, luld_aapl = factory.make("Q", "AAPL"), factory.make("LULD", "AAPL")
    async with (
        await open_session(sim, "k1") as exact,
        await open_session(sim, "k2") as wildcard,
        await open_session(sim, "k3") as other,
        await open_session(sim, "k4", cluster="crypto") as crypto,
        await open_session(sim, key=None) as anonymous,
    ):
        await subscribe(exact, "T.AAPL,LULD.AAPL")
        await subscribe(wildcard, "T.*")
        await subscribe(other, "Q.TSLA")
        await subscribe(crypto, "XT.*")
        sent = await sim.publish("stocks", [trade_aapl, trade_msft, quote_aapl, luld_aapl])
        assert sent == 2
        assert await recv_frame(exact) == [trade_aapl, luld_aapl]
        assert await recv_frame(wildcard) == [trade_aapl, trade_msft]
        # Status events reach every authenticated session on the cluster, so
        # the next frame each one reads proves what it did not get before.
        status = {"ev": "status", "status": "info", "message": "hello"}
        assert await sim.publish(StreamCluster.STOCKS, [status]) == 3
        for ws in (exact, wildcard, other):
            assert await recv_frame(ws) == [status]
        assert await sim.publish("crypto", [status]) == 1
        assert await recv_frame(crypto) == [status]
        await anonymous.send("[]")  # any reply now must be this one's error
        assert statuses(await recv_frame(anonymous))[0][0] == "error"


@pytest.mark.timeout(10)
async def test_generation_sends_batches_of_subscribed_topics_with_rising_q() -> None:
    # rate is per symbol: Q.* alone is eleven symbols' quotes.
    async with (
        MarketSimulator(rate=40, batch_size=7, seed=5) as sim,
        await open_session(sim) as ws,
    ):
        await subscribe(ws, "T.AAPL,Q.*")
        wanted = {("T", "AAPL")} | {("Q", s) for s in default_symbols("stocks")}
        last_q: dict[tuple[str, str], int] = defaultdict(int)
        seen: set[tuple[str, str]] = set()
        count = 0
        while count < 300:
            frame = await recv_frame(ws)
            assert 1 <= len(frame) <= 7
            for event in frame:
                key = (event["ev"], event["sym"])
                assert key in wanted, event
                assert event["q"] > last_q[key]
                last_q[key] = event["q"]
                seen.add(key)
            count += len(frame)
        assert seen == wanted


@pytest.mark.timeout(10)
async def test_rate_and_batch_size_change_at_run_time() -> None:
    async with MarketSimulator(rate=0, batch_size=50) as sim, await open_session(sim) as ws:
        await subscribe(ws, "T.AAPL")
        sim.batch_size = 2
        sim.rate = 200
        frame = await recv_frame(ws)
        assert 1 <= len(frame) <= 2 and frame[0]["ev"] == "T"
        with pytest.raises(ValueError):
            sim.rate = -1
        with pytest.raises(ValueError):
            sim.batch_size = 0


# -- connection limits -------------------------------------------------------------


@pytest.mark.timeout(10)
async def test_newer_connection_evicts_the_older_one(sim: MarketSimulator) -> None:
    async with await open_session(sim, "shared") as first:
        first_id = sim.sessions[0].id
        async with (
            await open_session(sim, "shared", cluster="crypto"),
            await open_session(sim, "shared") as second,
        ):
            [(status, message)] = statuses(await recv_frame(first))
            assert status == "max_connections"
            assert message.startswith("Maximum number of websocket connections exceeded.")
            closed = await closed_by_server(first)
            assert closed.rcvd is not None and closed.rcvd.code == 1008
            await sim.wait_for(lambda: len(sim.sessions) == 2, what="eviction")
            assert first_id not in [s.id for s in sim.sessions]
            assert second.state.name == "OPEN"


@pytest.mark.timeout(10)
async def test_connection_limit_per_key_is_configurable() -> None:
    async with (
        MarketSimulator(rate=0, max_connections_per_key=2) as sim,
        await open_session(sim, "shared") as first,
        await open_session(sim, "shared"),
    ):
        assert [s.api_key for s in sim.sessions] == ["shared", "shared"]
        async with await open_session(sim, "shared"):
            assert statuses(await recv_frame(first))[0][0] == "max_connections"
            await sim.wait_for(lambda: len(sim.sessions) == 2, what="eviction")


# -- faults ----------------------------------------------------------------------------


@pytest.mark.timeout(10)
async def test_drop_connections_ends_without_a_close_frame(sim: MarketSimulator) -> None:
    async with await open_session(sim) as stocks, await open_session(sim, cluster="forex") as fx:
        assert sim.drop_connections("stocks") == 1
        closed = await closed_by_server(stocks)
        assert isinstance(closed, ConnectionClosedError) and closed.rcvd is None
        await sim.wait_for(lambda: len(sim.sessions) == 1, what="drop")
        assert sim.drop_connections() == 1
        assert (await closed_by_server(fx)).rcvd is None


@pytest.mark.timeout(10)
async def test_drop_mid_frame(sim: MarketSimulator) -> None:
    async with await open_session(sim) as ws:
        assert await sim.drop_mid_frame() == 1
        closed = await closed_by_server(ws)
        assert isinstance(closed, ConnectionClosedError) and closed.rcvd is None


@pytest.mark.timeout(10)
async def test_close_connections_with_code_and_reason(sim: MarketSimulator) -> None:
    async with await open_session(sim) as ws:
        assert await sim.close_connections(4001, "maintenance", cluster="stocks") == 1
        closed = await closed_by_server(ws)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (4001, "maintenance")
        assert await sim.close_connections(cluster="crypto") == 0


@pytest.mark.timeout(10)
async def test_send_raw_text_and_binary(sim: MarketSimulator) -> None:
    async with await open_session(sim, key=None) as ws:
        assert await sim.send_raw("{not an array") == 1
        assert await asyncio.wait_for(ws.recv(), 5) == "{not an array"
        assert await sim.send_raw(b"\x00\x01binary") == 1
        assert await asyncio.wait_for(ws.recv(), 5) == b"\x00\x01binary"


@pytest.mark.timeout(10)
async def test_send_status_then_close(sim: MarketSimulator) -> None:
    async with await open_session(sim) as ws:
        assert await sim.send_status("info", "still here") == 1
        assert statuses(await recv_frame(ws)) == [("info", "still here")]
        sent = await sim.send_status("slow_consumer", "too slow", close_code=1008)
        assert sent == 1
        assert statuses(await recv_frame(ws)) == [("slow_consumer", "too slow")]
        closed = await closed_by_server(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1008


@pytest.mark.timeout(10)
async def test_stall_leaves_pings_unanswered_and_stops_data() -> None:
    async with (
        MarketSimulator(rate=200, batch_size=5) as sim,
        await open_session(sim, ping_interval=None) as ws,
    ):
        await subscribe(ws, "T.AAPL")
        await recv_frame(ws)  # data flows
        sim.stall()
        pong = await ws.ping()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(pong), 0.3)
        # Drain what was sent before the stall; then nothing more comes.
        with pytest.raises(asyncio.TimeoutError):
            while True:
                await asyncio.wait_for(ws.recv(), 0.3)
        sim.stall(False)
        await asyncio.wait_for(pong, 5)
        await recv_frame(ws)


@pytest.mark.timeout(10)
async def test_refuse_connections_answers_503(sim: MarketSimulator) -> None:
    sim.refuse_connections()
    with pytest.raises(InvalidStatus) as info:
        await connect(f"{sim.url}/stocks")
    assert info.value.response.status_code == 503
    sim.refuse_connections(False)
    async with await open_session(sim):
        pass


@pytest.mark.timeout(10)
async def test_hung_handshake_trips_the_open_timeout(sim: MarketSimulator) -> None:
    sim.hang_handshakes()
    # websockets raises asyncio's TimeoutError on Python 3.10 (the builtin one later).
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        await connect(f"{sim.url}/stocks", open_timeout=0.3)
    sim.hang_handshakes(False)
    async with await open_session(sim):
        pass


@pytest.mark.timeout(10)
async def test_stop_with_a_hung_handshake_is_prompt() -> None:
    sim = MarketSimulator(rate=0)
    await sim.start()
    sim.hang_handshakes()
    attempt = asyncio.ensure_future(connect(f"{sim.url}/stocks", open_timeout=8))
    await sim.wait_for(lambda: bool(sim._connections), what="the handshake to start")
    await asyncio.wait_for(sim.stop(), 5)
    with pytest.raises(InvalidStatus) as info:
        await asyncio.wait_for(attempt, 5)
    assert info.value.response.status_code == 503


# -- lifecycle ---------------------------------------------------------------------------


@pytest.mark.timeout(10)
async def test_stop_closes_sessions_and_leaves_no_task() -> None:
    sim = MarketSimulator(rate=100)
    await sim.start()
    ws = await open_session(sim)
    await subscribe(ws, "T.*")
    await recv_frame(ws)
    await asyncio.gather(sim.stop(), sim.stop())  # a second stop waits for the first
    await sim.stop()  # idempotent
    assert not sim.running
    closed = await closed_by_server(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1001
    names = [task.get_name() for task in asyncio.all_tasks()]
    assert not [name for name in names if name.startswith("simulator-")], names
    assert sim.sessions == []


@pytest.mark.timeout(10)
async def test_restart_keeps_the_port() -> None:
    sim = MarketSimulator(rate=0)
    with pytest.raises(RuntimeError):
        _ = sim.url
    async with sim:
        url = sim.url
    async with sim:
        assert sim.url == url
        async with await open_session(sim):
            pass


@pytest.mark.timeout(10)
async def test_wait_for_times_out_naming_the_condition(sim: MarketSimulator) -> None:
    with pytest.raises(TimeoutError, match="two sessions"):
        await sim.wait_for(lambda: len(sim.sessions) == 2, timeout=0.1, what="two sessions")


@pytest.mark.timeout(15)
def test_simulator_thread_start_call_stop() -> None:
    before = set(threading.enumerate())
    with SimulatorThread(rate=0) as thread:
        assert thread.url == f"ws://127.0.0.1:{thread.port}"

        async def client() -> Frame:
            async with await open_session(thread.simulator, "KEY") as ws:
                await subscribe(ws, "T.AAPL")
                await asyncio.to_thread(
                    thread.wait_for, lambda: bool(thread.simulator.subscriptions("stocks"))
                )
                event = thread.call(lambda: thread.simulator.factory("stocks").make("T", "AAPL"))
                sent = await asyncio.to_thread(
                    thread.call, thread.simulator.publish, "stocks", [event]
                )
                assert sent == 1
                return await recv_frame(ws)

        [event] = asyncio.run(client())
        assert (event["ev"], event["sym"]) == ("T", "AAPL")
        thread.wait_for(lambda: not thread.simulator.sessions, what="the session to end")
        assert thread.call(lambda: thread.simulator.connections_accepted) == 1
        # Waiting on the loop from the loop's own thread would deadlock: refused.
        with pytest.raises(RuntimeError, match="deadlock"):
            thread.call(lambda: thread.call(lambda: None))
        with pytest.raises(TimeoutError):
            thread.call(asyncio.sleep, 5, timeout=0.1)
    thread.stop()  # idempotent
    assert not thread.running
    assert set(threading.enumerate()) - before == set()


@pytest.mark.timeout(15)
async def test_command_prints_its_url_and_exits_cleanly() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "polygon.streaming.simulator",
        "--port",
        "0",
        "--rate",
        "0",
        "--key",
        "KEY",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert line.startswith("ws://127.0.0.1:")
        async with connect(f"{line}/crypto") as ws:
            assert statuses(await recv_frame(ws))[0][0] == "connected"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert b"Traceback" not in await process.stderr.read()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
