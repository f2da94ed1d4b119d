"""Backoff, redaction, the enums, the stream table and the generated methods."""

from __future__ import annotations

import inspect
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode

import polygon
from polygon.enums import StreamCluster, StreamHost, StreamServicePrefix
from polygon.streaming import _channels
from polygon.streaming._async_methods import AsyncStreamMethods
from polygon.streaming._backoff import MAX_DELAY, Backoff
from polygon.streaming._channels import (
    EXTRA_EVENT_CODES,
    STREAMS,
    STREAMS_BY_NAME,
    event_codes,
    symbol_field,
)
from polygon.streaming._codegen import ALIASES
from polygon.streaming._protocol import auth_frame
from polygon.streaming._redact import REDACTED, RedactingLogger, redact
from polygon.streaming._sync_methods import SyncStreamMethods
from polygon.streaming.async_streaming import AsyncStreamClient
from polygon.streaming.errors import ConfigurationError

pytestmark = pytest.mark.timeout(10)

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_PAGE = Path("/work/shared/reference/async-streaming-page.txt")

STOCKS = StreamCluster.STOCKS
OPTIONS = StreamCluster.OPTIONS
FOREX = StreamCluster.FOREX
CRYPTO = StreamCluster.CRYPTO
INDICES = StreamCluster.INDICES


# -- Backoff -----------------------------------------------------------------------------


@pytest.mark.parametrize("initial", [0.1, 1, 2.5, 5, 30])
@pytest.mark.parametrize("seed_value", [0.0, 0.3, 0.999999])
def test_backoff_first_delay_within_jitter(initial: float, seed_value: float) -> None:
    delay = Backoff(initial, rng=lambda: seed_value).next_delay()
    assert initial <= delay <= initial * 1.25


def test_backoff_first_delay_with_the_real_rng() -> None:
    for _ in range(200):
        delay = Backoff(2).next_delay()
        assert 2 <= delay <= 2.5


@pytest.mark.parametrize("initial", [0.5, 1, 3])
def test_backoff_doubles_until_capped(initial: float) -> None:
    backoff = Backoff(initial, rng=lambda: 0.0)
    delays = [backoff.next_delay() for _ in range(40)]
    expected = [min(MAX_DELAY, initial * 2**n) for n in range(40)]
    assert delays == pytest.approx(expected)
    assert delays[-1] == MAX_DELAY == 60


def test_backoff_jitter_bounds_every_delay() -> None:
    backoff = Backoff(1, rng=lambda: 1.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert delays == pytest.approx([min(60, 2**n) * 1.25 for n in range(12)])


@pytest.mark.parametrize("initial", [60, 90, 600.5])
def test_backoff_cap_is_at_least_initial(initial: float) -> None:
    backoff = Backoff(initial, rng=lambda: 0.0)
    assert backoff.cap == max(60, initial)
    assert [backoff.next_delay() for _ in range(5)] == [float(initial)] * 5


def test_backoff_zero_initial_never_waits() -> None:
    backoff = Backoff(0, rng=lambda: 0.5)
    assert [backoff.next_delay() for _ in range(5)] == [0.0] * 5


def test_backoff_many_failures_do_not_overflow() -> None:
    backoff = Backoff(1, rng=lambda: 0.0)
    for _ in range(5_000):
        delay = backoff.next_delay()
    assert delay == 60


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(1, rng=lambda: 0.0)
    first = [backoff.next_delay() for _ in range(4)]
    backoff.reset()
    assert [backoff.next_delay() for _ in range(4)] == first == [1, 2, 4, 8]


def test_backoff_deterministic_with_injected_rng() -> None:
    def make_rng() -> object:
        values = iter([0.1, 0.9, 0.5, 0.0, 0.25])
        return lambda: next(values)

    a = Backoff(1, rng=make_rng())  # type: ignore[arg-type]
    b = Backoff(1, rng=make_rng())  # type: ignore[arg-type]
    delays_a = [a.next_delay() for _ in range(5)]
    delays_b = [b.next_delay() for _ in range(5)]
    assert delays_a == delays_b
    assert delays_a == pytest.approx([1.025, 2 * 1.225, 4 * 1.125, 8.0, 16 * 1.0625])


@pytest.mark.parametrize("bad", [-1, -0.001, "5", None, True, False, [1]])
def test_backoff_rejects_bad_initial(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        Backoff(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


# -- redact ------------------------------------------------------------------------------------

KEY = "SECRET-KEY-123"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key is {KEY}", f"key is {REDACTED}"),
        (f"{KEY}{KEY}", REDACTED * 2),
        (f"> TEXT '{auth_frame(KEY)}' [40 bytes]", f"> TEXT '{auth_frame(REDACTED)}' [40 bytes]"),
        ('{"action":"auth","params":"abcdef...', '{"action":"auth","params":"***'),
        ('> TEXT \'{"action":"auth","params":"SECR...\' [40 bytes]', None),
        ('{"action": "auth", "params": "other-key"}', '{"action": "auth", "params": "***"}'),
        ('{"action":"auth","params":""}', '{"action":"auth","params":"***"}'),
        ('{"action":"subscribe","params":"T.AAPL"}', '{"action":"subscribe","params":"T.AAPL"}'),
        ("nothing to hide", "nothing to hide"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str | None) -> None:
    result = redact(text, KEY)
    if expected is not None:
        assert result == expected
    assert KEY not in result
    assert "SECR" not in result


@pytest.mark.parametrize("cut", range(1, len(KEY)))
def test_redact_auth_frame_truncated_mid_key(cut: int) -> None:
    frame = auth_frame(KEY)
    truncated = frame[: frame.index(KEY) + cut] + "..."
    result = redact(f"> TEXT '{truncated}' [{len(frame)} bytes]", KEY)
    assert KEY[:cut] not in result
    assert REDACTED in result


@pytest.mark.parametrize("key", [KEY, "k" * 32, "Z" * 100, "abc"])
def test_redact_websockets_frame_log_line(key: str) -> None:
    # websockets logs a sent frame as str(Frame), eliding the middle of long ones.
    sent = Frame(Opcode.TEXT, auth_frame(key).encode())
    line = redact(f"> {sent}", key)
    assert key not in line
    assert key[:3] not in line
    assert key[-3:] not in line
    assert REDACTED in line


def test_redact_without_secret_still_hides_auth_params() -> None:
    assert redact(auth_frame("abc"), "") == auth_frame(REDACTED)
    assert redact("plain", "") == "plain"


def test_redacting_logger_never_emits_the_key(caplog: pytest.LogCaptureFixture) -> None:
    base = logging.getLogger("polygon.tests.redact")
    log = RedactingLogger(base, KEY)
    frame = auth_frame(KEY)
    truncated = frame[: frame.index(KEY) + 6] + "..."
    with caplog.at_level(logging.DEBUG, logger="polygon.tests.redact"):
        log.debug("> TEXT %r [%d bytes]", frame, len(frame))
        log.debug("> TEXT '%s' [%d bytes]", truncated, len(frame))
        log.debug("key %s in the args", KEY)
        log.info(f"key {KEY} in the message")
        log.warning("%s", frame)
        log.log(logging.ERROR, "%s and %s", KEY, "more")
        log.debug("nothing secret: %s", "T.AAPL")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 7
    assert all(KEY not in message for message in messages)
    assert all(KEY[:6] not in message for message in messages)
    assert all(KEY not in line for line in caplog.text.splitlines())
    assert messages[-1] == "nothing secret: T.AAPL"
    assert messages[2] == f"key {REDACTED} in the args"
    assert [record.levelno for record in caplog.records] == [10, 10, 10, 20, 30, 40, 10]


def test_redacting_logger_skips_disabled_levels(caplog: pytest.LogCaptureFixture) -> None:
    log = RedactingLogger(logging.getLogger("polygon.tests.redact2"), KEY)
    with caplog.at_level(logging.INFO, logger="polygon.tests.redact2"):
        log.debug("hidden %s", KEY)
        log.info("shown")
    assert [record.getMessage() for record in caplog.records] == ["shown"]


# -- enums ---------------------------------------------------------------------------------------


def test_stream_cluster_members() -> None:
    assert {c.value for c in StreamCluster} == {"stocks", "options", "forex", "crypto", "indices"}
    assert len(StreamCluster) == 5


@pytest.mark.parametrize(
    "value",
    [
        f"{kind}.{domain}"
        for kind in ("socket", "delayed", "business", "launchpad")
        for domain in ("polygon.io", "massive.com")
    ],
)
def test_stream_host_has_both_families(value: str) -> None:
    assert StreamHost(value).value == value


def test_stream_host_real_time_names() -> None:
    assert StreamHost.REAL_TIME == "socket.polygon.io"
    assert StreamHost.MASSIVE_REAL_TIME == "socket.massive.com"


EVENT_CODES = {s.event_code for s in STREAMS} | {c for v in EXTRA_EVENT_CODES.values() for c in v}


@pytest.mark.parametrize("code", [*sorted(EVENT_CODES), "status"])
def test_service_prefix_covers_every_event_code(code: str) -> None:
    assert StreamServicePrefix(code) == code


@pytest.mark.parametrize("enum", [StreamCluster, StreamHost, StreamServicePrefix])
def test_enum_members_compare_equal_to_strings(enum: type) -> None:
    for member in enum:
        assert member == member.value
        assert isinstance(member, str)
        assert str(member) == member.value
        assert f"{member}" == member.value
        assert {member.value: 1}[member] == 1
        assert enum(member.value) is member


def test_service_prefix_aliases() -> None:
    assert StreamServicePrefix.STOCK_TRADES is StreamServicePrefix.OPTION_TRADES
    assert StreamServicePrefix.STOCK_TRADES == "T"
    assert StreamServicePrefix.INDICES_VALUE == "V"
    assert StreamServicePrefix.STATUS == "status"


# -- the stream table ------------------------------------------------------------------------

# The "Topics per cluster" table of PROTOCOL.md.
PROTOCOL_CODES = {
    STOCKS: {"T", "Q", "A", "AM", "LULD", "NOI", "FMV", "LV"},
    OPTIONS: {"T", "Q", "A", "AM", "FMV", "LV"},
    FOREX: {"C", "CA", "CAS", "FMV", "LV"},
    CRYPTO: {"XT", "XQ", "XL2", "XA", "XAS", "FMV", "LV"},
    INDICES: {"A", "AM", "V"},
}


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_stream_code_is_valid_for_its_clusters(stream: _channels.Stream) -> None:
    assert stream.clusters
    for cluster in stream.clusters:
        assert stream.event_code in PROTOCOL_CODES[cluster]
        assert stream.serves(cluster)
    for cluster in set(StreamCluster) - stream.clusters:
        assert not stream.serves(cluster)
    assert stream.description
    assert re.fullmatch(r"[a-z0-9_]+", stream.name)


def test_stream_names_unique() -> None:
    names = [s.name for s in STREAMS]
    assert len(names) == len(set(names)) == len(STREAMS_BY_NAME)
    assert all(STREAMS_BY_NAME[s.name] is s for s in STREAMS)


def test_one_stream_per_code_and_cluster() -> None:
    pairs = [(c, s.event_code) for s in STREAMS for c in s.clusters]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_event_codes_per_protocol(cluster: StreamCluster) -> None:
    codes = event_codes(cluster)
    assert set(codes) == PROTOCOL_CODES[cluster]
    assert len(codes) == len(set(codes))
    assert "status" not in codes


def test_fmv_served_everywhere_but_indices() -> None:
    assert STREAMS_BY_NAME["fair_market_value"].clusters == {STOCKS, OPTIONS, FOREX, CRYPTO}


# "Where each event keeps its symbol" in PROTOCOL.md.
SYMBOL_FIELDS = {
    STOCKS: {"T": "sym", "Q": "sym", "A": "sym", "AM": "sym", "LULD": "T", "NOI": "T"},
    OPTIONS: {"T": "sym", "Q": "sym", "A": "sym", "AM": "sym"},
    FOREX: {"C": "p", "CA": "pair", "CAS": "pair"},
    CRYPTO: {"XT": "pair", "XQ": "pair", "XL2": "pair", "XA": "pair", "XAS": "pair"},
    INDICES: {"A": "sym", "AM": "sym", "V": "T"},
}


@pytest.mark.parametrize(
    ("cluster", "code", "field"),
    [(c, code, f) for c, fields in SYMBOL_FIELDS.items() for code, f in fields.items()]
    + [(c, "FMV", "sym") for c in (STOCKS, OPTIONS, FOREX, CRYPTO)]
    + [(c, "LV", "sym") for c in (STOCKS, OPTIONS, FOREX, CRYPTO)],
)
def test_symbol_field(cluster: StreamCluster, code: str, field: str) -> None:
    assert symbol_field(cluster, code) == field


@pytest.mark.parametrize("cluster", list(StreamCluster))
def test_symbol_field_known_for_every_code(cluster: StreamCluster) -> None:
    for code in event_codes(cluster):
        assert symbol_field(cluster, code) in {"sym", "pair", "p", "T"}


# -- the generated methods -------------------------------------------------------------------


def test_codegen_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polygon.streaming._codegen", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=8,
        check=False,
    )
    assert result.returncode == 0, result.stderr


METHOD_NAMES = [
    name
    for stream in STREAMS
    for name in (f"subscribe_{stream.name}", f"unsubscribe_{stream.name}")
] + ["unsubscribe_indices_value"]

SUBSCRIBE_PARAMS = ["self", "symbols", "handler_function", "force_uppercase_symbols"]
UNSUBSCRIBE_PARAMS = ["self", "symbols", "force_uppercase_symbols"]
SYNC_SUBSCRIBE_PARAMS = ["self", "symbols", "force_uppercase_symbols", "handler_function"]


def test_alias_points_at_index_value() -> None:
    assert ALIASES == {"unsubscribe_indices_value": "unsubscribe_index_value"}


@pytest.mark.parametrize("cls", [AsyncStreamClient, AsyncStreamMethods, SyncStreamMethods])
@pytest.mark.parametrize("name", METHOD_NAMES)
def test_generated_method(cls: type, name: str) -> None:
    method = getattr(cls, name)
    assert method.__name__ == name
    assert method.__doc__ and method.__doc__.strip()
    params = list(inspect.signature(method).parameters)
    expected = SUBSCRIBE_PARAMS if name.startswith("subscribe_") else UNSUBSCRIBE_PARAMS
    if cls is SyncStreamMethods and name.startswith("subscribe_"):
        # The older blocking client's order: (symbols, force_uppercase_symbols).
        expected = SYNC_SUBSCRIBE_PARAMS
    assert params == expected
    signature = inspect.signature(method)
    if cls is SyncStreamMethods and name.startswith("subscribe_"):
        kind = signature.parameters["handler_function"].kind
        assert kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.parameters["symbols"].default is None
    assert signature.parameters["force_uppercase_symbols"].default is True
    if name.startswith("subscribe_"):
        assert signature.parameters["handler_function"].default is None
    is_coroutine = inspect.iscoroutinefunction(method)
    assert is_coroutine is (cls is not SyncStreamMethods)


def test_generated_method_count() -> None:
    for cls in (AsyncStreamMethods, SyncStreamMethods):
        generated = {
            name
            for name in vars(cls)
            if name.startswith(("subscribe_", "unsubscribe_")) and callable(vars(cls)[name])
        }
        assert generated == set(METHOD_NAMES)


def _reference_method_names() -> list[str]:
    text = REFERENCE_PAGE.read_text(encoding="utf-8")
    return sorted(set(re.findall(r"AsyncStreamClient\.(\w+)", text)))


def test_reference_page_names_methods() -> None:
    names = _reference_method_names()
    assert "handle_messages" in names
    assert "unsubscribe_indices_value" in names
    assert len(names) > 40


@pytest.mark.parametrize("name", _reference_method_names())
def test_reference_page_method_exists(name: str) -> None:
    assert callable(getattr(polygon.AsyncStreamClient, name, None))


@pytest.mark.parametrize("name", ["close_stream", "login", "reconnect", "handle_messages"])
def test_connection_methods_are_coroutines(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(polygon.AsyncStreamClient, name))
