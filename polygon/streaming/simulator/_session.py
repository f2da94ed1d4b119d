"""One client connection as the simulator sees it, and the rules it applies to it.

The pieces here hold no reference to the server: parsing a client message,
applying a subscribe/unsubscribe request, deciding whether an event goes to a
session, and the per-session loop that generates data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from polygon.enums import StreamCluster
from polygon.streaming._channels import event_codes, symbol_field
from polygon.streaming.simulator._data import EventFactory, default_symbols

logger = logging.getLogger("polygon.streaming.simulator")

Event = dict[str, Any]

WILDCARD = "*"
STATUS = "status"

# How often a session's generator wakes up. Short enough that a test waiting
# for data does not wait long, long enough that frames hold several events.
TICK_SECONDS = 0.05
# A session whose client reads slowly falls behind; rather than send a burst
# of everything it missed, the generator forgets backlog older than this.
MAX_BACKLOG_SECONDS = 0.5


def status_event(status: str, message: str) -> Event:
    return {"ev": STATUS, "status": status, "message": message}


class Session:
    """One client connection.

    :ivar id: increasing number, unique for the simulator's lifetime.
    :ivar cluster: the cluster named by the URL path.
    :ivar api_key: the key of the last ``auth`` attempt, or ``None``.
    :ivar authenticated: whether an ``auth`` succeeded.
    :ivar subscriptions: the topics (``"T.AAPL"``, ``"T.*"``) it receives.
    :ivar connection: the websockets server connection.
    """

    def __init__(self, session_id: int, cluster: StreamCluster, connection: ServerConnection):
        self.id = session_id
        self.cluster = cluster
        self.api_key: str | None = None
        self.authenticated = False
        self.subscriptions: set[str] = set()
        self.connection = connection
        # Set once the simulator has decided to end this session, so it no longer
        # counts as live while its close handshake runs.
        self.closing = False
        self._generator: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "authenticated" if self.authenticated else "unauthenticated"
        return f"<Session {self.id} {self.cluster.value} {state} {len(self.subscriptions)} topics>"

    @property
    def live(self) -> bool:
        return not self.closing

    def wants(self, event: Event) -> bool:
        """Whether this session is subscribed to ``event`` (status events always go)."""
        code = event.get("ev")
        if code == STATUS:
            return True
        if not isinstance(code, str):
            return False
        if f"{code}.{WILDCARD}" in self.subscriptions:
            return True
        symbol = event.get(symbol_field(self.cluster, code))
        return isinstance(symbol, str) and f"{code}.{symbol}" in self.subscriptions

    async def send_events(self, events: list[Event]) -> bool:
        """Send ``events`` as one frame; ``False`` when the connection is gone."""
        try:
            await self.connection.send(orjson.dumps(events), text=True)
        except ConnectionClosed:
            return False
        return True

    def start_generator(
        self, factory: EventFactory, rate: Callable[[], float], batch: Callable[[], int]
    ) -> None:
        if self._generator is None:
            self._generator = asyncio.create_task(
                generate(self, factory, rate, batch), name=f"simulator-session-{self.id}"
            )

    async def stop_generator(self) -> None:
        task, self._generator = self._generator, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def parse_message(raw: str | bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(message, None)`` for a JSON object, else ``(None, what is wrong)``."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, "invalid message: not JSON"
    if not isinstance(message, dict):
        return None, "invalid message: expected a JSON object with an action"
    return message, None


def is_valid_topic(cluster: StreamCluster, topic: str) -> bool:
    code, dot, symbol = topic.partition(".")
    return (
        bool(dot)
        and code in event_codes(cluster)
        and bool(symbol)
        and not any(ch.isspace() for ch in symbol)
    )


def apply_subscription(session: Session, action: str, params: object) -> list[Event]:
    """Change ``session.subscriptions`` and return the acknowledgements, one per topic."""
    if not isinstance(params, str):
        return [status_event("error", f"invalid {action} params: expected a string of topics")]
    # Surrounding spaces and empty pieces ("T.AAPL, ,Q.MSFT") are forgiven, as
    # the topics themselves are still unambiguous.
    topics = [t for t in (p.strip() for p in params.split(",")) if t]
    if not topics:
        return [status_event("error", f"invalid {action} params: no topics in {params!r}")]
    verb = "subscribed to" if action == "subscribe" else "unsubscribed to"
    acks: list[Event] = []
    for topic in topics:
        if not is_valid_topic(session.cluster, topic):
            acks.append(status_event("error", f"invalid topic for {action}: {topic}"))
            continue
        if action == "subscribe":
            session.subscriptions.add(topic)
        else:
            session.subscriptions.discard(topic)
        acks.append(status_event("success", f"{verb}: {topic}"))
    return acks


def expand_topics(cluster: StreamCluster, topics: Iterable[str]) -> list[tuple[str, str]]:
    """``(code, symbol)`` pairs to generate for; ``EV.*`` means the default universe."""
    pairs: list[tuple[str, str]] = []
    for topic in sorted(topics):
        code, _, symbol = topic.partition(".")
        if symbol == WILDCARD:
            pairs.extend((code, s) for s in default_symbols(cluster))
        else:
            pairs.append((code, symbol))
    return list(dict.fromkeys(pairs))


async def generate(
    session: Session,
    factory: EventFactory,
    rate: Callable[[], float],
    batch: Callable[[], int],
) -> None:
    """Send about ``rate()`` events a second, spread over the session's topics.

    ``rate`` and ``batch`` are read on every tick so they can change at run time;
    a rate of zero (or a stalled simulator, which reports zero) idles the loop.
    """
    loop = asyncio.get_running_loop()
    budget = 0.0
    cursor = 0
    last = loop.time()
    try:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = loop.time()
            elapsed, last = now - last, now
            per_second = rate()
            pairs = expand_topics(session.cluster, session.subscriptions)
            if per_second <= 0 or not pairs:
                budget = 0.0
                continue
            budget = min(budget + per_second * elapsed, per_second * MAX_BACKLOG_SECONDS)
            count = int(budget)
            budget -= count
            events = []
            for _ in range(count):
                code, symbol = pairs[cursor % len(pairs)]
                cursor += 1
                events.append(factory.make(code, symbol))
            size = max(batch(), 1)
            for start in range(0, len(events), size):
                if not await session.send_events(events[start : start + size]):
                    return
    except asyncio.CancelledError:
        raise
    except Exception:
        # A bug here must not take the session down silently with it.
        logger.exception("data generation failed for session %d", session.id)
