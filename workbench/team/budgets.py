"""Team budgets in Redis: set once, enforced for every analyst, reserved and settled atomically.

The same semantics as the store's budgets (cost/budgets.py): before a call is sent its
worst case is **reserved** against every team budget covering it, in one Lua script
that checks and holds together, so calls from any number of machines cannot all pass
a check before any spend is counted. When the call is recorded its real cost replaces
the hold (``settle``); a call that never completes gives the hold back (``release``), and
a hold left by a crashed process lapses after ``RESERVATION_TTL``.

Amounts are kept in nano-dollars (integers: no float drift between machines). A team
budget counts the spend of the calls made while it exists (the per-analyst stores keep
every call; ``workbench team report`` rolls them up). Threshold crossings are claimed in
Redis too, so each is announced once for the whole team.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workbench.team.state import TeamState, text

NANO = 1_000_000_000  # nano-dollars per dollar


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation did not fit: the budget, what ran out, and the figures."""

    budget: str  # "scope|key|period"
    unit: str  # "usd" or "tokens"
    spent: float
    held: float
    limit: float
    asked: float


def field(scope: str, key: str, period: str) -> str:
    """The budget's name in the ``budgets`` hash."""
    return f"{scope}|{key}|{period}"


def display(name: str) -> str:
    """``user|alice|day`` -> ``user:alice (day)``."""
    scope, key, period = name.split("|", 2)
    return f"{scope if scope == 'global' else f'{scope}:{key}'} ({period})"


class TeamBudgets:
    """The team's budgets on its Redis (``[team]``)."""

    def __init__(self, state: TeamState, ttl_s: float):
        self.state, self.ttl_ms = state, int(ttl_s * 1000)

    def set(
        self,
        scope: str,
        key: str,
        period: str,
        usd: float | None,
        tokens: int | None,
        thresholds: Sequence[float],
        since: str | None,
    ) -> None:
        """Create or change a team budget (``since`` kept from before unless given)."""
        self.state.run(
            "set",
            _SET,
            [self.state.prefix + "budgets"],
            [
                field(scope, key, period),
                json.dumps(
                    {
                        "scope": scope,
                        "key": key,
                        "period": period,
                        "usd": -1 if usd is None else round(usd * NANO),
                        "tokens": -1 if tokens is None else tokens,
                        "thresholds": sorted(thresholds),
                        "since": since or "",
                    }
                ),
                "1" if since is None else "0",
            ],
        )
        self.state.changed()

    def remove(self, scope: str, key: str, period: str) -> bool:
        """Delete a team budget; whether there was one."""
        name = field(scope, key, period)
        removed = bool(self.state.command(lambda r: r.hdel(self.state.prefix + "budgets", name)))
        self.state.changed()
        return removed

    def reserve(self, call_id: str, who: dict[str, str], usd: float, tokens: int) -> Refusal | int:
        """Hold ``usd``/``tokens`` against every team budget covering ``who``: how many, or why not."""
        now = datetime.now(UTC)
        out = self.state.run(
            "reserve",
            _RESERVE,
            [self.state.prefix],
            [
                json.dumps(who),
                call_id,
                round(usd * NANO),
                tokens,
                now.strftime("%Y-%m-%d"),
                now.strftime("%Y-%m-01"),
                self.ttl_ms,
            ],
        )
        if out[0] == 1:
            return int(out[1])
        name, unit = text(out[1]), text(out[2])
        scale = NANO if unit == "usd" else 1
        return Refusal(
            name,
            unit,
            int(out[3]) / scale,
            int(out[4]) / scale,
            int(out[5]) / scale,
            usd if unit == "usd" else tokens,
        )

    def settle(self, call_id: str, usd: float, tokens: int) -> list[tuple[str, float, float, int]]:
        """The call's real cost replaces its holds; the thresholds it made the team cross (first to cross only):
        ``(budget, threshold, spent USD, spent tokens)``.
        """
        out = self.state.run("settle", _SETTLE, [self.state.prefix], [call_id, round(usd * NANO), tokens])
        return [(text(name), float(text(t)), int(su) / NANO, int(st)) for name, t, su, st in out]

    def release(self, call_id: str) -> None:
        """Give a call's holds back (it was never recorded with a cost)."""
        self.state.run("settle", _SETTLE, [self.state.prefix], [call_id, 0, 0])

    def rows(self) -> list[dict[str, Any]]:
        """Every team budget with what is spent and held against it now."""
        now = datetime.now(UTC)
        out = self.state.run("usage", _USAGE, [self.state.prefix], [now.strftime("%Y-%m-%d"), now.strftime("%Y-%m-01")])
        rows = []
        for name, raw, su, st, hu, ht in out:
            b = json.loads(raw)
            rows.append(
                {
                    "name": text(name),
                    "scope": b["scope"],
                    "key": b["key"],
                    "period": b["period"],
                    "limit_usd": None if b["usd"] < 0 else b["usd"] / NANO,
                    "limit_tokens": None if b["tokens"] < 0 else b["tokens"],
                    "spent_usd": int(su) / NANO,
                    "spent_tokens": int(st),
                    "reserved_usd": int(hu) / NANO,
                    "reserved_tokens": int(ht),
                    "since": b["since"] or None,
                }
            )
        return rows


# Where a budget's count starts: its period's start (day / month, from the caller's UTC date), or its since if later.
_START = """
local function start_of(b, day, month)
  local s = ''
  if b.period == 'day' then s = day elseif b.period == 'month' then s = month end
  if b.since ~= '' and b.since > s then s = b.since end
  return s
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- the live holds of a budget (expired ones are dropped): usd, tokens
local function held(key, now)
  local u, k = 0, 0
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    local hu, hk, exp = string.match(all[j + 1], '^(%d+) (%d+) (%d+)$')
    if tonumber(exp) < now then
      redis.call('HDEL', key, all[j])
    else
      u = u + tonumber(hu)
      k = k + tonumber(hk)
    end
  end
  return u, k
end
"""

_SET = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local b = cjson.decode(ARGV[2])
if ARGV[3] == '1' and old then b.since = cjson.decode(old).since end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(b))
return 1
"""

_RESERVE = (
    _START
    + """
local p, who = KEYS[1], cjson.decode(ARGV[1])
local call_id, usd, tokens = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local day, month, ttl = ARGV[5], ARGV[6], tonumber(ARGV[7])
local now = now_ms()
local all = redis.call('HGETALL', p .. 'budgets')
local chosen = {}
for i = 1, #all, 2 do
  local b = cjson.decode(all[i + 1])
  if who[b.scope] ~= nil and who[b.scope] == b.key then
    local start = start_of(b, day, month)
    local spent = redis.call('HMGET', p .. 'spent:' .. all[i] .. ':' .. start, 'usd', 'tokens')
    local su, st = tonumber(spent[1] or 0), tonumber(spent[2] or 0)
    local hu, ht = held(p .. 'held:' .. all[i], now)
    if b.usd >= 0 and su + hu + usd > b.usd then
      return {0, all[i], 'usd', string.format('%d', su), string.format('%d', hu), string.format('%d', b.usd)}
    end
    if b.tokens >= 0 and st + ht + tokens > b.tokens then
      return {0, all[i], 'tokens', st, ht, b.tokens}
    end
    table.insert(chosen, {all[i], start})
  end
end
local hold = string.format('%d %d %d', usd, tokens, now + ttl)
for _, c in ipairs(chosen) do
  redis.call('HSET', p .. 'held:' .. c[1], call_id, hold)
  redis.call('HSET', p .. 'call:' .. call_id, c[1], c[2])
end
if #chosen > 0 then redis.call('PEXPIRE', p .. 'call:' .. call_id, ttl) end
return {1, #chosen}
"""
)

# ARGV: call id, its cost in nano-dollars, its tokens (0 and 0: a release). Returns the thresholds newly crossed.
_SETTLE = """
local p, call_id = KEYS[1], ARGV[1]
local usd, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local ck = p .. 'call:' .. call_id
local holds = redis.call('HGETALL', ck)
local out = {}
for i = 1, #holds, 2 do
  local name, start = holds[i], holds[i + 1]
  redis.call('HDEL', p .. 'held:' .. name, call_id)
  if usd > 0 or tokens > 0 then
    local sk = p .. 'spent:' .. name .. ':' .. start
    local su = redis.call('HINCRBY', sk, 'usd', usd)
    local st = redis.call('HINCRBY', sk, 'tokens', tokens)
    local raw = redis.call('HGET', p .. 'budgets', name)
    if raw then
      local b = cjson.decode(raw)
      local used = 0
      if b.usd > 0 then used = su / b.usd end
      if b.tokens > 0 and st / b.tokens > used then used = st / b.tokens end
      for _, t in ipairs(b.thresholds) do
        local mark = p .. 'crossed:' .. name .. ':' .. start .. ':' .. tostring(t)
        if used >= t and redis.call('SET', mark, '1', 'NX') then
          table.insert(out, {name, tostring(t), su, st})
        end
      end
    end
  end
end
redis.call('DEL', ck)
return out
"""

_USAGE = (
    _START
    + """
local p, day, month = KEYS[1], ARGV[1], ARGV[2]
local now = now_ms()
local all = redis.call('HGETALL', p .. 'budgets')
local out = {}
for i = 1, #all, 2 do
  local b = cjson.decode(all[i + 1])
  local spent = redis.call('HMGET', p .. 'spent:' .. all[i] .. ':' .. start_of(b, day, month), 'usd', 'tokens')
  local hu, ht = held(p .. 'held:' .. all[i], now)
  table.insert(out, {all[i], all[i + 1], spent[1] or 0, spent[2] or 0, string.format('%d', hu), ht})
end
return out
"""
)
