"""What the JupyterLab panel shows, as JSON-ready dicts read from one store (``server.py`` serves them).

The panel's once-a-second :func:`poll` is one SQL statement over indexes: the calls after the
newest the panel has, the pending approvals, the kill switch, each budget's spend in its
period, and the newest alert and guard event ids (the panel reads :func:`alerts` only when
those move). The other views are read when the user asks: one call in full (request,
answer, attempts, spans), recent alerts and guard events, the costs by model. With
``[team]``, the team's budgets and kill switch come from Redis beside it. Decisions and the kill switch
go through the same runtime calls as ``wb.approvals.decide`` and ``wb.kill`` (one
compare-and-set; an audit entry), so a decision taken here is like one taken anywhere.

Texts are returned as data, never as markup: the panel renders them as text.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from workbench.cost.budgets import period_start, spent_sql
from workbench.errors import KillSwitchActive, WorkbenchError
from workbench.store import utcnow

if TYPE_CHECKING:
    from workbench.runtime import Workbench

CALL_COLUMNS = (
    "id",
    "started_at",
    "session",
    "route",
    "model",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "user",
    "task",
    "error",
)
APPROVAL_COLUMNS = (
    "id",
    "created_at",
    "expires_at",
    "status",
    "tool",
    "risk",
    "arguments",
    "reason",
    "session",
    "agent",
    "run_id",
    "escalated_to",
)
WARN_AT = 0.8  # the status bar turns red from this fraction of the tightest budget
PERIODS = {"day": "today", "week": "this week", "month": "this month", "total": "in all"}


def _clean(value: Any) -> Any:
    """A value JSON can carry (NaN and infinities become null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def calls(
    wb: Workbench,
    *,
    after: str | None = None,
    session: str | None = None,
    model: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The latest calls, newest first (``after``: only those started after that instant), with guard flags."""
    where, params = ["1 = 1"], []
    for column, value in (("session", session), ("model", model), ("status", status)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if after:
        where.append("started_at > ?")
        params.append(after)
    columns = ", ".join(f"c.{c}" for c in CALL_COLUMNS)
    rows = wb.store.query(
        f"SELECT {columns}, (SELECT group_concat(DISTINCT g.scanner || ':' || g.action) FROM guard_events g "
        f"WHERE g.call_id = c.id) AS guard FROM calls c WHERE {' AND '.join(where)} "
        f"ORDER BY c.started_at DESC LIMIT ?",
        [*params, max(1, min(int(limit), 500))],
    )
    out = _listed(rows)
    return {"calls": out, "latest": out[0]["started_at"] if out else after}


def _listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Listed calls as the panel takes them: JSON-safe numbers, guard flags as a sorted list."""
    out = [{k: _clean(v) for k, v in row.items()} for row in rows]
    for row in out:
        row["guard"] = sorted(row["guard"].split(",")) if row["guard"] else []
    return out


def _json_columns(alias: str, columns: tuple[str, ...]) -> str:
    return ", ".join(f"'{c}', {alias}.{c}" for c in columns)


# The pending (and escalated) approvals not yet expired, oldest first, as a JSON array (arguments as JSON).
PENDING_SQL = f"""SELECT json_group_array(json_object({
    _json_columns("a", tuple(x for x in APPROVAL_COLUMNS if x != "arguments"))
}, 'arguments', CASE WHEN json_valid(COALESCE(a.arguments, '{{}}')) THEN json(COALESCE(a.arguments, '{{}}'))
                     ELSE a.arguments END)) AS pending
   FROM (SELECT * FROM approvals WHERE status IN ('pending', 'escalated') AND expires_at >= :now
         ORDER BY created_at) a"""
# Today's spend (every scope's calls are in the global totals).
TODAY_SQL = "SELECT COALESCE(SUM(usd), 0) FROM spend WHERE scope = 'global' AND key = '' AND hour >= :day"

POLL_SQL = f"""
SELECT
  (SELECT json_group_array(json_object({_json_columns("c", CALL_COLUMNS)}, 'guard', (
       SELECT group_concat(DISTINCT g.scanner || ':' || g.action) FROM guard_events g WHERE g.call_id = c.id)))
   FROM (SELECT * FROM calls WHERE started_at > :after ORDER BY started_at DESC LIMIT :limit) c) AS calls,
  ({PENDING_SQL}) AS approvals,
  (SELECT reason FROM switches WHERE name = 'kill' AND active = 1) AS killed,
  (SELECT json_group_array(json_object('scope', b.scope, 'key', b.key, 'period', b.period,
       'limit_usd', b.limit_usd, 'spent_usd', {spent_sql("usd")}))
   FROM (SELECT scope, key, period, limit_usd,
                max(CASE period WHEN 'day' THEN :day WHEN 'month' THEN :month ELSE '' END, COALESCE(since, '')) AS start
         FROM budgets WHERE limit_usd > 0) b) AS budgets,
  ({TODAY_SQL}) AS today_usd,
  (SELECT MAX(id) FROM alerts) AS alert_id,
  (SELECT MAX(id) FROM guard_events) AS guard_id
"""


def poll(wb: Workbench, after: str | None = None, limit: int = 50) -> dict[str, Any]:
    """What the panel shows every second, in one statement: new calls, pending approvals, spend, kill switch.

    ``alerts_at`` changes when an alert fires or a guard acts (the panel then reads :func:`alerts`).
    A read: it never takes the store's write lock; expired approvals are left out, not marked.
    """
    row = wb.store.query(
        POLL_SQL,
        {
            "after": after or "",
            "limit": max(1, min(int(limit), 500)),
            "now": utcnow(),
            "day": period_start("day"),
            "month": period_start("month"),
        },
    )[0]
    out = _listed(json.loads(row["calls"]))
    rows = json.loads(row["approvals"])
    budgets = [
        {
            "scope": b["scope"] if b["scope"] == "global" else f"{b['scope']}:{b['key']}",
            "period": b["period"],
            "limit_usd": b["limit_usd"],
            "spent_usd": round(b["spent_usd"], 6),
        }
        for b in json.loads(row["budgets"])
    ]
    if wb.budgets.team is not None:  # the team's budgets and kill switch live in Redis, not in this store
        money = spend(wb, by_model=False)
    else:
        killed = row["killed"] and f"the kill switch is on ({row['killed']})"
        money = _spend(budgets, killed, row["today_usd"])
    return {
        "calls": out,
        "latest": out[0]["started_at"] if out else after,
        "approvals": rows,
        "pending": len(rows),
        "spend": money,
        "alerts_at": [row["alert_id"], row["guard_id"]],
    }


def call(wb: Workbench, call_id: str) -> dict[str, Any]:
    """One call in full: its row (prompt, answer, request), attempts and spans."""
    rows = wb.store.query("SELECT * FROM calls WHERE id = ?", (call_id,))
    if not rows:
        raise WorkbenchError(f"no call {call_id!r} in this store")
    row = {k: _clean(v) for k, v in rows[0].items()}
    attempts = wb.store.query("SELECT * FROM attempts WHERE call_id = ? ORDER BY n", (call_id,))
    spans = wb.store.query(
        "SELECT span_id, parent_id, name, start_ns, end_ns, status, attributes FROM spans "
        "WHERE trace_id = ? AND call_id = ? ORDER BY start_ns",  # (by the key's trace: not every span in the store)
        (rows[0]["trace_id"], call_id),
    )
    first = spans[0]["start_ns"] if spans else 0
    for span in spans:  # the waterfall: each span's offset and length in ms from the call's first
        span["offset_ms"] = (span["start_ns"] - first) / 1e6
        span["duration_ms"] = ((span["end_ns"] or span["start_ns"]) - span["start_ns"]) / 1e6
        span["attributes"] = json.loads(span["attributes"] or "{}")
    return {"call": row, "attempts": attempts, "spans": spans}


def approvals(wb: Workbench) -> dict[str, Any]:
    """The pending (and escalated) approvals not yet expired, oldest first, with their arguments as JSON.

    A read: polled every second, it never takes the store's write lock (``wb.approvals.pending()``
    marks the expired ones; here they are only left out).
    """
    rows = json.loads(wb.store.query(PENDING_SQL, {"now": utcnow()})[0]["pending"])
    return {"approvals": rows, "pending": len(rows)}


def decide(
    wb: Workbench,
    approval_id: str,
    decision: str,
    *,
    by: str,
    reason: str = "",
    arguments: dict[str, Any] | None = None,
    to: str | None = None,
) -> dict[str, Any]:
    """Decide a pending approval as ``by`` (raises :class:`~workbench.errors.ApprovalError` when it can't)."""
    if decision not in ("approve", "reject", "modify", "escalate"):
        raise WorkbenchError(f"decision must be approve, reject, modify or escalate (got {decision!r})")
    if decision == "modify" and not isinstance(arguments, dict):
        raise WorkbenchError("modify needs the edited arguments as a JSON object")
    if decision == "escalate" and not to:
        raise WorkbenchError("escalate needs who must decide (to)")
    d = wb.approvals.decide(approval_id, decision, by=by, reason=reason, arguments=arguments, to=to)
    return {"id": approval_id, "decision": d.decision, "by": d.by, "to": d.to}


def alerts(wb: Workbench, limit: int = 50) -> dict[str, Any]:
    """Recent alerts and guard events, newest first."""
    fired = wb.store.query(
        "SELECT id, at, rule, event, metric, value, above, route, call_id FROM alerts ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    guard = wb.store.query(
        "SELECT id, at, call_id, session, stage, scanner, action, findings FROM guard_events "
        "WHERE action != 'pass' ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    for event in guard:
        try:
            event["findings"] = json.loads(event["findings"] or "[]")
        except ValueError:
            pass
    return {"alerts": [{k: _clean(v) for k, v in a.items()} for a in fired], "guard": guard}


def spend(wb: Workbench, by_model: bool = True) -> dict[str, Any]:
    """Spend against the tightest budget ("$0.42 / $5.00 today"), the kill switch, and the costs by model."""
    budgets = [b for b in wb.budgets.df().to_dict("records") if b["limit_usd"]]
    try:
        wb.budgets.gate()
        killed = None
    except KillSwitchActive as exc:
        killed = str(exc)
    except WorkbenchError:
        killed = None
    with wb.store.lock:
        today = wb.store.conn.execute(TODAY_SQL, {"day": period_start("day")}).fetchone()[0]
    out = _spend(budgets, killed, today)
    if by_model:
        out["by_model"] = wb.store.query(
            "SELECT model, COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0) AS cost_usd FROM calls "
            "WHERE mode = 'live' GROUP BY model ORDER BY cost_usd DESC LIMIT 20"
        )
        out["total_usd"] = sum(m["cost_usd"] for m in out["by_model"])
    return out


def _spend(budgets: list[dict[str, Any]], killed: str | None, today_usd: float) -> dict[str, Any]:
    """The status bar's figures: the tightest budget (the most used), the kill switch, today's spend."""
    for b in budgets:
        b["used"] = round(b["spent_usd"] / b["limit_usd"], 3) if b["limit_usd"] else None
    tightest = max(budgets, key=lambda b: b["used"] or 0.0, default=None)
    budget = None
    if tightest is not None:
        budget = {
            "scope": tightest["scope"],
            "period": tightest["period"],
            "limit_usd": tightest["limit_usd"],
            "spent_usd": tightest["spent_usd"],
            "used": tightest["used"],
            "label": f"${tightest['spent_usd']:.2f} / ${tightest['limit_usd']:.2f} "
            f"{PERIODS.get(tightest['period'], tightest['period'])}",
            "crossed": bool(tightest["used"] is not None and tightest["used"] >= WARN_AT),
        }
    return {"budget": budget, "killed": killed, "today_usd": today_usd}


def kill(wb: Workbench, reason: str, by: str) -> dict[str, Any]:
    """Turn the kill switch on (every new call on this store, or the team's, is refused)."""
    if not reason.strip():
        raise WorkbenchError("the kill switch needs a reason")
    wb.kill(f"{reason.strip()} (by {by}, from the workbench panel)")
    return spend(wb)


def lift(wb: Workbench) -> dict[str, Any]:
    """Lift the kill switch."""
    wb.budgets.lift()
    return spend(wb)
