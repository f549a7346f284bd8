"""Rate limits and breakers shared by a team through Redis.

**Rate limits** (a deployment's ``rpm``, ``tpm``, ``max_parallel``): one Lua script gives a
request its slot on the deployment's schedule (GCRA: the next slot is ``60 / rpm`` seconds
after the last one handed out, by the server's clock), or says it is further away than the
request may wait; the request sleeps until its slot, then takes a lease if the deployment
caps requests in flight (a sorted set of leases that lapse on their own after the request's
timeout). Slots are handed out in the order requests reach Redis, from every machine.

**Breakers**: consecutive failures, when the breaker opened and who holds the half-open
probe live in one hash per endpoint, so a deployment found dead by one analyst is skipped
by all of them until one probe succeeds.

Redis down: rate limits fall back to this store's own limiter with a warning
(``limits_when_down = "local"``), or refuse (``"closed"``: a deployment with limits is
skipped, as when its slot is too far away). Breakers always fall back to this process's
own (health seen here still counts; not knowing the team's must not stop every call).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

from workbench.limits.ratelimit import RateLimiter, Ticket
from workbench.serving.breaker import _NOT_HEALTH, Breakers
from workbench.store import Store
from workbench.team.state import TeamState, Unreachable

LEASE_POLL_S = 0.02  # a request waiting for a lease held on another machine checks again this often


class SharedRateLimiter(RateLimiter):
    """:class:`RateLimiter` with the schedule and the leases in the team's Redis."""

    def __init__(self, store: Store, team: TeamState):
        super().__init__(store)
        self.team = team

    def acquire(self, ticket: Ticket) -> float | None:
        """Block until the request may be sent; seconds waited, or ``None`` if not within its max wait."""
        start = time.monotonic()
        try:
            for sleep in self._steps(ticket, start):
                time.sleep(sleep)
        except Unreachable as exc:
            return super().acquire(ticket) if self._fallback(ticket, exc) else None
        return ticket.waited_s if ticket.waited_s >= 0 else None

    async def aacquire(self, ticket: Ticket) -> float | None:
        """Async twin of :meth:`acquire` (each step is one short Redis round trip; the waits are awaited)."""
        start = time.monotonic()
        try:
            for sleep in self._steps(ticket, start):
                await asyncio.sleep(sleep)
        except Unreachable as exc:
            return await super().aacquire(ticket) if self._fallback(ticket, exc) else None
        return ticket.waited_s if ticket.waited_s >= 0 else None

    def _fallback(self, ticket: Ticket, exc: Unreachable) -> bool:
        if self.team.settings.limits_when_down == "closed":
            return False
        self.team.fallback("rate limits", exc)
        return True

    def _steps(self, ticket: Ticket, start: float) -> Iterator[float]:
        """The sleeps before the request may go; ``ticket.waited_s`` is then what it waited (-1: given up)."""
        ticket.waited_s = -1.0
        if ticket.paced:
            wait_ms = self.team.run(
                "pace",
                _PACE,
                [self.team.prefix + "rate:" + ticket.deployment],
                [ticket.rpm or 0, ticket.tpm or 0, ticket.tokens, int(ticket.max_wait_s * 1000)],
            )
            if wait_ms < 0:
                return  # its slot is further away than it may wait
            if wait_ms:
                yield wait_ms / 1000
        if ticket.max_parallel:
            lease = uuid.uuid4().hex
            while not self.team.run(
                "lease",
                _LEASE,
                [self.team.prefix + "leases:" + ticket.deployment],
                [ticket.max_parallel, lease, int(ticket.lease_s * 1000)],
            ):
                if time.monotonic() - start + LEASE_POLL_S > ticket.max_wait_s:
                    return
                yield LEASE_POLL_S
            ticket.shared_lease = lease
        ticket.waited_s = time.monotonic() - start

    def release(self, ticket: Ticket) -> None:
        """Give back the request's lease."""
        lease, ticket.shared_lease = ticket.shared_lease, None
        if lease is None:  # no lease in Redis: this store's limiter took the ticket (Redis was down), if anyone did
            super().release(ticket)
        else:
            key = self.team.prefix + "leases:" + ticket.deployment
            try:
                self.team.command(lambda r: r.zrem(key, lease))
            except Unreachable:
                pass  # the lease lapses on its own after the request's timeout

    def queues(self) -> dict[str, dict[str, int]]:
        """Per deployment: requests ``in_flight`` across the team (``waiting`` is 0: a request is handed its slot at
        once and sleeps in its own process until then).
        """
        try:
            rows = self.team.run("queues", _QUEUES, [self.team.prefix], [])
        except Unreachable:
            return super().queues()
        return {k.decode(): {"waiting": int(w), "in_flight": int(n)} for k, w, n in rows}


class SharedBreakers(Breakers):
    """:class:`Breakers` whose state lives in the team's Redis (this process's, while Redis is down).

    Reads come from the team's snapshot (at most 50 ms old): a healthy endpoint costs no round trip.
    Failures, a probe's claim and the success that closes an open breaker are written at once.
    """

    def __init__(self, team: TeamState, failures: int = 5, cooldown_s: float = 30.0):
        super().__init__(failures, cooldown_s)
        self.team = team

    def _run(self, op: str, endpoint: str, *args: object) -> object:
        out = self.team.run(
            "breaker",
            _BREAKER,
            [self.team.prefix + "breakers"],
            [op, endpoint, self.threshold, int(self.cooldown_s * 1000), *args],
        )
        self.team.changed()
        return out

    def _seen(self, endpoint: str) -> tuple[tuple[int, float | None, float | None] | None, float]:
        """The endpoint's shared state (``None``: closed, no failures) and Redis's clock, from the snapshot."""
        snap = self.team.snapshot()
        return snap.breakers.get(endpoint), snap.now_ms()

    def state(self, deployment: str) -> str:
        try:
            seen, now = self._seen(deployment)
        except Unreachable as exc:
            self.team.fallback("breakers", exc)
            return super().state(deployment)
        if seen is None or seen[1] is None:
            return "closed"
        probing = seen[2] is not None and seen[2] > now
        return "half-open" if probing or now - seen[1] >= self.cooldown_s * 1000 else "open"

    def allow(self, deployment: str) -> bool:
        try:
            seen, _ = self._seen(deployment)
            if seen is None or seen[1] is None:
                return True
            return bool(self._run("allow", deployment))  # open: the script claims the probe if one is due
        except Unreachable as exc:
            self.team.fallback("breakers", exc)
            return super().allow(deployment)

    def retry_at(self, deployment: str) -> float:
        try:
            seen, now = self._seen(deployment)
        except Unreachable as exc:
            self.team.fallback("breakers", exc)
            return super().retry_at(deployment)
        if seen is None or seen[1] is None:
            return 0.0
        return max(0.0, (seen[1] + self.cooldown_s * 1000 - now) / 1000)

    def succeeded(self, deployment: str) -> None:
        super().succeeded(deployment)
        try:
            if self._seen(deployment)[0] is not None:  # failures or an open breaker to clear
                self._run("succeeded", deployment)
        except Unreachable:
            pass

    def failed(self, deployment: str, error_class: str) -> None:
        super().failed(deployment, error_class)
        try:
            self._run("failed", deployment, int(error_class not in _NOT_HEALTH))
        except Unreachable:
            pass


_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
"""

# KEYS: the deployment's schedule. ARGV: rpm, tpm, tokens, max wait (ms). Returns ms to wait, or -1: not taken.
_PACE = (
    _NOW
    + """
local rpm, tpm, tokens, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 'req', 'tok')
local req, tok = tonumber(s[1] or now), tonumber(s[2] or now)
local slot = now
if rpm > 0 and req > slot then slot = req end
if tpm > 0 and tok > slot then slot = tok end
if slot - now > max_wait then return -1 end
if rpm > 0 then redis.call('HSET', KEYS[1], 'req', tostring(slot + 60000 / rpm)) end
if tpm > 0 then redis.call('HSET', KEYS[1], 'tok', tostring(math.max(tok, now) + tokens * 60000 / tpm)) end
redis.call('PEXPIRE', KEYS[1], 3600000)
return math.ceil(slot - now)
"""
)

# KEYS: the deployment's leases. ARGV: max parallel, lease id, lease ms. Returns 1 taken, 0 all in use.
_LEASE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 60000)
return 1
"""
)

_QUEUES = (
    _NOW
    + """
local out = {}
for _, key in ipairs(redis.call('KEYS', KEYS[1] .. 'leases:*')) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  table.insert(out, {string.sub(key, #KEYS[1] + 8), 0, redis.call('ZCARD', key)})
end
return out
"""
)

# KEYS: the breakers hash (endpoint -> "failures opened_ms probe_until_ms"). ARGV: op, endpoint, threshold,
# cool-down ms, then for "failed" 1 if the failure is about health. Returns 1, or for "allow" whether it may go.
_BREAKER = (
    _NOW
    + """
local op, ep, threshold, cooldown = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local raw = redis.call('HGET', KEYS[1], ep) or ''
local f, o, p = string.match(raw, '^(%d*) ?([%d.]*) ?([%d.]*)$')
local failures, opened, probe = tonumber(f) or 0, tonumber(o), tonumber(p)
local function save()
  redis.call('HSET', KEYS[1], ep, failures .. ' ' .. (opened and string.format('%.0f', opened) or '') .. ' ' ..
    (probe and string.format('%.0f', probe) or ''))
end
if op == 'succeeded' then redis.call('HDEL', KEYS[1], ep) return 1 end
if op == 'failed' then
  local probing = probe ~= nil and probe > now
  probe = nil
  if ARGV[5] == '1' then
    failures = failures + 1
    if probing or failures >= threshold then opened = now end
  end
  if ARGV[5] == '1' or raw ~= '' then save() end
  return 1
end
-- allow
if opened == nil then return 1 end
if (probe ~= nil and probe > now) or now - opened < cooldown then return 0 end
probe = now + cooldown  -- the probe: one caller, until it ends or its claim lapses
save()
return 1
"""
)
