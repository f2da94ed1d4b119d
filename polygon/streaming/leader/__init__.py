"""Leader election over a broker: one publisher connected, any number standing by.

The service allows one connection per cluster and key, so a fan-out publisher
is a single point of failure. Run several with the same lock: only the holder
of the lease connects; when it dies, a standby takes over once the lease
expires (at once when the holder stops cleanly and releases it).

- :class:`LeaderLock` is the lease; :class:`~polygon.streaming.leader.redis.RedisLeaderLock`
  (extra ``redis``) and :class:`~polygon.streaming.leader.nats.NatsLeaderLock`
  (extra ``nats``) keep it in a broker;
- :class:`Leadership` runs your coroutine only while the lease is held;
- :class:`Publisher` is what ``polygon-stream publish`` runs: one stream to
  sinks, fenced by the lease (:class:`FencedSink`).

See :doc:`/scaling` for the guarantees and what a takeover costs.
"""

from polygon.streaming.leader._fencing import FencedSink
from polygon.streaming.leader._lease import (
    DEFAULT_LEASE,
    LeaderLock,
    Leadership,
    LeaderState,
    LeaderTerm,
    default_lock_name,
)
from polygon.streaming.leader._publisher import Publisher

__all__ = [
    "DEFAULT_LEASE",
    "FencedSink",
    "LeaderLock",
    "LeaderState",
    "LeaderTerm",
    "Leadership",
    "Publisher",
    "default_lock_name",
    "lock_from_url",
]


def lock_from_url(url: str, name: str, *, lease: float = DEFAULT_LEASE) -> LeaderLock:
    """A lock in the broker at ``url``: ``redis://``/``rediss://`` or ``nats://``/``tls://``.

    :raises ~polygon.streaming.errors.ConfigurationError: another scheme.
    :raises ImportError: the broker's extra is not installed.
    """
    from polygon.streaming.errors import ConfigurationError

    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss"):
        from polygon.streaming.leader.redis import RedisLeaderLock

        return RedisLeaderLock(url, name, lease=lease)
    if scheme in ("nats", "tls"):
        from polygon.streaming.leader.nats import NatsLeaderLock

        return NatsLeaderLock(url, name, lease=lease)
    raise ConfigurationError(
        f"leader lock {url!r} is not a broker URL: give redis://host:port/db or nats://host:port"
    )
