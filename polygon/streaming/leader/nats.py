"""The leader lock on NATS: an entry in a JetStream key-value bucket.

The bucket's TTL is the lease: an entry not written again within it is
removed. Acquiring creates the entry only if it does not exist; renewing and
releasing write or delete it only at the revision this owner last wrote
(compare-and-set), so nobody can extend or delete a lease they do not hold.
Needs the ``nats`` extra and a server started with JetStream (``-js``).

Every publisher sharing a bucket must use the same lease: the bucket's TTL is
set when it is created, and a lock whose lease differs refuses to start.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

from polygon.streaming.errors import ConfigurationError
from polygon.streaming.leader._lease import DEFAULT_LEASE, LeaderLock

logger = logging.getLogger("polygon.streaming.leader")

try:
    import nats
    from nats.js.api import KeyValueConfig
    from nats.js.errors import (
        BucketNotFoundError,
        KeyDeletedError,
        KeyNotFoundError,
        KeyWrongLastSequenceError,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the NATS leader lock needs nats-py: pip install 'polygon-streaming[nats]'"
    ) from exc

DEFAULT_BUCKET = "polygon_leader"


async def _ignore_error(error: Exception) -> None:
    logger.debug("the lock's NATS connection: %r", error)


class NatsLeaderLock(LeaderLock):
    """A lease on ``name`` in a JetStream key-value bucket of the server at ``url``.

    :param url: ``nats://host:port`` (or ``tls://``).
    :param name: the lock's name: the entry's key (letters, digits, ``-_.=/``).
    :param lease: seconds the lease lasts after each renewal: the bucket's TTL.
    :param bucket: the key-value bucket (created if missing).
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        lease: float = DEFAULT_LEASE,
        bucket: str = DEFAULT_BUCKET,
    ) -> None:
        super().__init__(name, lease=lease)
        self.url = url
        self.bucket = bucket
        self._nc: Any = None
        self._kv: Any = None
        self._revision = 0

    def __repr__(self) -> str:
        return f"<NatsLeaderLock {self.bucket}/{self.name} lease={self.lease}s>"

    async def _store(self) -> Any:
        if self._kv is None:
            timeout = self.lease / 5
            nc = await nats.connect(
                self.url,
                connect_timeout=max(1, math.ceil(timeout)),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                # The lock reports its own failures; nats-py's default logs tracebacks.
                error_cb=_ignore_error,
            )
            try:
                self._kv = await self._bucket(nc.jetstream(timeout=timeout))
            except BaseException:
                await nc.close()
                raise
            self._nc = nc
        return self._kv

    async def _bucket(self, js: Any) -> Any:
        try:
            kv = await js.key_value(self.bucket)
        except BucketNotFoundError:
            return await js.create_key_value(
                KeyValueConfig(bucket=self.bucket, history=1, ttl=self.lease)
            )
        ttl = (await kv.status()).ttl
        if ttl is None or not math.isclose(ttl, self.lease, rel_tol=1e-3):
            raise ConfigurationError(
                f"the NATS bucket {self.bucket!r} keeps leases for {ttl} s, not {self.lease} s: "
                "give every publisher of a lock the same lease, or use another bucket"
            )
        return kv

    async def try_acquire(self) -> bool:
        try:
            self._revision = await self._call("create", self.name, self.owner.encode())
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            # KeyNotFoundError: the entry expired while create() looked at it; the next try wins.
            return False
        return True

    async def renew(self) -> bool:
        try:
            self._revision = await self._call(
                "update", self.name, self.owner.encode(), last=self._revision
            )
        except KeyWrongLastSequenceError:
            return False
        return True

    async def release(self) -> None:
        if not self._revision:
            return
        # KeyWrongLastSequenceError: somebody else holds it now, theirs to keep.
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._call("delete", self.name, last=self._revision)
        self._revision = 0

    async def holder(self) -> str | None:
        try:
            entry = await self._call("get", self.name)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        value = entry.value
        return value.decode() if isinstance(value, bytes) and value else None

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One key-value call; a broken connection is dropped so the next call opens one."""
        kv = await self._store()
        try:
            return await getattr(kv, method)(*args, **kwargs)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            raise
        except Exception:
            await self.close()
            raise

    async def close(self) -> None:
        nc, self._nc, self._kv = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
