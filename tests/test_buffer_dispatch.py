"""The event buffer between the reader and the handlers, and the handler table."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from polygon.enums import StreamServicePrefix
from polygon.streaming._buffer import (
    CLOSED,
    DEFAULT_MAX_BUFFERED_EVENTS,
    BufferStats,
    ConnectionEnded,
    EventBuffer,
    StreamFailed,
    check_buffer_options,
    events_in,
)
from polygon.streaming._dispatch import (
    HandlerTable,
    default_message_handler,
    default_status_handler,
    event_code_of,
    is_async_callable,
)
from polygon.streaming.errors import ConfigurationError, ConnectionLostError

pytestmark = pytest.mark.timeout(10)

Event = dict[str, Any]


def frame(code: str, *numbers: int) -> list[Event]:
    return [{"ev": code, "n": n} for n in numbers]


async def settle(rounds: int = 5) -> None:
    """Let other tasks run a few times (no sleeping)."""
    for _ in range(rounds):
        await anyio.lowlevel.checkpoint()


def stats_of(buffer: EventBuffer) -> tuple[int, int, int, int]:
    s = buffer.stats
    return s.received, s.delivered, s.dropped, s.backlog


# -- EventBuffer -------------------------------------------------------------------------------


def test_buffer_defaults() -> None:
    buffer = EventBuffer()
    assert buffer.max_events == DEFAULT_MAX_BUFFERED_EVENTS
    assert buffer.overflow == "drop_oldest"
    assert buffer.stats == BufferStats(0, 0, 0, 0)
    assert len(buffer) == 0
    assert buffer.has_room()


@pytest.mark.parametrize(
    ("max_events", "overflow", "bad"),
    [
        (0, "drop_oldest", 0),
        (-1, "drop_oldest", -1),
        (1.5, "drop_oldest", 1.5),
        ("10", "drop_oldest", "10"),
        (None, "drop_oldest", None),
        (10, "drop_newest", "drop_newest"),
        (10, "", ""),
        (10, None, None),
    ],
)
def test_buffer_bad_options(max_events: object, overflow: object, bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        EventBuffer(max_events, overflow)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)
    with pytest.raises(ConfigurationError):
        check_buffer_options(max_events, overflow)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "count"),
    [([], 0), ([{}], 1), (frame("T", 1, 2, 3), 3), ((frame("T", 1, 2), "raw"), 2), (CLOSED, 0)],
)
def test_events_in(item: object, count: int) -> None:
    assert events_in(item) == count


def test_events_in_markers() -> None:
    assert events_in(ConnectionEnded(None)) == 0
    assert events_in(StreamFailed(RuntimeError("x"))) == 0


@pytest.mark.anyio
async def test_fifo_order_of_frames_and_markers() -> None:
    buffer = EventBuffer(1_000)
    ended = ConnectionEnded(ConnectionLostError("lost", code=1006))
    failed = StreamFailed(RuntimeError("gave up"))
    items: list[Any] = [frame("T", 1), frame("Q", 2, 3), ended, frame("T", 4), failed, []]
    for item in items:
        if isinstance(item, list):
            buffer.put(item)
        else:
            buffer.put_marker(item)
    assert len(buffer) == len(items)
    got = [await buffer.get() for _ in items]
    assert got == items
    assert got[2] is ended
    assert got[4] is failed
    assert stats_of(buffer) == (4, 4, 0, 0)
    assert len(buffer) == 0


@pytest.mark.anyio
async def test_get_waits_for_a_frame() -> None:
    buffer = EventBuffer(10)
    got: list[Any] = []
    done = anyio.Event()

    async def consumer() -> None:
        got.append(await buffer.get())
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await settle()
        assert got == []
        buffer.put(frame("T", 1))
        with anyio.fail_after(2):
            await done.wait()
    assert got == [frame("T", 1)]


@pytest.mark.anyio
async def test_get_waits_for_a_marker() -> None:
    buffer = EventBuffer(10)
    marker = ConnectionEnded(None)
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:

            async def later() -> None:
                await settle()
                buffer.put_marker(marker)

            tg.start_soon(later)
            assert await buffer.get() is marker


@pytest.mark.anyio
async def test_drop_oldest_keeps_newest_and_counts_exactly() -> None:
    buffer = EventBuffer(5, "drop_oldest")
    buffer.put(frame("T", 1, 2, 3))
    buffer.put(frame("T", 4, 5))
    assert stats_of(buffer) == (5, 0, 0, 5)
    buffer.put(frame("T", 6))  # 6 > 5: the oldest frame (3 events) goes
    assert stats_of(buffer) == (6, 0, 3, 3)
    buffer.put(frame("T", 7, 8, 9, 10, 11, 12, 13))  # bigger than the limit on its own
    assert stats_of(buffer) == (13, 0, 6, 7)
    assert len(buffer) == 1
    assert await buffer.get() == frame("T", 7, 8, 9, 10, 11, 12, 13)
    assert stats_of(buffer) == (13, 7, 6, 0)


@pytest.mark.anyio
async def test_drop_oldest_keeps_markers_in_order() -> None:
    buffer = EventBuffer(4)
    first = ConnectionEnded(ConnectionLostError("lost"))
    second = StreamFailed(RuntimeError("done"))
    buffer.put(frame("T", 1, 2))
    buffer.put_marker(first)
    buffer.put(frame("T", 3, 4))
    buffer.put_marker(second)
    buffer.put(frame("T", 5, 6, 7))  # backlog 7 > 4: both older frames go
    assert stats_of(buffer) == (7, 0, 4, 3)
    assert [await buffer.get() for _ in range(3)] == [first, second, frame("T", 5, 6, 7)]
    assert stats_of(buffer) == (7, 3, 4, 0)


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [1, 3, 10, 50])
async def test_stats_stay_consistent(limit: int) -> None:
    buffer = EventBuffer(limit)
    sizes = [1, 4, 2, 7, 3, 3, 1, 9, 2, 5, 1, 1]
    received = 0
    delivered = 0
    for i, size in enumerate(sizes):
        buffer.put(frame("T", *range(size)))
        received += size
        if i % 3 == 2:
            batch = await buffer.get()
            assert isinstance(batch, list)
            delivered += len(batch)
        s = buffer.stats
        assert s.received == received
        assert s.delivered == delivered
        assert s.received == s.delivered + s.dropped + s.backlog
        assert s.backlog <= max(limit, size)
    backlog = buffer.stats.backlog
    drained = 0
    while len(buffer):
        drained += events_in(await buffer.get())
    assert drained == backlog
    assert buffer.stats.backlog == 0
    assert buffer.stats.received == buffer.stats.delivered + buffer.stats.dropped


@pytest.mark.anyio
async def test_close_returns_closed_and_discards_backlog() -> None:
    buffer = EventBuffer(100)
    buffer.put(frame("T", 1, 2))
    buffer.put_marker(ConnectionEnded(None))
    buffer.put(frame("T", 3))
    buffer.close()
    assert buffer.stats.backlog == 0
    assert await buffer.get() is CLOSED
    assert await buffer.get() is CLOSED
    buffer.put(frame("T", 4))
    buffer.put_marker(ConnectionEnded(None))
    assert await buffer.get() is CLOSED
    assert stats_of(buffer) == (3, 0, 0, 0)
    assert len(buffer) == 1


@pytest.mark.anyio
async def test_close_wakes_a_waiting_consumer() -> None:
    buffer = EventBuffer(10)
    got: list[Any] = []

    async def consumer() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            await settle()
            buffer.close()
    assert got == [CLOSED]


@pytest.mark.anyio
async def test_backpressure_waits_for_room() -> None:
    buffer = EventBuffer(3, "backpressure")
    buffer.put(frame("T", 1, 2))
    assert buffer.has_room()
    with anyio.fail_after(2):
        await buffer.wait_for_room()  # returns at once while there is room
    buffer.put(frame("T", 3, 4))
    # Nothing is dropped under backpressure, even over the limit.
    assert stats_of(buffer) == (4, 0, 0, 4)
    assert not buffer.has_room()

    room = anyio.Event()

    async def producer() -> None:
        await buffer.wait_for_room()
        room.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await settle()
        assert not room.is_set()
        assert await buffer.get() == frame("T", 1, 2)  # backlog 2 < 3: room again
        with anyio.fail_after(2):
            await room.wait()
    assert stats_of(buffer) == (4, 2, 0, 2)


@pytest.mark.anyio
async def test_backpressure_keeps_waiting_until_under_the_limit() -> None:
    buffer = EventBuffer(2, "backpressure")
    buffer.put(frame("T", 1))
    buffer.put(frame("T", 2))
    buffer.put(frame("T", 3))
    room = anyio.Event()

    async def producer() -> None:
        await buffer.wait_for_room()
        room.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await settle()
        await buffer.get()  # backlog 2: still full
        await settle()
        assert not room.is_set()
        await buffer.get()  # backlog 1
        with anyio.fail_after(2):
            await room.wait()


@pytest.mark.anyio
async def test_close_releases_a_waiting_producer() -> None:
    buffer = EventBuffer(1, "backpressure")
    buffer.put(frame("T", 1, 2))
    room = anyio.Event()

    async def producer() -> None:
        await buffer.wait_for_room()
        room.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await settle()
        assert not room.is_set()
        buffer.close()
        with anyio.fail_after(2):
            await room.wait()


@pytest.mark.anyio
async def test_discard_connection_markers() -> None:
    buffer = EventBuffer(100)
    failed = StreamFailed(RuntimeError("x"))
    buffer.put_marker(ConnectionEnded(None))
    buffer.put(frame("T", 1))
    buffer.put_marker(ConnectionEnded(ConnectionLostError("lost")))
    buffer.put_marker(failed)
    buffer.put(frame("T", 2))
    buffer.discard_connection_markers()
    assert len(buffer) == 3
    assert [await buffer.get() for _ in range(3)] == [frame("T", 1), failed, frame("T", 2)]
    buffer.discard_connection_markers()  # nothing to discard
    assert len(buffer) == 0
    assert stats_of(buffer) == (2, 2, 0, 0)


# -- HandlerTable -------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


class AsyncRecorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        await anyio.lowlevel.checkpoint()
        self.events.append(event)


@pytest.mark.anyio
async def test_sync_and_async_handlers_in_order() -> None:
    table = HandlerTable()
    order: list[tuple[str, int]] = []

    def on_trade(event: Event) -> None:
        order.append(("T", event["n"]))

    async def on_quote(event: Event) -> None:
        await anyio.lowlevel.checkpoint()
        order.append(("Q", event["n"]))

    table.set("T", on_trade)
    table.set("Q", on_quote)
    assert table.get("T") is on_trade
    assert table.get("Q") is on_quote
    assert not table.all_sync()
    await table.dispatch([*frame("T", 1), *frame("Q", 2), *frame("T", 3), *frame("Q", 4)])
    assert order == [("T", 1), ("Q", 2), ("T", 3), ("Q", 4)]
    assert table.errors == 0
    assert table.bad_events == 0


def test_all_sync() -> None:
    table = HandlerTable()
    assert table.all_sync()
    table.set("T", Recorder())
    assert table.all_sync()
    table.set("Q", AsyncRecorder())
    assert not table.all_sync()


@pytest.mark.anyio
async def test_callable_object_with_async_call_is_awaited() -> None:
    table = HandlerTable()
    handler = AsyncRecorder()
    assert is_async_callable(handler)
    table.set("XT", handler)
    await table.dispatch(frame("XT", 1, 2))
    assert handler.events == frame("XT", 1, 2)
    assert table.errors == 0


def test_is_async_callable() -> None:
    async def coro(event: Event) -> None:
        return None

    assert is_async_callable(coro)
    assert is_async_callable(AsyncRecorder())
    assert not is_async_callable(Recorder())
    assert not is_async_callable(print)
    assert not is_async_callable(lambda event: None)


@pytest.mark.anyio
async def test_default_handler_for_unknown_codes(capsys: pytest.CaptureFixture[str]) -> None:
    # The documented default handler prints each event to standard output.
    table = HandlerTable()
    assert table.get("ZZZ") is default_message_handler
    await table.dispatch(frame("ZZZ", 1))
    assert capsys.readouterr().out == f"{frame('ZZZ', 1)[0]!r}\n"
    catch_all = Recorder()
    table.default = (catch_all, False)
    known = Recorder()
    table.set("T", known)
    await table.dispatch([*frame("ZZZ", 1), *frame("T", 2), *frame("LV", 3)])
    assert catch_all.events == [*frame("ZZZ", 1), *frame("LV", 3)]
    assert known.events == frame("T", 2)


@pytest.mark.anyio
async def test_async_default_handler() -> None:
    table = HandlerTable()
    catch_all = AsyncRecorder()
    table.default = (catch_all, True)
    assert not table.all_sync()
    await table.dispatch(frame("AM", 1))
    assert catch_all.events == frame("AM", 1)


@pytest.mark.anyio
async def test_status_handler(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    table = HandlerTable()
    assert table.get("status") is default_status_handler
    with caplog.at_level(logging.INFO, logger="polygon.streaming.messages"):
        await table.dispatch(
            [
                {"ev": "status", "status": "auth_success", "message": "authenticated"},
                {"ev": "status", "status": "error", "message": "bad request"},
            ]
        )
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.INFO, "status auth_success: authenticated") in levels
    assert (logging.WARNING, "status error: bad request") in levels
    assert capsys.readouterr().out == ""  # logged, never printed
    mine = Recorder()
    table.set(StreamServicePrefix.STATUS.value, mine)
    event = {"ev": "status", "status": "success", "message": "subscribed to: T.AAPL"}
    await table.dispatch([event])
    assert mine.events == [event]


@pytest.mark.anyio
@pytest.mark.parametrize("async_handler", [False, True])
async def test_raising_handler_is_counted_and_stream_goes_on(
    async_handler: bool, caplog: pytest.LogCaptureFixture
) -> None:
    table = HandlerTable()
    seen: list[int] = []

    def boom(event: Event) -> None:
        seen.append(event["n"])
        if event["n"] % 2:
            raise RuntimeError(f"boom {event['n']}")

    async def aboom(event: Event) -> None:
        boom(event)

    table.set("T", aboom if async_handler else boom)
    others = Recorder()
    table.set("Q", others)
    with caplog.at_level(logging.ERROR, logger="polygon.streaming.dispatch"):
        await table.dispatch([*frame("T", 1, 2, 3), *frame("Q", 4)])
        await table.dispatch(frame("T", 5, 6))
    assert seen == [1, 2, 3, 5, 6]
    assert others.events == frame("Q", 4)
    assert table.errors == 3
    assert table.bad_events == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in errors)


@pytest.mark.anyio
async def test_error_hook_gets_exception_and_event() -> None:
    table = HandlerTable()
    calls: list[tuple[Exception, Event]] = []
    table.error_hook = lambda exc, event: calls.append((exc, event))
    error = ValueError("bad")

    def fail(event: Event) -> None:
        raise error

    table.set("T", fail)
    await table.dispatch(frame("T", 1))
    assert calls == [(error, frame("T", 1)[0])]
    assert table.errors == 1


@pytest.mark.anyio
async def test_raising_error_hook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    table = HandlerTable()

    def hook(exc: Exception, event: Event) -> None:
        raise KeyError("hook")

    def fail(event: Event) -> None:
        raise RuntimeError("handler")

    table.error_hook = hook
    table.set("T", fail)
    with caplog.at_level(logging.ERROR, logger="polygon.streaming.dispatch"):
        await table.dispatch(frame("T", 1, 2))
    assert table.errors == 2
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 4


BAD_EVENTS: list[object] = [
    {"sym": "AAPL"},
    {},
    ["T", "AAPL"],
    "T.AAPL",
    None,
    42,
]


@pytest.mark.anyio
@pytest.mark.parametrize("bad", BAD_EVENTS, ids=repr)
async def test_bad_events_are_counted_and_skipped(bad: object) -> None:
    table = HandlerTable()
    handler = Recorder()
    table.set("T", handler)
    catch_all = Recorder()
    table.default = (catch_all, False)
    await table.dispatch([*frame("T", 1), bad, *frame("T", 2)])  # type: ignore[list-item]
    assert handler.events == frame("T", 1, 2)
    assert catch_all.events == []
    assert table.bad_events == 1
    assert table.errors == 0


@pytest.mark.parametrize("bad", BAD_EVENTS, ids=repr)
def test_bad_events_are_counted_and_skipped_sync(bad: object) -> None:
    table = HandlerTable()
    handler = Recorder()
    table.set("T", handler)
    table.dispatch_sync([*frame("T", 1), bad, *frame("T", 2)])  # type: ignore[list-item]
    assert handler.events == frame("T", 1, 2)
    assert table.bad_events == 1
    assert table.errors == 0


def test_dispatch_sync_counts_errors() -> None:
    table = HandlerTable()
    got: list[Event] = []

    def handler(event: Event) -> None:
        got.append(event)
        if event["n"] == 2:
            raise RuntimeError("x")

    table.set("XQ", handler)
    table.dispatch_sync(frame("XQ", 1, 2, 3))
    assert got == frame("XQ", 1, 2, 3)
    assert table.errors == 1


@pytest.mark.parametrize("bad", [None, 42, "print", ["f"], object()])
def test_set_non_callable_raises_type_error(bad: object) -> None:
    table = HandlerTable()
    with pytest.raises(TypeError) as info:
        table.set("T", bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)
    assert table.get("T") is default_message_handler


def test_dispatch_sync_sends_codes_without_a_handler_to_the_default() -> None:
    table = HandlerTable()
    catch_all, known = Recorder(), Recorder()
    table.default = (catch_all, False)
    table.set("T", known)
    # ZZZ is in no specification: it takes the slow path, and still arrives.
    table.dispatch_sync([*frame("ZZZ", 1), *frame("T", 2), *frame("LV", 3)])
    assert catch_all.events == [*frame("ZZZ", 1), *frame("LV", 3)]
    assert known.events == frame("T", 2)
    assert (table.errors, table.bad_events) == (0, 0)


def test_dispatch_sync_reports_a_key_error_from_a_handler_as_its_failure() -> None:
    table = HandlerTable()
    catch_all = Recorder()
    table.default = (catch_all, False)
    seen: list[Event] = []

    def handler(event: Event) -> None:
        seen.append(event)
        event["missing"]  # raises KeyError inside the handler

    table.set("T", handler)
    table.dispatch_sync(frame("T", 1, 2))
    assert seen == frame("T", 1, 2)
    assert catch_all.events == []  # not taken for a code with no handler
    assert (table.errors, table.bad_events) == (2, 0)


def test_dispatch_sync_explicit_only_skips_codes_without_a_handler_of_their_own() -> None:
    table = HandlerTable()
    catch_all, known = Recorder(), Recorder()
    table.default = (catch_all, False)
    table.set("T", known)
    table.dispatch_sync([*frame("Q", 1), *frame("T", 2), *frame("ZZZ", 3)], explicit_only=True)
    assert known.events == frame("T", 2)
    assert catch_all.events == []
    assert (table.errors, table.bad_events) == (0, 0)


def test_set_replaces_handler() -> None:
    table = HandlerTable()
    first, second = Recorder(), Recorder()
    table.set("T", first)
    table.set("T", second)
    table.dispatch_sync(frame("T", 1))
    assert first.events == []
    assert second.events == frame("T", 1)


# -- event_code_of ------------------------------------------------------------------------------


@pytest.mark.parametrize("member", list(StreamServicePrefix))
def test_event_code_of_enum(member: StreamServicePrefix) -> None:
    code = event_code_of(member)
    assert code == member.value
    assert type(code) is str


@pytest.mark.parametrize("code", ["T", "XQ", "status", "LV", "anything"])
def test_event_code_of_string(code: str) -> None:
    assert event_code_of(code) == code


@pytest.mark.parametrize("bad", ["", None, 5, b"T", ["T"]])
def test_event_code_of_bad(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        event_code_of(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)
