"""Per-deployment limits (rpm, tpm, parallel requests) enforced before sending, shared by every process.

Calls queue rather than fail. The queue lives in the store (``rate_waiters``), ordered by
``priority`` (higher first) and then arrival, so every process on the store sees one queue:

- **rpm / tpm** are a GCRA ("virtual scheduling"): a deployment has a theoretical
  arrival time for requests and one for tokens. The head of the queue takes the slot
  when it is due; the next slot is ``60 / rpm`` seconds later (tokens: ``60 / tpm``
  seconds each). A waiter woken a little late keeps the schedule (up to half a slot),
  so wake-up jitter does not leak capacity.
- **max_parallel** is a lease per request in flight (``rate_leases``); a lease expires
  on its own after the deployment's timeout, so a crashed process cannot hold one.

Every check and take is one ``BEGIN IMMEDIATE`` transaction. Waiters sleep until their
turn is due, and a waiter in this process is woken at once when a lease is freed or the
head moves on; waiters in other processes re-check on a short poll. A turn the caller
cannot get within its maximum wait is given up (``acquire`` returns ``None``) and the
router fails over to the next deployment.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field

from workbench.store import Store

POLL_S = 0.05  # the head of a queue blocked on leases held by another process re-checks this often
MAX_POLL_S = 1.0  # the longest sleep of a waiter far back in the queue
LEASE_GRACE_S = 60.0  # a lease outlives its request's timeout by this much before it lapses


@dataclass(eq=False)
class Ticket:
    """One request's place in a deployment's queue."""

    deployment: str
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    tokens: int  # what the request counts against tpm (prompt + answer budget)
    priority: int
    max_wait_s: float
    lease_s: float
    seq: int = 0
    waiter_id: int | None = None
    lease_id: int | None = None
    shared_lease: str | None = None  # its lease in the team's Redis (team/limits.py)
    enqueued: float = 0.0
    waited_s: float = 0.0
    _wake: threading.Event | asyncio.Event | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    @property
    def paced(self) -> bool:
        return bool(self.rpm or self.tpm)


class RateLimiter:
    """Queues, slots and leases for deployments that set ``rpm``, ``tpm`` or ``max_parallel``."""

    def __init__(self, store: Store, clock=time.time):
        self.store, self._clock = store, clock
        self._local: dict[str, list[Ticket]] = {}  # waiters of this process, by deployment
        self._local_lock = threading.Lock()
        self._seq = itertools.count()

    def ticket(
        self,
        deployment: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        max_parallel: int | None = None,
        tokens: int = 0,
        priority: int = 0,
        max_wait_s: float = 60.0,
        lease_s: float = 60.0,
    ) -> Ticket:
        """A ticket for one request (hand it to :meth:`acquire` / :meth:`aacquire`, then :meth:`release`)."""
        return Ticket(
            deployment,
            rpm,
            tpm,
            max_parallel,
            tokens,
            priority,
            max_wait_s,
            lease_s + LEASE_GRACE_S,
            seq=next(self._seq),
        )

    # ---- waiting (sync and async share try_acquire) ---------------------------------

    def acquire(self, ticket: Ticket) -> float | None:
        """Block until the request may be sent; seconds waited, or ``None`` if not within its max wait."""
        ticket._wake = threading.Event()
        self._register(ticket)
        try:
            while True:
                ticket._wake.clear()
                wait = self.try_acquire(ticket)
                if wait is None or wait == 0.0:
                    return None if wait is None else ticket.waited_s
                ticket._wake.wait(wait)
        except BaseException:
            self.release(ticket)
            raise
        finally:
            self._unregister(ticket)

    async def aacquire(self, ticket: Ticket) -> float | None:
        """Async twin of :meth:`acquire` (the event loop keeps running while it waits)."""
        ticket._wake, ticket._loop = asyncio.Event(), asyncio.get_running_loop()
        self._register(ticket)
        try:
            while True:
                ticket._wake.clear()
                wait = self.try_acquire(ticket)
                if wait is None or wait == 0.0:
                    return None if wait is None else ticket.waited_s
                try:
                    await asyncio.wait_for(ticket._wake.wait(), wait)
                except TimeoutError:
                    pass
        except BaseException:
            self.release(ticket)
            raise
        finally:
            self._unregister(ticket)

    def try_acquire(self, ticket: Ticket) -> float | None:
        """One check: ``0.0`` taken, ``> 0`` seconds to sleep before checking again, ``None`` given up."""
        with self.store.transaction() as conn:
            now = self._clock()
            if ticket.waiter_id is None:
                ticket.enqueued = now
            conn.execute("DELETE FROM rate_waiters WHERE deployment = ? AND expires < ?", (ticket.deployment, now))
            ahead = self._ahead(conn, ticket)
            row = conn.execute(
                "SELECT tat_req, tat_tok FROM rate_state WHERE deployment = ?", (ticket.deployment,)
            ).fetchone()
            tat_req, tat_tok = row if row else (now, now)
            due = max(tat_req if ticket.rpm else now, tat_tok if ticket.tpm else now)
            free = self._free_leases(conn, ticket, now)
            if ahead < free and (ahead == 0 or not ticket.paced) and due <= now + 1e-6:
                self._take(conn, ticket, now, tat_req, tat_tok)
                ticket.waited_s = now - ticket.enqueued
                taken = True
            else:
                taken = False
                sleep = self._sleep(ticket, ahead, free, due - now)
                waited = now - ticket.enqueued
                if ticket.waiter_id is None and ticket.paced and waited + sleep > ticket.max_wait_s:
                    return None  # its turn is further away than it may wait: not queued at all
                if waited >= ticket.max_wait_s:
                    self._dequeue(conn, ticket)
                    return None
                if ticket.waiter_id is None:
                    ticket.waiter_id = conn.execute(
                        "INSERT INTO rate_waiters (deployment, priority, enqueued, expires) VALUES (?, ?, ?, ?)",
                        (ticket.deployment, ticket.priority, now, now + ticket.max_wait_s + 1.0),
                    ).lastrowid
        if taken:
            self._ring(ticket.deployment, ticket)  # the next in line may be able to go too
            return 0.0
        return max(0.001, min(sleep, ticket.max_wait_s - waited))

    def release(self, ticket: Ticket) -> None:
        """Give back the request's lease (or its place in the queue); wake the next waiter here."""
        if ticket.lease_id is None and ticket.waiter_id is None:
            return
        with self.store.transaction() as conn:
            if ticket.lease_id is not None:
                conn.execute("DELETE FROM rate_leases WHERE id = ?", (ticket.lease_id,))
                ticket.lease_id = None
            self._dequeue(conn, ticket)
        self._ring(ticket.deployment, ticket)

    def queues(self) -> dict[str, dict[str, int]]:
        """Per deployment: calls ``waiting`` in its queue and requests ``in_flight`` (every process)."""
        now = self._clock()
        state: dict[str, dict[str, int]] = {}
        with self.store.lock:
            for table, key in (("rate_waiters", "waiting"), ("rate_leases", "in_flight")):
                sql = f"SELECT deployment, COUNT(*) FROM {table} WHERE expires >= ? GROUP BY deployment"
                for deployment, n in self.store.conn.execute(sql, (now,)).fetchall():
                    state.setdefault(deployment, {"waiting": 0, "in_flight": 0})[key] = n
        return state

    # ---- inside the transaction -----------------------------------------------------

    @staticmethod
    def _ahead(conn, ticket: Ticket) -> int:
        """Waiters served before this one: higher priority, or the same priority and queued earlier."""
        if ticket.waiter_id is None:
            sql = "SELECT COUNT(*) FROM rate_waiters WHERE deployment = ? AND priority >= ?"
            return conn.execute(sql, (ticket.deployment, ticket.priority)).fetchone()[0]
        sql = (
            "SELECT COUNT(*) FROM rate_waiters WHERE deployment = ? AND id != ? "
            "AND (priority > ? OR (priority = ? AND id < ?))"
        )
        return conn.execute(
            sql, (ticket.deployment, ticket.waiter_id, ticket.priority, ticket.priority, ticket.waiter_id)
        ).fetchone()[0]

    @staticmethod
    def _free_leases(conn, ticket: Ticket, now: float) -> float:
        if not ticket.max_parallel:
            return float("inf")
        conn.execute("DELETE FROM rate_leases WHERE deployment = ? AND expires < ?", (ticket.deployment, now))
        held = conn.execute("SELECT COUNT(*) FROM rate_leases WHERE deployment = ?", (ticket.deployment,)).fetchone()
        return ticket.max_parallel - held[0]

    @staticmethod
    def _take(conn, ticket: Ticket, now: float, tat_req: float, tat_tok: float) -> None:
        if ticket.paced:
            # Late by up to half a slot (a sleeper's wake-up jitter): keep the schedule, not the delay.
            slack = min(30.0 / ticket.rpm, 0.05) if ticket.rpm else 0.0
            new_req = max(tat_req, now - slack) + 60.0 / ticket.rpm if ticket.rpm else tat_req
            new_tok = max(tat_tok, now) + ticket.tokens * 60.0 / ticket.tpm if ticket.tpm else tat_tok
            conn.execute(
                "INSERT INTO rate_state (deployment, tat_req, tat_tok) VALUES (?, ?, ?) ON CONFLICT(deployment) "
                "DO UPDATE SET tat_req = excluded.tat_req, tat_tok = excluded.tat_tok",
                (ticket.deployment, new_req, new_tok),
            )
        if ticket.max_parallel:
            ticket.lease_id = conn.execute(
                "INSERT INTO rate_leases (deployment, expires) VALUES (?, ?)", (ticket.deployment, now + ticket.lease_s)
            ).lastrowid
        RateLimiter._dequeue(conn, ticket)

    @staticmethod
    def _dequeue(conn, ticket: Ticket) -> None:
        if ticket.waiter_id is not None:
            conn.execute("DELETE FROM rate_waiters WHERE id = ?", (ticket.waiter_id,))
            ticket.waiter_id = None

    @staticmethod
    def _sleep(ticket: Ticket, ahead: int, free: float, until_due: float) -> float:
        """How long to sleep before checking again (a local release or a move of the head wakes it sooner)."""
        if ticket.paced:
            interval = max(
                60.0 / ticket.rpm if ticket.rpm else 0.0, ticket.tokens * 60.0 / ticket.tpm if ticket.tpm else 0.0
            )
            sleep = max(until_due, 0.0) + ahead * interval
            return min(sleep, POLL_S) if free <= ahead else sleep
        # Waiting on leases: a release in this process wakes the best-placed waiter at once; the poll is only for
        # releases in other processes, and a waiter with n ahead of it cannot go before n of them go.
        return min(POLL_S * (1 + ahead), MAX_POLL_S)

    # ---- waking waiters of this process ---------------------------------------------

    def _register(self, ticket: Ticket) -> None:
        with self._local_lock:
            self._local.setdefault(ticket.deployment, []).append(ticket)

    def _unregister(self, ticket: Ticket) -> None:
        with self._local_lock:
            waiters = self._local.get(ticket.deployment, [])
            if ticket in waiters:
                waiters.remove(ticket)

    def _ring(self, deployment: str, ringer: Ticket) -> None:
        """Wake the best-placed waiter of this process for ``deployment`` (other than the ringer)."""
        with self._local_lock:
            waiters = [t for t in self._local.get(deployment, ()) if t is not ringer]
            if not waiters:
                return
            best = min(waiters, key=lambda t: (-t.priority, t.waiter_id if t.waiter_id is not None else 1 << 62, t.seq))
        wake = best._wake
        if isinstance(wake, asyncio.Event) and best._loop is not None:
            try:
                best._loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # its loop has closed
                pass
        elif wake is not None:
            wake.set()
