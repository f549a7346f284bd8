"""What the JupyterLab panel shows, as JSON-ready dicts read from one store (``server.py`` serves them).

Each view is one or two indexed queries, so a panel polling once a second costs the store
little: the latest calls (or only those after the newest the panel has), one call in full
(request, answer, attempts, spans), the pending approvals, recent alerts and guard events,
and spend against the tightest budget with the kill switch. Decisions and the kill switch
go through the same runtime calls as ``wb.approvals.decide`` and ``wb.kill`` (one
compare-and-set; an audit entry), so a decision taken here is like one taken anywhere.

Texts are returned as data, never as markup: the panel renders them as text.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

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
    out = [{k: _clean(v) for k, v in row.items()} for row in rows]
    for row in out:
        row["guard"] = sorted(row["guard"].split(",")) if row["guard"] else []
    return {"calls": out, "latest": out[0]["started_at"] if out else after}


def call(wb: Workbench, call_id: str) -> dict[str, Any]:
    """One call in full: its row (prompt, answer, request), attempts and spans."""
    rows = wb.store.query("SELECT * FROM calls WHERE id = ?", (call_id,))
    if not rows:
        raise WorkbenchError(f"no call {call_id!r} in this store")
    row = {k: _clean(v) for k, v in rows[0].items()}
    attempts = wb.store.query("SELECT * FROM attempts WHERE call_id = ? ORDER BY n", (call_id,))
    spans = wb.store.query(
        "SELECT span_id, parent_id, name, start_ns, end_ns, status, attributes FROM spans "
        "WHERE call_id = ? ORDER BY start_ns",
        (call_id,),
    )
    first = spans[0]["start_ns"] if spans else 0
    for span in spans:  # the waterfall: each span's offset and length in ms from the call's first
        span["offset_ms"] = (span["start_ns"] - first) / 1e6
        span["duration_ms"] = ((span["end_ns"] or span["start_ns"]) - span["start_ns"]) / 1e6
        span["attributes"] = json.loads(span["attributes"] or "{}")
    return {"call": row, "attempts": attempts, "spans": spans}


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


def approvals(wb: Workbench) -> dict[str, Any]:
    """The pending (and escalated) approvals not yet expired, oldest first, with their arguments as JSON.

    A read: polled every second, it never takes the store's write lock (``wb.approvals.pending()``
    marks the expired ones; here they are only left out).
    """
    rows = wb.store.query(
        f"SELECT {', '.join(APPROVAL_COLUMNS)} FROM approvals WHERE status IN ('pending', 'escalated') "
        "AND expires_at >= ? ORDER BY created_at",
        (utcnow(),),
    )
    for row in rows:
        try:
            row["arguments"] = json.loads(row.get("arguments") or "{}")
        except ValueError:
            pass
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


def spend(wb: Workbench) -> dict[str, Any]:
    """Spend against the tightest budget ("$0.42 / $5.00 today"), the costs by model, and the kill switch."""
    budgets = [b for b in wb.budgets.df().to_dict("records") if b["limit_usd"]]
    tightest = max(budgets, key=lambda b: b["used"] or 0.0, default=None)
    by_model = wb.store.query(
        "SELECT model, COUNT(*) AS calls, COALESCE(SUM(cost_usd), 0) AS cost_usd FROM calls "
        "WHERE mode = 'live' GROUP BY model ORDER BY cost_usd DESC LIMIT 20"
    )
    try:
        wb.budgets.gate()
        killed = None
    except KillSwitchActive as exc:
        killed = str(exc)
    except WorkbenchError:
        killed = None
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
    total = sum(m["cost_usd"] for m in by_model)
    return {"budget": budget, "total_usd": total, "by_model": by_model, "killed": killed}


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
