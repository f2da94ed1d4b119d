"""The leader lock on Redis: a key holding the owner's token, with a TTL.

Acquiring is ``SET key token NX PX lease``; renewing and releasing are Lua
scripts that act only if the key still holds this owner's token, so nobody
can extend or delete a lease they do not hold. Needs the ``redis`` extra.
"""

from __future__ import annotations

import contextlib
from typing import Any

from polygon.streaming.leader._lease import DEFAULT_LEASE, LeaderLock

try:
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the Redis leader lock needs redis-py: pip install 'polygon-streaming[redis]'"
    ) from exc

KEY_PREFIX = "polygon-stream:leader:"

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeaderLock(LeaderLock):
    """A lease on ``name`` in the Redis server at ``url``.

    :param url: ``redis://host:port/db`` (or ``rediss://``).
    :param name: the lock's name; the key is ``polygon-stream:leader:<name>``.
    :param lease: seconds the lease lasts after each renewal.
    """

    def __init__(self, url: str, name: str, *, lease: float = DEFAULT_LEASE) -> None:
        super().__init__(name, lease=lease)
        self.url = url
        self.key = KEY_PREFIX + name
        self._client: Any = None

    def __repr__(self) -> str:
        return f"<RedisLeaderLock {self.key} lease={self.lease}s>"

    def _redis(self) -> Any:
        if self._client is None:
            # A call that hangs longer than a renewal interval is a failed one.
            timeout = self.lease / 5
            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        return self._client

    def _millis(self) -> int:
        return max(1, round(self.lease * 1000))

    async def try_acquire(self) -> bool:
        done = await self._redis().set(self.key, self.owner, nx=True, px=self._millis())
        return bool(done)

    async def renew(self) -> bool:
        result = await self._redis().eval(_RENEW, 1, self.key, self.owner, self._millis())
        return bool(result)

    async def release(self) -> None:
        await self._redis().eval(_RELEASE, 1, self.key, self.owner)

    async def holder(self) -> str | None:
        value = await self._redis().get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
