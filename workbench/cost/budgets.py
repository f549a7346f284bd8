"""Budgets that cannot be overspent, soft thresholds, and the kill switch.

Before a call is sent, its worst case (prompt tokens + the most output tokens it
may produce, at the priciest deployment of its route) is **reserved** against every
budget covering it, inside one ``BEGIN IMMEDIATE`` transaction: the check and the
reservation are one atomic step for every thread, event loop and process sharing
the store, so concurrent calls cannot all pass a check before any spend is
recorded. When the call is recorded, the reservation is deleted in the same
transaction that writes its real cost.

A budget covers calls by scope: ``global``, or ``user:``/``task:``/``agent:``/``session:``
plus a key; over a period: ``day`` or ``month`` (UTC) or ``total``; in USD, tokens or both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from workbench.config import Route, Settings
from workbench.errors import BudgetExceeded, KillSwitchActive, WorkbenchError, warn_at_caller
from workbench.serving import Request, litellm_module
from workbench.serving.policies import unit_prices
from workbench.store import Store, utcnow

Scope = Literal["global", "user", "task", "agent", "session"]
Period = Literal["day", "month", "total"]
SCOPES: tuple[str, ...] = ("global", "user", "task", "agent", "session")
PERIODS: tuple[str, ...] = ("day", "month", "total")
DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)
DEFAULT_MAX_OUTPUT_TOKENS = 4096
RESERVATION_TTL = timedelta(minutes=15)  # a reservation left by a crashed process stops counting


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
    scope, _, key = text.partition(":")
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

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings

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
                raise WorkbenchError(f"budget since={since!r}: give 'now' or an ISO date like 2026-12-01") from None
        if period not in PERIODS:
            raise WorkbenchError(f"budget period {period!r}: use one of {', '.join(PERIODS)}")
        if usd is None and tokens is None:
            raise WorkbenchError("a budget needs a limit: give usd=..., tokens=... or both")
        if (usd is not None and usd < 0) or (tokens is not None and tokens < 0):
            raise WorkbenchError("budget limits must be zero or more")
        if any(not 0 < t <= 1 for t in thresholds):
            raise WorkbenchError("budget thresholds are fractions of the limit, each in (0, 1]")
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
        """Refuse every new call, in every process sharing the store, until :meth:`lift`."""
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO switches (name, active, reason, at) VALUES ('kill', 1, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET active = 1, reason = excluded.reason, at = excluded.at",
                (reason, utcnow()),
            )
            self.store.audit(conn, "kill", "switch", {"active": True, "reason": reason}, bind=[("switches", "kill")])

    def lift(self) -> None:
        """Allow calls again."""
        with self.store.transaction() as conn:
            if conn.execute("UPDATE switches SET active = 0, at = ? WHERE name = 'kill'", (utcnow(),)).rowcount:
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

    # ---- the pipeline stage ----------------------------------------------------------

    def gate(self) -> bool:
        """Refuse at once if the kill switch is on; tell whether any budget exists."""
        with self.store.lock:
            row = self.store.conn.execute(
                "SELECT (SELECT reason FROM switches WHERE name = 'kill' AND active = 1), "
                "EXISTS (SELECT 1 FROM budgets)"
            ).fetchone()
        if row[0] is not None:
            raise KillSwitchActive(
                f"the kill switch is on ({row[0]}): no call is sent until it is lifted "
                "with wb.budgets.lift(), %llm_budget --lift or `workbench budget lift`"
            )
        return bool(row[1])

    def estimate(self, route: Route, request: Request) -> tuple[float, int]:
        """The worst case of a call: (USD, tokens) over the route's deployments."""
        litellm = litellm_module()
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
        litellm = litellm_module()
        return max(request.params.get("max_tokens") or _max_output_tokens(litellm, d.model) for d in route.deployments)

    def reserve(self, call_id: str, who: Attribution, usd: float, tokens: int) -> None:
        """Atomically check every covering budget and hold ``usd``/``tokens`` against them."""
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

    def release(self, call_id: str) -> None:
        """Drop a reservation whose call was never recorded with a cost."""
        self.store.execute("DELETE FROM reservations WHERE call_id = ?", (call_id,))

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
            "key": budget["key"],
            "since": _start(budget),
            "fresh": (datetime.now(UTC) - RESERVATION_TTL).isoformat(timespec="microseconds"),
        }
        spent = conn.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(total_tokens), 0) FROM calls "
            f"WHERE status = 'ok' AND mode = 'live' AND started_at >= :since {column}",
            params,
        ).fetchone()
        held = conn.execute(
            "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(tokens), 0) FROM reservations "
            f"WHERE created_at >= :fresh {column}",
            params,
        ).fetchone()
        return float(spent[0]), int(spent[1]), float(held[0]), int(held[1])


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
    try:
        return int(litellm.get_max_tokens(model) or DEFAULT_MAX_OUTPUT_TOKENS)
    except Exception:  # litellm raises plain Exception for models missing from its map
        return DEFAULT_MAX_OUTPUT_TOKENS
