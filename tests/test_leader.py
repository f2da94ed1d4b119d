"""Leader election over a real broker: the lease, the election loop, and the publisher.

The lock is tested on a real redis-server and a real nats-server -js. The
publisher runs as real processes (``python -m polygon.cli publish``) against the
simulator, which evicts the older of two connections on one key: a monitor
samples the simulator's sessions throughout, and every test asserts that at no
sample two connections were open and that nobody was ever evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from _brokers import NatsServer, RedisServer, running, until
from _leaders import Publishers, broker_events, replaced, watched

from polygon.streaming.errors import ConfigurationError
from polygon.streaming.leader import (
    LeaderLock,
    Leadership,
    LeaderState,
    LeaderTerm,
    default_lock_name,
    lock_from_url,
)
from polygon.streaming.leader._lease import VALID_SHARE
from polygon.streaming.simulator import MarketSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


def lock_on(broker: RedisServer | NatsServer, name: str = "test", lease: float = 1.0) -> LeaderLock:
    return lock_from_url(broker.url, name, lease=lease)


# -- the lock ------------------------------------------------------------------------------


async def test_only_the_owner_holds_renews_and_releases(broker: RedisServer | NatsServer) -> None:
    first, second = lock_on(broker, lease=10), lock_on(broker, lease=10)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert not await second.renew()
        await second.release()  # not the holder: changes nothing
        assert await first.holder() == first.owner
        assert await first.renew()
        await first.release()
        assert await first.holder() is None
        assert await second.try_acquire()
        assert not await first.renew()
    finally:
        await first.close()
        await second.close()


async def test_an_unrenewed_lease_frees_itself_after_the_lease_not_before(
    broker: RedisServer | NatsServer,
) -> None:
    lease = 1.0
    holder, other = lock_on(broker, lease=lease), lock_on(broker, lease=lease)
    try:
        sent = time.monotonic()
        assert await holder.try_acquire()
        deadline = time.monotonic() + lease + 10
        while not await other.try_acquire():
            assert time.monotonic() < deadline, "the lease never expired"
            await asyncio.sleep(0.02)
        # The broker kept the lease at least as long as it was asked to.
        assert time.monotonic() - sent >= lease * 0.95
    finally:
        await holder.close()
        await other.close()


async def test_nats_refuses_a_lock_whose_lease_differs_from_its_bucket(tmp_path: Path) -> None:
    with running(NatsServer(tmp_path / "nats")) as server:
        first, second = lock_on(server, lease=2), lock_on(server, lease=3)
        try:
            assert await first.try_acquire()
            with pytest.raises(ConfigurationError, match=r"3\.0 s"):
                await second.try_acquire()
        finally:
            await first.close()
            await second.close()


def test_bad_lock_arguments_are_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="'ftp://x'"):
        lock_from_url("ftp://x", "name")
    with pytest.raises(ConfigurationError, match=r"0\.1"):
        lock_from_url("redis://127.0.0.1:1/0", "name", lease=0.1)
    with pytest.raises(ConfigurationError, match="''"):
        lock_from_url("redis://127.0.0.1:1/0", "")


def test_the_default_lock_name_never_holds_the_key() -> None:
    name = default_lock_name("stocks", "secret-key-123")
    assert name.startswith("stocks-")
    assert "secret" not in name
    assert name == default_lock_name("stocks", "secret-key-123")
    assert name != default_lock_name("stocks", "another-key")


# -- the election loop ---------------------------------------------------------------------


class Terms:
    """Records when each candidate's work ran, to check that no two terms overlap."""

    def __init__(self) -> None:
        self.intervals: list[tuple[str, float, float]] = []
        self.running: dict[str, float] = {}
        self.stopped_before_expiry: list[bool] = []

    def work(self, who: str, lease: float) -> Callable[[LeaderTerm], Any]:
        async def lead(term: LeaderTerm) -> None:
            assert not self.running, f"{who} leads while {list(self.running)} still does"
            self.running[who] = time.monotonic()
            try:
                await asyncio.Event().wait()
            finally:
                start = self.running.pop(who)
                end = time.monotonic()
                self.intervals.append((who, start, end))
                # The last renewal was sent at valid_until - lease * VALID_SHARE: the
                # broker cannot have let the lease go before that plus the lease.
                sent = term.valid_until - lease * VALID_SHARE
                self.stopped_before_expiry.append(end < sent + lease)

        return lead

    def leader(self) -> str | None:
        return next(iter(self.running), None)


async def test_one_leads_and_a_clean_stop_hands_over_at_once(
    broker: RedisServer | NatsServer,
) -> None:
    lease = 2.0
    terms = Terms()
    runs = {
        who: asyncio.ensure_future(
            Leadership(lock_on(broker, lease=lease)).run(terms.work(who, lease))
        )
        for who in ("a", "b", "c")
    }
    try:
        await until(lambda: terms.leader() is not None, "a leader")
        for _ in range(2):
            first = terms.leader()
            assert first is not None
            runs[first].cancel()
            stopped = time.monotonic()
            await until(
                lambda first=first: terms.leader() not in (None, first),  # type: ignore[misc]
                "the next leader",
                within=10,
            )
            # Released at the stop, so taken within a few polls, not after the lease.
            assert time.monotonic() - stopped < lease
    finally:
        for run in runs.values():
            run.cancel()
        await asyncio.gather(*runs.values(), return_exceptions=True)
    assert all(terms.stopped_before_expiry)


async def test_the_holder_steps_down_when_its_broker_stops_answering(
    broker: RedisServer | NatsServer,
) -> None:
    lease = 2.0
    terms = Terms()
    states: list[tuple[str, LeaderState]] = []
    runs = [
        asyncio.ensure_future(
            Leadership(
                lock_on(broker, lease=lease),
                on_state=lambda state, _reason, who=who: states.append((who, state)),
            ).run(terms.work(who, lease))
        )
        for who in ("a", "b")
    ]
    try:
        await until(lambda: terms.leader() is not None, "a leader")
        broker.pause()
        try:
            await until(lambda: terms.leader() is None, "the holder to step down", within=lease * 3)
            assert any(state is LeaderState.STEPPING_DOWN for _, state in states)
            # Nobody can lead while the broker is gone.
            await asyncio.sleep(lease)
            assert terms.leader() is None
        finally:
            broker.resume()
        await until(lambda: terms.leader() is not None, "leadership to resume", within=lease * 5)
    finally:
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    assert terms.stopped_before_expiry and all(terms.stopped_before_expiry)


# -- the publisher, as processes -----------------------------------------------------------


@pytest.fixture
async def publishers(
    market: MarketSimulator, broker: RedisServer | NatsServer, tmp_path: Path
) -> AsyncIterator[Publishers]:
    group = Publishers(market, broker, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
        for index in range(len(group.procs)):
            text = (tmp_path / f"publisher-{index}.log").read_text()
            assert "Traceback" not in text, text
            assert "evicted" not in text.lower() and "max_connections" not in text, text


async def one_connected(sim: MarketSimulator, within: float = 20) -> None:
    await sim.wait_for(lambda: len(sim.sessions) == 1, timeout=within, what="one publisher")


@pytest.mark.parametrize("count", [2, 3])
async def test_kill_9_of_the_holder_hands_over_within_the_lease(
    publishers: Publishers, market: MarketSimulator, broker: RedisServer | NatsServer, count: int
) -> None:
    async with watched(market):
        for _ in range(count):
            publishers.start()
        await one_connected(market)
        holder = await publishers.holder()
        first_session = market.sessions[0].id
        holder.kill()
        killed = time.monotonic()
        holder.wait(10)
        await replaced(market, first_session, within=publishers.lease + 5)
        assert time.monotonic() - killed < publishers.lease + 5
        assert (await publishers.holder()) is not holder
        before = await broker_events(broker)
        deadline = time.monotonic() + 10
        while await broker_events(broker) <= before:
            assert time.monotonic() < deadline, "no events reached the broker after the takeover"
            await asyncio.sleep(0.05)


async def test_sigterm_of_the_holder_hands_over_within_two_seconds(
    publishers: Publishers, market: MarketSimulator
) -> None:
    async with watched(market):
        publishers.start()
        publishers.start()
        await one_connected(market)
        # Both processes must be up (the spare standing by) before the handover is timed.
        await until(
            lambda: all("standby" in publishers.log(p) for p in publishers.procs), "both started"
        )
        holder = await publishers.holder()
        first_session = market.sessions[0].id
        holder.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        await replaced(market, first_session, within=10)
        assert time.monotonic() - stopped < 2.0
        assert holder.wait(10) == 0
        assert "stopped" in publishers.log(holder)


@pytest.mark.parametrize("outage", ["paused", "stopped"])
async def test_a_broker_gone_longer_than_the_lease_stops_every_publisher_then_resumes(
    publishers: Publishers,
    market: MarketSimulator,
    broker: RedisServer | NatsServer,
    outage: str,
) -> None:
    async with watched(market):
        publishers.start()
        publishers.start()
        await one_connected(market)
        broker.pause() if outage == "paused" else broker.stop()
        try:
            # The holder cannot renew: it disconnects before its lease could expire.
            await market.wait_for(
                lambda: not market.sessions, timeout=publishers.lease * 3, what="the step-down"
            )
            await asyncio.sleep(publishers.lease)
            assert not market.sessions, "a publisher connected without the lease"
        finally:
            broker.resume() if outage == "paused" else broker.start()
        await one_connected(market, within=publishers.lease * 5 + 10)
        assert any("stepping down" in publishers.log(p) for p in publishers.procs)


async def test_the_blocking_client_leads_and_is_fenced_too(
    market: MarketSimulator, tmp_path: Path
) -> None:
    """The documented StreamClient recipe: its connection and sink live for one term."""
    from polygon import StreamClient
    from polygon.streaming.leader import FencedSink
    from polygon.streaming.sinks.redis import RedisStreamsSink

    lease = 2.0
    with running(RedisServer(tmp_path / "redis")) as server:
        sinks: list[RedisStreamsSink] = []

        async def lead(term: LeaderTerm) -> None:
            client = StreamClient("key-1", "stocks", host=market.url)
            sink = RedisStreamsSink(server.url)
            sinks.append(sink)
            client.add_sink(FencedSink(sink, term))
            await asyncio.to_thread(client.start_stream_thread)
            await asyncio.to_thread(client.subscribe_stock_trades, ["AAPL"])
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.to_thread(client.close_stream)

        run = asyncio.ensure_future(Leadership(lock_on(server, lease=lease)).run(lead))
        try:
            await market.wait_for(lambda: len(market.sessions) == 1, timeout=20, what="a leader")
            await until(lambda: bool(sinks) and sinks[0].stats.published > 0, "published events")
            server.pause()
            try:
                # Lost with the broker: the connection goes before the lease could expire.
                await market.wait_for(lambda: not market.sessions, timeout=lease * 3, what="exit")
                published_in_first_term = sinks[0].stats.published
                # Fenced: what the first term's sink still holds is dropped at once, not
                # kept to be flushed (an unfenced sink would wait its close timeout, 5 s).
                with contextlib.suppress(AssertionError):
                    await until(lambda: sinks[0].stats.backlog == 0, "discard", within=3)
            finally:
                server.resume()
            await market.wait_for(lambda: len(market.sessions) == 1, timeout=20, what="return")
            await until(lambda: len(sinks) == 2 and sinks[1].stats.published > 0, "a new term")
            assert sinks[0].stats.published == published_in_first_term
            assert sinks[0].stats.dropped > 0
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        assert not market.sessions
        assert market.evictions == 0


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ([], "at least one --sink"),
        (["--sink", "redis://127.0.0.1:1/0", "--leader-lock", "ftp://x"], "'ftp://x'"),
        (
            ["--sink", "redis://127.0.0.1:1/0", "--leader-lock", "redis://h/0", "--lease", "0"],
            "0.0",
        ),
        (["--sink", "kafka://x"], "'kafka://x'"),
    ],
)
def test_publish_refuses_bad_arguments_in_one_line(arguments: list[str], complaint: str) -> None:
    command = [sys.executable, "-m", "polygon.cli", "publish", "stocks", "trades", "--api-key", "k"]
    done = subprocess.run(command + arguments, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert done.stdout == ""


async def test_publish_without_a_lock_publishes_until_ctrl_c(
    market: MarketSimulator, tmp_path: Path
) -> None:
    with running(RedisServer(tmp_path / "redis")) as server:
        command = [sys.executable, "-m", "polygon.cli", "publish", "stocks", "trades", "AAPL"]
        command += ["--host", market.url, "--api-key", "k", "--sink", server.url]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: ASYNC220
        try:
            await market.wait_for(lambda: len(market.sessions) == 1, timeout=20, what="connect")
            deadline = time.monotonic() + 20
            while await broker_events(server) == 0:
                assert time.monotonic() < deadline, "nothing reached the broker"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, err = await asyncio.get_running_loop().run_in_executor(
                None, lambda: proc.communicate(timeout=20)
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert out == b""  # publish prints no events
    text = err.decode()
    assert "Traceback" not in text
    assert "published" in text.splitlines()[-1]
    await market.wait_for(lambda: not market.sessions, timeout=10, what="the connection closed")
