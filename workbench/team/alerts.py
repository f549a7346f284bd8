"""Alert rules over the whole team's calls, with one firing state for the team, in Redis.

With ``[team] redis_url`` set, every live call of every analyst goes into a window on the
server (a sorted set by the server's clock: call id, status, latency, cost, route), and a
rule's metric is computed over that window, not over this store's calls alone (error rate and spend in
O(log n) on the server; a latency percentile reads the latencies in its window). The firing
state of a rule is one field on the server, changed by compare-and-set inside the same
script: when four analysts' calls push the team's error rate over a threshold, the alert
fires once (one row, in the store of the analyst whose call tipped it, one webhook post),
and resolves once.

A rule is the team's by its name: analysts who share a rule name should give it the same
metric and threshold. The window keeps the calls of the last hour (or of the longest rule
window, if longer), at most the latest ``MAX_SAMPLES``; a check is one round trip.

Analysts without rules add their calls to the window only once someone on the team has a rule
(the team's snapshot says so): a team without alert rules pays no round trip for them.

Redis down: rules are checked on this store's calls and firing state, with a warning.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from workbench.config import AlertRule, Settings
from workbench.observability.alerts import Alerts
from workbench.store import Store, utcnow
from workbench.team.state import TeamState, Unreachable, text

if TYPE_CHECKING:
    import pandas as pd

HORIZON_S = 3600.0  # calls are kept at least this long (longer when a rule's window is)
MAX_SAMPLES = 100_000  # and at most this many, the latest


class SharedAlerts(Alerts):
    """:class:`Alerts` whose metrics cover the team's calls and whose firing state is the team's."""

    def __init__(self, store: Store, settings: Settings, team: TeamState):
        super().__init__(store, settings)
        self.team = team
        self._register()

    def add(
        self,
        name: str,
        metric: str,
        above: float,
        *,
        window_s: float = 300.0,
        min_calls: int = 5,
        route: str | None = None,
    ) -> AlertRule:
        """Add (or replace) a rule: see :meth:`Alerts.add`. Its firing state is the team's rule of that name."""
        rule = super().add(name, metric, above, window_s=window_s, min_calls=min_calls, route=route)
        self._register()
        return rule

    def _register(self) -> None:
        """Tell the team this analyst has rules, so every analyst's calls go into the window from now on."""
        if not self._rules:
            return
        names = {rule.name: rule.metric for rule in self._rules.values()}
        try:
            self.team.command(lambda r: r.hset(self.team.prefix + "alerts:rules", mapping=names))
        except Unreachable:
            pass  # the first check registers them (or falls back to this store)

    def check(self, route: str | None = None, call_id: str | None = None, warn: bool = True) -> list[str]:
        """Add the call to the team's window, evaluate the rules on it, and record what this process changed."""
        rules = [r for r in self._rules.values() if route is None or r.route in (None, route)]
        try:
            if not self._rules and not self.team.snapshot().alerts:
                return []  # nobody on the team has a rule: no window to keep
            sample = self._sample(call_id) if call_id else None
            if sample is None and not rules:
                return []
            out = self._run("check", sample, rules)
        except Unreachable as exc:
            self.team.fallback("alerts", exc)
            return super().check(route, call_id, warn)
        changes = []
        with self.store.transaction() as conn:
            for rule, (event, value, _) in zip(rules, out, strict=True):
                if event not in ("fired", "resolved"):
                    continue
                changes.append(self._insert(conn, rule, event, value, call_id))
        return self._announce(changes, warn, f" (team {self.team.settings.name})")

    def values(self) -> pd.DataFrame:
        """Each rule with the team's current value of its metric and whether it is firing for the team."""
        import pandas as pd

        rules = list(self._rules.values())
        try:
            out = self._run("values", None, rules)
        except Unreachable as exc:
            self.team.fallback("alerts", exc)
            return super().values()
        rows = [
            {**rule.model_dump(), "value": value, "firing": state.get("event") == "fired", "since": state.get("at")}
            for rule, (_, value, state) in zip(rules, out, strict=True)
        ]
        columns = ["name", "metric", "above", "value", "firing", "since", "window_s", "min_calls", "route"]
        return pd.DataFrame(rows, columns=columns)

    # ---- the server's side -------------------------------------------------------------

    def _sample(self, call_id: str) -> str | None:
        """The call as the window holds it: ``id status latency_ms cost_usd route``."""
        with self.store.lock:
            row = self.store.conn.execute(
                "SELECT status, latency_ms, cost_usd, route FROM calls WHERE id = ? AND mode = 'live'", (call_id,)
            ).fetchone()
        if row is None:
            return None
        status, latency, cost, route = row
        return f"{call_id} {status} {latency or 0:.3f} {cost or 0:.12f} {route or ''}"

    def _run(self, op: str, sample: str | None, rules: list[AlertRule]) -> list[tuple[str, float | None, dict]]:
        """One script: add ``sample``, trim the window, and per rule its value, its state, and (``check``) the
        transition this process won (``fired``/``resolved``; ``""`` for none).
        """
        horizon = max([HORIZON_S, *(r.window_s for r in rules)])
        args: list[Any] = [op, sample or "", int(horizon * 1000), MAX_SAMPLES, utcnow()]
        for r in rules:
            args += [r.name, r.metric, repr(float(r.above)), int(r.window_s * 1000), r.min_calls, r.route or ""]
        prefix = self.team.prefix
        out = self.team.run("alerts", _ALERTS, [prefix + "alerts:"], args)
        results = []
        for event, value, state in out:
            number = None if text(value) == "" else float(text(value))
            results.append((text(event), number, json.loads(text(state)) if state else {}))
        return results


# KEYS: the prefix wb:NAME:alerts: (the script's keys all start with it; a plain Redis server, not a cluster).
# ARGV: op, the sample ("" for none: "id status latency cost route"), horizon ms, max samples, now (ISO), then six
# per rule: name, metric, above, window ms, min calls, route. Returns per rule {transition, value, state}.
# Per scope (every route: "", and the call's route) the window is four sorted sets by the server's clock:
# n: answered or failed calls; e: failed ones; c: "id cost running-total" (spend over a window is two reads);
# l: "id latency" of answered calls (a percentile reads the window).
_ALERTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = KEYS[1]
local op, sample, horizon, cap, at = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local function keep(key, member)
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - horizon)
  redis.call('ZREMRANGEBYRANK', key, 0, -cap - 1)
  redis.call('PEXPIRE', key, horizon)
end
if sample ~= '' then
  local id, status, latency, cost, route = string.match(sample, '^(%S+) (%S+) (%S+) (%S+) ?(.*)$')
  local scopes = {''}
  if route ~= '' then scopes[2] = route end
  for _, scope in ipairs(scopes) do
    if status == 'ok' or status == 'error' then keep(p .. 'n:' .. scope, id) end
    if status == 'error' then keep(p .. 'e:' .. scope, id) end
    if status == 'ok' then keep(p .. 'l:' .. scope, id .. ' ' .. latency) end
    if tonumber(cost) > 0 then
      local total = redis.call('INCRBYFLOAT', p .. 'spent:' .. scope, cost)
      redis.call('PEXPIRE', p .. 'spent:' .. scope, horizon)
      keep(p .. 'c:' .. scope, id .. ' ' .. cost .. ' ' .. total)
    end
  end
end
local out = {}
for i = 6, #ARGV, 6 do
  local name, metric, above = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local since, min_calls, scope = now - tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5]
  redis.call('HSET', p .. 'rules', name, metric)
  local value = nil
  if metric == 'spend_usd' then
    value = 0
    local first = redis.call('ZRANGEBYSCORE', p .. 'c:' .. scope, since, '+inf', 'LIMIT', 0, 1)[1]
    if first then
      local _, cost, total = string.match(first, '^(%S+) (%S+) (%S+)$')
      local spent = tonumber(redis.call('GET', p .. 'spent:' .. scope) or total)
      value = math.max(0, spent - tonumber(total) + tonumber(cost))
    end
  elseif metric == 'error_rate' then
    local n = redis.call('ZCOUNT', p .. 'n:' .. scope, since, '+inf')
    if n >= min_calls and n > 0 then value = redis.call('ZCOUNT', p .. 'e:' .. scope, since, '+inf') / n end
  else
    local lat = {}
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', p .. 'l:' .. scope, since, '+inf')) do
      lat[#lat + 1] = tonumber(string.match(m, ' (%S+)$'))
    end
    if #lat >= min_calls and #lat > 0 then
      table.sort(lat)
      local q = 0.95
      if metric == 'p50_latency_ms' then q = 0.5 end
      value = lat[math.max(1, math.ceil(q * #lat))]
    end
  end
  local state = redis.call('HGET', p .. 'state', name)
  local firing = state and cjson.decode(state)['event'] == 'fired'
  local event = ''
  if op == 'check' then
    if not firing and value ~= nil and value > above then event = 'fired'
    elseif firing and (value == nil or value <= above) then event = 'resolved' end
    if event ~= '' then
      state = cjson.encode({event = event, at = at, value = value})
      redis.call('HSET', p .. 'state', name, state)
    end
  end
  local shown = ''
  if value ~= nil then shown = string.format('%.17g', value) end
  out[#out + 1] = {event, shown, state or ''}
end
return out
"""
