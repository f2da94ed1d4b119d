"""The desired subscriptions: the one source of truth for what the server should send.

Changed by subscribe and unsubscribe calls at any time, connected or not, and
sent whole after every successful authentication. It is never rebuilt from the
server's acknowledgements: a connection that drops before its acknowledgements
arrive must not lose anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from polygon.enums import StreamCluster
from polygon.streaming import _protocol as proto
from polygon.streaming._channels import STREAMS_BY_NAME, Stream
from polygon.streaming.errors import ArgumentTypeError, StreamNotAvailableError


class DesiredSubscriptions:
    """An insertion-ordered set of topics (``"T.AAPL"``), safe to change from any thread."""

    def __init__(self) -> None:
        self._topics: dict[str, None] = {}
        self._lock = threading.Lock()

    def add(self, topics: Iterable[str]) -> list[str]:
        """Add topics; return those that were not there yet, in order."""
        with self._lock:
            new = [t for t in dict.fromkeys(topics) if t not in self._topics]
            for topic in new:
                self._topics[topic] = None
            return new

    def remove(self, topics: Iterable[str]) -> list[str]:
        """Remove topics; return those that were there, in order."""
        with self._lock:
            gone = [t for t in dict.fromkeys(topics) if t in self._topics]
            for topic in gone:
                del self._topics[topic]
            return gone

    def topics(self) -> list[str]:
        """A snapshot, in the order the topics were first asked for."""
        with self._lock:
            return list(self._topics)

    def __contains__(self, topic: object) -> bool:
        return topic in self._topics

    def __len__(self) -> int:
        return len(self._topics)


@dataclass(frozen=True)
class Request:
    """One subscribe/unsubscribe call, validated: the topics it names."""

    action: str
    stream: Stream
    topics: list[str]
    raw: str | None


@dataclass(frozen=True)
class Change:
    """What a request puts on the wire, once recorded in the desired set."""

    action: str
    topics: list[str]
    raw: str | None

    @property
    def is_empty(self) -> bool:
        return not self.topics and self.raw is None


def stream_for(name: str, cluster: StreamCluster) -> Stream:
    """The stream called ``name``; an error if ``cluster`` does not serve it."""
    stream = STREAMS_BY_NAME[name]
    if not stream.serves(cluster):
        served = ", ".join(sorted(c.value for c in stream.clusters))
        raise StreamNotAvailableError(
            f"{name} is not served on the {cluster.value} cluster (only on: {served})"
        )
    return stream


def plan_request(
    action: str,
    name: str,
    cluster: StreamCluster,
    symbols: object,
    force_uppercase: bool,
) -> Request:
    """Validate a call; raises before anything is recorded when it is bad."""
    if not isinstance(force_uppercase, bool):
        # Any object is truthy or falsy; a string such as "no" would silently mean True.
        raise ArgumentTypeError(
            f"force_uppercase_symbols must be True or False, got {force_uppercase!r}"
        )
    stream = stream_for(name, cluster)
    topics, raw = proto.topics_for(stream.event_code, cluster, symbols, force_uppercase)
    return Request(action, stream, topics, raw)


def commit(desired: DesiredSubscriptions, request: Request) -> Change:
    """Record a request in the desired set and say what to send.

    A subscribe sends only topics not already desired (a raw string is sent as
    given); an unsubscribe sends every topic named, since the intent is
    explicit and a repeat is harmless.
    """
    if request.action == "subscribe":
        new = desired.add(request.topics)
        topics = new if request.raw is None else request.topics
        return Change(request.action, topics, request.raw)
    desired.remove(request.topics)
    return Change(request.action, request.topics, request.raw)
