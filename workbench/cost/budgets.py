"""Budgets that cannot be overspent, soft thresholds, and the kill switch.

Before a call is sent, its worst case (prompt tokens + the most output tokens it
may produce, at the priciest deployment of its route) is **reserved** against every
budget covering it, inside one ``BEGIN IMMEDIATE`` transaction: the check and the
reservation are one atomic step for every thread, event loop and process sharing
the store, so concurrent calls cannot all pass a check before any spend is
recorded. When the call is recorded, the reservation is deleted in the same
transaction that writes its real cost.

With ``[team] redis_url``, budgets set here are the team's, kept in Redis and enforced for
every analyst (team/budgets.py): a call is reserved against this store's budgets and the
team's, and settled in both. The kill switch is the team's too. Redis down: budgets fail
closed (``TeamStateDown``, nothing sent) unless ``budgets_when_down = "local"``.

A budget covers calls by scope: ``global``, or ``user:``/``task:``/``agent:``/``session:``
plus a key; over a period: ``day`` or ``month`` (UTC) or ``total``; in USD, tokens or both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from workbench.config import Route, Settings
from workbench.errors import BudgetExceeded, KillSwitchActive, TeamStateDown, WorkbenchError, shown, warn_at_caller
from workbench.guardrails.scanners import check_name, scrub_clipped
from workbench.options import real_number
from workbench.serving import Request
from workbench.serving.policies import unit_prices
from workbench.serving.router import LITELLM
from workbench.store import Store, utcnow
from workbench.store.records import spent
from workbench.team import TeamBudgets, TeamState, Unreachable, display

Scope = Literal["global", "user", "task", "agent", "session"]
Period = Literal["day", "month", "total"]
SCOPES: tuple[str, ...] = ("global", "user", "task", "agent", "session")
PERIODS: tuple[str, ...] = ("day", "month", "total")
DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)
DEFAULT_MAX_OUTPUT_TOKENS = 4096
LOCAL, TEAM = 1, 2  # which budgets a call is reserved against (Budgets.gate)
RESERVATION_TTL = timedelta(minutes=15)  # a reservation left by a crashed process stops counting
MAX_REASON = 500  # characters of a kill switch's reason kept: it is shown in every refusal


class BudgetWarning(UserWarning):
    """A budget crossed one of its soft thresholds (shown once per crossing)."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who and what a call is for."""

    user: str | None = None
    task: str | None = None
    agent: str | None = None
    session: str | None = None

    def key(self, scope: str) -> str | None:
        """This call's key for a scope (``""`` for global, ``None`` if not attributed)."""
        return "" if scope == "global" else getattr(self, scope)


def parse_scope(text: str) -> tuple[str, str]:
    """``"user:alice"`` -> ``("user", "alice")``; ``"global"`` -> ``("global", "")``."""
    scope, _, key = check_name("budget scope", text).partition(":")
    if scope not in SCOPES or (scope == "global") != (key == ""):
        raise WorkbenchError(
            f"budget scope {text!r}: write 'global' or one of user:NAME, task:NAME, agent:NAME, session:NAME"
        )
    return scope, key


def period_start(period: str, now: datetime | None = None) -> str:
    """The ISO instant the current period began (comparable with ``started_at``)."""
    now = now or datetime.now(UTC)
    if period == "day":
        return now.strftime("%Y-%m-%d")
    if period == "month":
        return now.strftime("%Y-%m-01")
    return ""


class Budgets:
    """The ``cost.reserve`` stage, budget settings, threshold notices and the kill switch."""

    def __init__(self, store: Store, settings: Settings, team: TeamState | None = None):
        self.store, self.settings, self.team = store, settings, team
        self.shared = TeamBudgets(team, RESERVATION_TTL.total_seconds()) if team is not None else None
        self._held: set[str] = set()  # calls holding team reservations (settled or released once)

    # ---- settings ---------------------------------------------------------------

    def set(
        self,
        scope: str,
        usd: float | None = None,
        *,
        tokens: int | None = None,
        period: str = "total",
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        since: str | None = None,
    ) -> None:
        """Create or change the budget for ``scope`` (e.g. ``"user:alice"``) over ``period``.

        ``since="now"`` (or an ISO instant) counts spend from then instead of from the period's start:
        "Bob gets $5 from today", or a notebook that sets up its demo budget afresh on each run.
        Changing a budget without ``since`` keeps the instant it had.
        """
        kind, key = parse_scope(scope)
        if since == "now":
            since = utcnow()
        elif since is not None:
            try:
                since = datetime.fromisoformat(since).astimezone(UTC).isoformat(timespec="microseconds")
            except (TypeError, ValueError):
                raise WorkbenchError(
                    f"budget since={shown(since)}: give 'now' or an ISO date like 2026-12-01"
                ) from None
        if period not in PERIODS:
            raise WorkbenchError(f"budget period {shown(period)}: use one of {', '.join(PERIODS)}")
        if usd is None and tokens is None:
            raise WorkbenchError("a budget needs a limit: give usd=..., tokens=... or both")
        if usd is not None and not (real_number(usd) and 0 <= usd < math.inf):  # (kept, audited: JSON has no inf)
            raise WorkbenchError(f"a budget's usd is dollars, zero or more, not {shown(usd)}")
        if tokens is not None and not (real_number(tokens) and 0 <= tokens <= 10**15 and float(tokens).is_integer()):
            raise WorkbenchError(f"a budget's tokens is a whole number from 0 to 10**15, not {shown(tokens)}")
        if isinstance(thresholds, str) or any(not (real_number(t) and 0 < t <= 1) for t in thresholds):
            raise WorkbenchError(
                f"budget thresholds are fractions of the limit, each in (0, 1], not {shown(thresholds)}"
            )
        if self.shared is not None and self.team is not None:
            shared = self.shared
            self._shared(lambda: shared.set(kind, key, period, usd, tokens, thresholds, since))
            payload = {"event": "set", "period": period, "usd": usd, "tokens": tokens, "since": since}
            with self.store.transaction() as conn:
                self.store.audit(
                    conn, "budget", scope, {**payload, "thresholds": sorted(thresholds), "team": self.team.where}
                )
            return
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO budgets (scope, key, period, limit_usd, limit_tokens, thresholds, created_at, since) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(scope, key, period) DO UPDATE SET "
                "limit_usd = excluded.limit_usd, limit_tokens = excluded.limit_tokens, "
                "thresholds = excluded.thresholds, since = COALESCE(excluded.since, budgets.since)",
                (kind, key, period, usd, tokens, json.dumps(sorted(thresholds)), utcnow(), since),
            )
            row = conn.execute(
                "SELECT id FROM budgets WHERE scope = ? AND key = ? AND period = ?", (kind, key, period)
            ).fetchone()
            self.store.audit(
                conn,
                "budget",
                scope,
                {
                    "event": "set",
                    "period": period,
                    "usd": usd,
                    "tokens": tokens,
                    "thresholds": sorted(thresholds),
                    "since": since,
                },
                bind=[("budgets", str(row[0]))],
            )

    def remove(self, scope: str, period: str = "total", *, missing_ok: bool = False) -> None:
        """Delete a budget (``missing_ok``: and say nothing if there is none)."""
        kind, key = parse_scope(scope)
        if self.shared is not None and self.team is not None:
            shared = self.shared
            if self._shared(lambda: shared.remove(kind, key, period)):
                with self.store.transaction() as conn:
                    self.store.audit(
                        conn, "budget", scope, {"event": "removed", "period": period, "team": self.team.where}
                    )
                return
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM budgets WHERE scope = ? AND key = ? AND period = ?", (kind, key, period)
            ).fetchone()
            if row is None and missing_ok:
                return
            if row is None:
                raise WorkbenchError(f"no {period} budget on {scope}; %llm_budget lists them")
            conn.execute("DELETE FROM budgets WHERE id = ?", (row[0],))
            self.store.audit(
                conn, "budget", scope, {"event": "removed", "period": period}, bind=[("budgets", str(row[0]))]
            )

    def kill(self, reason: str = "kill switch") -> None:
        """Refuse every new call, in every process sharing the store (with ``[team]``: of the whole team), until
        :meth:`lift`.
        """
        if not isinstance(reason, str):
            raise WorkbenchError(
                f"the kill switch's reason is text, not {type(reason).__name__}: wb.kill('runaway agent')"
            )
        # Stored, shown in every refusal and sent to the team's Redis: a long one is cut (the switch still goes on).
        reason = scrub_clipped(reason, MAX_REASON + 1) or "kill switch"  # (its first MAX_REASON characters, then …)
        if self.team is not None:
            team = self.team
            self._shared(lambda: team.kill(reason))
            with self.store.transaction() as conn:
                self.store.audit(conn, "kill", "switch", {"active": True, "reason": reason, "team": team.where})
            return
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO switches (name, active, reason, at) VALUES ('kill', 1, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET active = 1, reason = excluded.reason, at = excluded.at",
                (reason, utcnow()),
            )
            self.store.audit(conn, "kill", "switch", {"active": True, "reason": reason}, bind=[("switches", "kill")])

    def lift(self) -> None:
        """Allow calls again (with ``[team]``: the team's switch and this store's)."""
        if self.team is not None:
            team = self.team
            if self._shared(team.lift):
                with self.store.transaction() as conn:
                    self.store.audit(conn, "kill", "switch", {"active": False, "team": team.where})
        with self.store.transaction() as conn:
            lifted = conn.execute("UPDATE switches SET active = 0, at = ? WHERE name = 'kill'", (utcnow(),)).rowcount
            if not lifted and self.store.kill_logged_on(conn) is not None:  # on by the log, its row gone from the file
                conn.execute("INSERT INTO switches (name, active, reason, at) VALUES ('kill', 0, '', ?)", (utcnow(),))
                lifted = 1
            if lifted:
                self.store.audit(conn, "kill", "switch", {"active": False}, bind=[("switches", "kill")])

    def df(self) -> Any:
        """Every budget with what is spent and reserved against it now."""
        import pandas as pd

        rows = []
        for b in self.store.query("SELECT * FROM budgets ORDER BY scope, key, period"):
            with self.store.lock:  # the connection is shared: never read it beside another thread's transaction
                spent_usd, spent_tokens, held_usd, held_tokens = self._usage(self.store.conn, b)
            limit = b["limit_usd"]
            rows.append(
                {
                    "scope": b["scope"] if b["scope"] == "global" else f"{b['scope']}:{b['key']}",
                    "period": b["period"],
                    "limit_usd": limit,
                    "spent_usd": round(spent_usd, 6),
                    "reserved_usd": round(held_usd, 6),
                    "limit_tokens": b["limit_tokens"],
                    "spent_tokens": spent_tokens,
                    "used": round(spent_usd / limit, 3) if limit else None,
                    "since": b.get("since"),
                }
            )
        for b in self._team_rows():
            rows.append(
                {
                    "scope": ("global" if b["scope"] == "global" else f"{b['scope']}:{b['key']}") + " (team)",
                    "period": b["period"],
                    "limit_usd": b["limit_usd"],
                    "spent_usd": round(b["spent_usd"], 6),
                    "reserved_usd": round(b["reserved_usd"], 6),
                    "limit_tokens": b["limit_tokens"],
                    "spent_tokens": b["spent_tokens"],
                    "used": round(b["spent_usd"] / b["limit_usd"], 3) if b["limit_usd"] else None,
                    "since": b["since"],
                }
            )
        columns = [
            "scope",
            "period",
            "limit_usd",
            "spent_usd",
            "reserved_usd",
            "limit_tokens",
            "spent_tokens",
            "used",
            "since",
        ]
        return pd.DataFrame(rows, columns=columns)

    def _team_rows(self) -> list[dict[str, Any]]:
        if self.shared is None:
            return []
        try:
            return self.shared.rows()
        except Unreachable as exc:
            self.team.fallback("the budget table", exc)  # type: ignore[union-attr]
            return []

    # ---- the pipeline stage ----------------------------------------------------------

    def gate(self) -> int:
        """Refuse at once if the kill switch is on; which budgets exist: ``LOCAL`` (this store's) | ``TEAM``."""
        with self.store.lock:
            row = self.store.conn.execute(
                "SELECT (SELECT reason FROM switches WHERE name = 'kill' AND active = 1), "
                "EXISTS (SELECT 1 FROM budgets), EXISTS (SELECT 1 FROM audit WHERE kind = 'kill' AND ref = 'switch')"
            ).fetchone()
        killed, budgeted = row[0], LOCAL if row[1] else 0
        if killed is None and row[2]:  # (no entry about the switch: the log says off too)
            self.store.check_kill_switch()  # (the row says off: so must the log)
        if killed is None and self.team is not None:
            try:
                killed, shared = self.team.gate()
                budgeted |= TEAM if shared else 0
                killed = killed and f"team {self.team.settings.name}: {killed}"
            except Unreachable as exc:
                self._down(exc)
        if killed is not None:
            raise KillSwitchActive(
                f"the kill switch is on ({killed}): no call is sent until it is lifted "
                "with wb.budgets.lift(), %llm_budget --lift or `workbench budget lift`"
            )
        return budgeted

    def _down(self, exc: Unreachable) -> None:
        """Redis is down: refuse (``budgets_when_down = "closed"``) or warn and go on with this store's budgets."""
        assert self.team is not None
        if self.team.settings.budgets_when_down == "closed":
            raise TeamStateDown(
                f"{exc}; team budgets fail closed, so nothing was sent. Bring Redis back, or set "
                '[team] budgets_when_down = "local" to go on with this store\'s budgets alone'
            )
        self.team.fallback("budgets and the kill switch", exc)

    def _shared(self, step: Any) -> Any:
        """A change to the team's state: Redis down is an error (nothing changed)."""
        try:
            return step()
        except Unreachable as exc:
            raise TeamStateDown(
                f"{exc}; the team's budgets and kill switch were not changed. Retry when it is back"
            ) from None

    def estimate(self, route: Route, request: Request) -> tuple[float, int]:
        """The worst case of a call: (USD, tokens) over the route's deployments."""
        litellm = LITELLM  # imported only for a model that is not local
        worst_usd, worst_tokens = 0.0, 0
        for d in route.deployments:
            prompt = request.prompt_tokens(d.model)
            out = request.params.get("max_tokens") or _max_output_tokens(litellm, d.model)
            unit_in, unit_out = unit_prices(self.settings, d, litellm) or (0.0, 0.0)  # unknown price: tokens only
            worst_usd = max(worst_usd, prompt * unit_in + out * unit_out)
            worst_tokens = max(worst_tokens, prompt + out)
        return worst_usd, worst_tokens

    def answer_tokens(self, route: Route, request: Request) -> int:
        """The most answer tokens the reservation assumed (``max_tokens``, else the largest model output)."""
        litellm = LITELLM
        return max(request.params.get("max_tokens") or _max_output_tokens(litellm, d.model) for d in route.deployments)

    def reserve(self, call_id: str, who: Attribution, usd: float, tokens: int, where: int = LOCAL | TEAM) -> None:
        """Atomically check every covering budget and hold ``usd``/``tokens`` against them (``where``: this
        store's, the team's or both, as :meth:`gate` found them).
        """
        if where & LOCAL:
            self._reserve_local(call_id, who, usd, tokens)
        if where & TEAM and self.shared is not None:
            self._reserve_shared(call_id, who, usd, tokens)

    def _reserve_local(self, call_id: str, who: Attribution, usd: float, tokens: int) -> None:
        with self.store.transaction() as conn:
            for budget in _covering(conn, who):
                spent_usd, spent_tokens, held_usd, held_tokens = self._usage(conn, budget)
                name = _name(budget)
                if budget["limit_usd"] is not None and spent_usd + held_usd + usd > budget["limit_usd"] + 1e-12:
                    raise BudgetExceeded(
                        f"budget {name} would be exceeded: spent ${spent_usd:.6f} + reserved ${held_usd:.6f} "
                        f"+ this call up to ${usd:.6f} > ${budget['limit_usd']:.6f}; nothing was sent. Raise it "
                        f"(%llm_budget --set {name.split(' ')[0]} USD), lower --max-tokens"
                        + (
                            ", or wait for the next period"
                            if budget["period"] != "total"
                            else " (a total budget does not renew)"
                        )
                    )
                if budget["limit_tokens"] is not None and spent_tokens + held_tokens + tokens > budget["limit_tokens"]:
                    raise BudgetExceeded(
                        f"budget {name} would be exceeded: {spent_tokens} tokens used + {held_tokens} reserved + "
                        f"up to {tokens} for this call > {budget['limit_tokens']}; nothing was sent. Raise it or "
                        "lower --max-tokens"
                    )
            conn.execute(
                'INSERT INTO reservations (call_id, "user", task, agent, session, usd, tokens, created_at) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (call_id, who.user, who.task, who.agent, who.session, usd, tokens, utcnow()),
            )

    def _reserve_shared(self, call_id: str, who: Attribution, usd: float, tokens: int) -> None:
        """The team's half of :meth:`reserve` (this store's reservation is given back if the team refuses)."""
        assert self.shared is not None
        keys = {s: k for s in SCOPES if (k := who.key(s)) is not None}
        try:
            out = self.shared.reserve(call_id, keys, usd, tokens)
        except Unreachable as exc:
            try:
                self._down(exc)
            except TeamStateDown:
                self.release(call_id)
                raise
            return
        if isinstance(out, int):
            if out:
                self._held.add(call_id)
            return
        self.release(call_id)
        name = f"team {display(out.budget)}"
        if out.unit == "usd":
            raise BudgetExceeded(
                f"budget {name} would be exceeded: spent ${out.spent:.6f} + reserved ${out.held:.6f} + this call up "
                f"to ${out.asked:.6f} > ${out.limit:.6f}; nothing was sent. Raise it (%llm_budget --set "
                f"{name.split(' ')[1]} USD) or lower --max-tokens"
            )
        raise BudgetExceeded(
            f"budget {name} would be exceeded: {out.spent:.0f} tokens used + {out.held:.0f} reserved + up to "
            f"{out.asked:.0f} for this call > {out.limit:.0f}; nothing was sent. Raise it or lower --max-tokens"
        )

    def release(self, call_id: str) -> None:
        """Drop a reservation whose call was never recorded with a cost."""
        self.store.execute("DELETE FROM reservations WHERE call_id = ?", (call_id,))
        self.settle(call_id, 0.0, 0)

    def settle(self, call_id: str, usd: float, tokens: int) -> list[str]:
        """The team's side of a recorded call: its cost replaces its hold (this store's reservation went with the
        call's row); warns of each team threshold it crossed first.
        """
        if self.shared is None or call_id not in self._held:
            return []
        self._held.discard(call_id)
        try:
            crossed = self.shared.settle(call_id, usd, tokens)
        except Unreachable as exc:  # the hold lapses on its own; this call's spend is not counted by the team
            self.team.fallback(f"the team's count of call {call_id}'s cost (the hold lapses) and budgets", exc)  # type: ignore[union-attr]
            return []
        notices = [
            f"team budget {display(name)} has reached {threshold:.0%} (${spent_usd:.6f}, {spent_tokens} tokens)"
            for name, threshold, spent_usd, spent_tokens in crossed
        ]
        for notice in notices:
            warn_at_caller(notice, BudgetWarning)
        return notices

    def notify(self, who: Attribution) -> list[str]:
        """Record and warn about each threshold newly crossed by the budgets covering ``who``."""
        notices = []
        with self.store.transaction() as conn:
            for budget in _covering(conn, who):
                spent_usd, spent_tokens, _, _ = self._usage(conn, budget)
                fractions = []
                if budget["limit_usd"]:
                    fractions.append(spent_usd / budget["limit_usd"])
                if budget["limit_tokens"]:
                    fractions.append(spent_tokens / budget["limit_tokens"])
                used = max(fractions, default=0.0)
                for threshold in json.loads(budget["thresholds"] or "[]"):
                    if used < threshold:
                        continue
                    cursor = conn.execute(
                        "INSERT OR IGNORE INTO budget_events (budget_id, threshold, period_start, spent_usd, "
                        "spent_tokens, at) VALUES (?, ?, ?, ?, ?, ?)",
                        (budget["id"], threshold, _start(budget), spent_usd, spent_tokens, utcnow()),
                    )
                    if cursor.rowcount:
                        self.store.audit(
                            conn,
                            "budget",
                            _name(budget),
                            {
                                "event": "threshold",
                                "threshold": threshold,
                                "spent_usd": spent_usd,
                                "spent_tokens": spent_tokens,
                            },
                            bind=[("budget_events", str(cursor.lastrowid))],
                        )
                        notices.append(
                            f"budget {_name(budget)} has reached {threshold:.0%} "
                            f"(${spent_usd:.6f} of ${budget['limit_usd'] or 0:.6f}, "
                            f"{spent_tokens} tokens)"
                        )
        for notice in notices:
            warn_at_caller(notice, BudgetWarning)
        return notices

    def _usage(self, conn: Any, budget: dict[str, Any]) -> tuple[float, int, float, int]:
        """(spent USD, spent tokens, reserved USD, reserved tokens) for a budget, now."""
        column = "" if budget["scope"] == "global" else f'AND "{budget["scope"]}" = :key'
        params = {
            "scope": budget["scope"],
            "key": budget["key"],
            "start": _start(budget),
            "fresh": (datetime.now(UTC) - RESERVATION_TTL).isoformat(timespec="microseconds"),
        }
        spent = conn.execute(
            f"SELECT {spent_sql('usd')}, {spent_sql('tokens')} FROM (SELECT :scope AS scope, :key AS key, "
            ":start AS start) b",
            params,
        ).fetchone()
        held = conn.execute(
            "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(tokens), 0) FROM reservations "
            f"WHERE created_at >= :fresh {column}",
            params,
        ).fetchone()
        return float(spent[0]), int(spent[1]), float(held[0]), int(held[1])


def spent_sql(what: Literal["usd", "tokens"]) -> str:
    """SQL for what a budget row ``b`` (columns ``scope``, ``key``, ``start``) has spent since ``start``.

    The hourly totals (``spend``, kept by triggers on ``calls``) give every whole hour from ``start``;
    when ``start`` falls inside an hour (a budget counted ``since`` an instant), that hour's calls
    after it are summed from ``calls`` itself. So a check reads a few rows per hour of the period,
    never every call in it.
    """
    column = {"usd": "cost_usd", "tokens": "total_tokens"}[what]
    return (
        f"((SELECT COALESCE(SUM(s.{what}), 0) FROM spend s WHERE s.scope = b.scope AND s.key = b.key "
        "AND s.hour >= substr(b.start, 1, 13) AND (length(b.start) <= 10 OR s.hour > substr(b.start, 1, 13))) "
        f"+ CASE WHEN length(b.start) <= 10 THEN 0 ELSE (SELECT COALESCE(SUM(c.{column}), 0) FROM calls c "
        f"WHERE {spent('c.')} AND c.started_at >= b.start "
        "AND c.started_at < substr(b.start, 1, 13) || ':99' AND CASE b.scope WHEN 'global' THEN 1 "
        "WHEN 'user' THEN c.user = b.key WHEN 'task' THEN c.task = b.key WHEN 'agent' THEN c.agent = b.key "
        "WHEN 'session' THEN c.session = b.key ELSE 0 END) END)"
    )


def _start(budget: dict[str, Any]) -> str:
    """Where a budget's count begins: its period's start, or its ``since`` if later."""
    return max(period_start(budget["period"]), budget.get("since") or "")


def _covering(conn: Any, who: Attribution) -> list[dict[str, Any]]:
    cursor = conn.execute("SELECT * FROM budgets ORDER BY id")
    names = [c[0] for c in cursor.description]
    budgets = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return [b for b in budgets if who.key(b["scope"]) == b["key"]]


def _name(budget: dict[str, Any]) -> str:
    scope = "global" if budget["scope"] == "global" else f"{budget['scope']}:{budget['key']}"
    return f"{scope} ({budget['period']})"


def _max_output_tokens(litellm: Any, model: str) -> int:
    if model.startswith("local/"):
        return DEFAULT_MAX_OUTPUT_TOKENS  # what litellm's map gives an unknown name
    try:
        return int(litellm.get_max_tokens(model) or DEFAULT_MAX_OUTPUT_TOKENS)
    except Exception:  # litellm raises plain Exception for models missing from its map
        return DEFAULT_MAX_OUTPUT_TOKENS
