"""One client connection as the simulator sees it, and the rules it applies to it.

The pieces here hold no reference to the server: parsing a client message,
applying a subscribe/unsubscribe request, deciding whether an event goes to a
session, and the per-session loop that sends it the generated data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from polygon.enums import StreamCluster
from polygon.streaming._channels import event_codes, symbol_field

logger = logging.getLogger("polygon.streaming.simulator")

Event = dict[str, Any]

WILDCARD = "*"
STATUS = "status"

# A session whose client reads slowly falls behind; rather than let its backlog
# grow without bound, the feed's batches for it are dropped past this many
# (about half a second of data).
MAX_PENDING_BATCHES = 10


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
    :ivar dropped_events: generated events dropped because the client read too
        slowly (its backlog passed about half a second of data).
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
        self.dropped_events = 0
        self._outbox: asyncio.Queue[list[Event]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

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

    def start_sender(self, batch: Callable[[], int]) -> None:
        """Start sending what the feed :meth:`offer` s, in frames of at most ``batch()`` events."""
        if self._sender is None:
            self._sender = asyncio.create_task(
                self._send_generated(batch), name=f"simulator-session-{self.id}"
            )

    async def stop_sender(self) -> None:
        task, self._sender = self._sender, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def offer(self, events: list[Event]) -> bool:
        """Queue generated events for this session; ``False`` if its backlog is full."""
        if self._sender is None:
            return False
        if self._outbox.qsize() >= MAX_PENDING_BATCHES:
            self.dropped_events += len(events)
            logger.debug("session %d reads too slowly: %d events dropped", self.id, len(events))
            return False
        self._outbox.put_nowait(events)
        return True

    async def _send_generated(self, batch: Callable[[], int]) -> None:
        try:
            while True:
                events = await self._outbox.get()
                size = max(batch(), 1)
                for start in range(0, len(events), size):
                    if not await self.send_events(events[start : start + size]):
                        return
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug here must not take the session down silently with it.
            logger.exception("sending data failed for session %d", self.id)


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
