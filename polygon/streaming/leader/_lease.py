"""A lease on one name in a broker, and the election loop that holds it.

Only the holder of the lease may keep a connection to the market-data service,
so two publishers never hold connections at once and the service never evicts
one of them. The broker does the mutual exclusion (a Redis key with a TTL that
only its owner may extend or delete, or a NATS JetStream key-value entry
updated by revision); this module only decides *when* to ask and when to stop.

Why the holder can never overlap the next one: every renewal is timed from the
moment it was *sent*. The broker starts the lease's time-to-live no earlier than
that moment, so the broker's copy cannot expire before ``sent + lease``. The
holder treats its lease as valid only until ``sent + lease * VALID_SHARE`` and
steps down (closes its connection, discards what its sinks still buffer) by
then, which leaves ``lease * (1 - VALID_SHARE)`` for the connection to close
before anybody else can acquire the lease. Clocks are not compared across
machines: only durations on each one, so a skewed wall clock does no harm.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from enum import Enum

from polygon.streaming.errors import ConfigurationError

logger = logging.getLogger("polygon.streaming.leader")

DEFAULT_LEASE = 5.0
# The holder counts its lease as valid for this share of the lease after each
# renewal was sent; the rest is the margin for closing the connection.
VALID_SHARE = 0.6
# Renewals per lease: a holder tries this many times before its lease ends.
RENEWALS_PER_LEASE = 5
# How long a standby waits between two tries at a free lease, at most.
MAX_POLL_INTERVAL = 0.25
# Shorter leases leave too little time to renew over a real network.
MIN_LEASE = 0.5


class LeaderState(str, Enum):
    """Where a :class:`Leadership` stands."""

    STANDBY = "standby"
    LEADER = "leader"
    STEPPING_DOWN = "stepping down"
    STOPPED = "stopped"


def check_lease(lease: float) -> float:
    """``lease`` as a float, or :class:`ConfigurationError` naming the bad value."""
    if (
        isinstance(lease, bool)
        or not isinstance(lease, (int, float))
        or not math.isfinite(lease)
        or lease < MIN_LEASE
    ):
        raise ConfigurationError(f"lease must be a number of seconds >= {MIN_LEASE}, got {lease!r}")
    return float(lease)


def default_lock_name(cluster: str, api_key: str) -> str:
    """The lock name for publishers of one cluster on one key.

    The service allows one connection per cluster and key, so that is what
    the lock guards. The key itself never leaves this process: only the first
    16 hex digits of its SHA-256 appear in the name.
    """
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return f"{cluster}-{digest}"


def new_owner_token() -> str:
    """A token naming this holder: the host and process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class LeaderLock(abc.ABC):
    """A lease on ``name`` in a broker, held by at most one owner at a time.

    Subclasses talk to one broker; every method is one short round trip.
    :class:`Leadership` calls them with timeouts, so they may block on a
    broker that stopped answering.

    :param name: what the lease is for; publishers that must not run together
        use the same name (see :func:`default_lock_name`).
    :param lease: seconds the broker keeps the lease after each renewal.
    :ivar owner: this holder's token, stored as the lease's value.
    """

    def __init__(self, name: str, *, lease: float = DEFAULT_LEASE) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"the lock name must be a non-empty string, got {name!r}")
        self.name = name
        self.lease = check_lease(lease)
        self.owner = new_owner_token()

    @abc.abstractmethod
    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True if this owner now holds it."""

    @abc.abstractmethod
    async def renew(self) -> bool:
        """Extend the lease if this owner still holds it; False if it does not."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Give the lease up if this owner holds it, so a standby takes over at once."""

    @abc.abstractmethod
    async def holder(self) -> str | None:
        """The token of whoever holds the lease now, or None."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection to the broker; must not raise."""


class LeaderTerm:
    """One term of leadership, handed to the leader's work.

    :ivar number: 1 for the first term this :class:`Leadership` won, and so on.
    :ivar lost: set when the lease was lost (not renewed in time, or taken):
        the work must publish nothing more, not even what it has buffered.
    """

    def __init__(self, number: int, valid_until: float) -> None:
        self.number = number
        self.valid_until = valid_until
        self.lost = asyncio.Event()

    def remaining(self) -> float:
        """Seconds the lease is still certainly ours (0 once it is not)."""
        if self.lost.is_set():
            return 0.0
        return max(0.0, self.valid_until - time.monotonic())

    def is_valid(self) -> bool:
        """True while the lease is certainly ours."""
        return self.remaining() > 0.0


LeaderWork = Callable[[LeaderTerm], Awaitable[object]]
StateListener = Callable[[LeaderState, str], object]


class Leadership:
    """Runs ``work`` only while ``lock`` is held; waits as a standby otherwise.

    :param lock: a :class:`LeaderLock` (Redis or NATS).
    :param on_state: called as ``on_state(state, reason)`` at every change of
        state (standby, leader, stepping down, stopped), besides an INFO log line.
    :param stop_grace: seconds the work may take to finish after a clean stop
        (it keeps the lease meanwhile, so its sinks can flush).
    """

    def __init__(
        self,
        lock: LeaderLock,
        *,
        on_state: StateListener | None = None,
        stop_grace: float = 5.0,
    ) -> None:
        self.lock = lock
        self.on_state = on_state
        self.stop_grace = stop_grace
        self.state = LeaderState.STANDBY
        self.terms = 0
        lease = lock.lease
        self.renew_interval = lease / RENEWALS_PER_LEASE
        self.poll_interval = min(MAX_POLL_INTERVAL, lease / 10)
        self.valid_for = lease * VALID_SHARE

    async def run(self, work: LeaderWork) -> None:
        """Stand by, and run ``work`` whenever the lease is ours, until stopped.

        ``work(term)`` runs for one term: it is cancelled when the lease is
        lost (``term.lost`` is set first), and run again at the next term.
        When it returns, the lease is released and :meth:`run` returns; when it
        raises, the lease is released and the error propagates.

        Cancelling :meth:`run` is the clean stop: the work is cancelled while
        the lease is still held (so it can flush for up to ``stop_grace``
        seconds), then the lease is released, so a standby takes over at once.

        :raises ~polygon.streaming.errors.ConfigurationError: the lock's
            broker refuses the lock's settings (e.g. another lease length).
        """
        self._set_state(LeaderState.STANDBY, "waiting for the lease")
        try:
            while True:
                valid_until = await self._acquire()
                self.terms += 1
                term = LeaderTerm(self.terms, valid_until)
                self._set_state(LeaderState.LEADER, f"holding the lease (term {term.number})")
                if await self._lead(term, work):
                    return
        finally:
            await self._quietly(self.lock.close(), "closing the lock")
            self._set_state(LeaderState.STOPPED, "stopped")

    async def _acquire(self) -> float:
        """Poll until the lease is ours; returns until when it is certainly valid."""
        failing = False
        while True:
            sent = time.monotonic()
            try:
                got = await asyncio.wait_for(self.lock.try_acquire(), self.renew_interval)
            except ConfigurationError:
                raise
            except (asyncio.TimeoutError, Exception) as exc:
                if not failing:
                    logger.warning("cannot reach the lock's broker: %s", _describe(exc))
                failing = True
            else:
                if failing:
                    logger.info("the lock's broker answers again")
                failing = False
                if got:
                    return sent + self.valid_for
            await asyncio.sleep(self.poll_interval)

    async def _lead(self, term: LeaderTerm, work: LeaderWork) -> bool:
        """Run one term. True: the work ended (run is over); False: the lease was lost."""
        task = asyncio.ensure_future(work(term))
        try:
            lost_because = await self._keep(term, task)
        except asyncio.CancelledError:
            # A clean stop: the work finishes while the lease is ours, then it is freed.
            await self._finish(task, min(self.stop_grace, term.remaining()))
            await self._quietly(self.lock.release(), "releasing the lease")
            raise
        if lost_because is None:
            await self._quietly(self.lock.release(), "releasing the lease")
            task.result()  # the work's own error, if it failed
            return True
        term.lost.set()
        self._set_state(LeaderState.STEPPING_DOWN, lost_because)
        await self._finish(task, self.lock.lease * (1 - VALID_SHARE))
        # If the broker still names us (a renewal timed out), free it for the others.
        await self._quietly(self.lock.release(), "releasing the lease")
        self._set_state(LeaderState.STANDBY, "waiting for the lease")
        return False

    async def _keep(self, term: LeaderTerm, task: asyncio.Future[object]) -> str | None:
        """Renew the lease while the work runs: None when the work ends, else why it must."""
        while True:
            next_renewal = time.monotonic() + self.renew_interval
            while (wait := min(next_renewal, term.valid_until) - time.monotonic()) > 0:
                done, _ = await asyncio.wait({task}, timeout=wait)
                if done:
                    return None
            if time.monotonic() >= term.valid_until:
                return "the lease could not be renewed in time"
            sent = time.monotonic()
            try:
                renewed = await asyncio.wait_for(self.lock.renew(), term.valid_until - sent)
            except (asyncio.TimeoutError, Exception) as exc:
                logger.warning("renewing the lease failed: %s", _describe(exc))
                continue
            if not renewed:
                return "the lease was taken by another holder"
            term.valid_until = sent + self.valid_for

    async def _finish(self, task: asyncio.Future[object], within: float) -> None:
        if not task.done():
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=max(within, 0.001))
        if not done:
            logger.error("the leader's work did not stop within %.1f s", within)
        elif not task.cancelled() and task.exception() is not None:
            logger.debug("the leader's work ended with %s", _describe(task.exception()))

    async def _quietly(self, call: Awaitable[object], what: str) -> None:
        try:
            await asyncio.wait_for(call, self.renew_interval)
        except (asyncio.TimeoutError, Exception) as exc:
            logger.debug("%s failed: %s", what, _describe(exc))

    def _set_state(self, state: LeaderState, reason: str) -> None:
        self.state = state
        logger.info("%s: %s (lock %s)", state.value, reason, self.lock.name)
        if self.on_state is not None:
            with contextlib.suppress(Exception):
                self.on_state(state, reason)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
