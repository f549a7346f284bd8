"""Approvals: which tool calls need a human, the queue of those waiting, and every decision.

``[approvals]`` decides per tool call: the first rule that matches (tool glob, risk, the
run's spend so far, whether a guardrail flagged the arguments) says ``approve``, ``ask``
or ``reject``; otherwise the default for the tool's risk (destructive: ask). An ``ask``
becomes a pending row in ``approvals`` that a human decides — ``approve``, ``modify``
(edited arguments), ``reject`` (with a reason) or ``escalate`` (stays pending, marked for
someone with more authority) — from the notebook's approval card, ``%llm_approvals``,
``workbench approvals`` in a terminal, or a programmatic ``decider`` (tests, headless
notebooks). Pending approvals expire after ``expire_s``. Who, when, what and why are
recorded with every decision.
"""

from __future__ import annotations

import fnmatch
import getpass
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from workbench.config import ApprovalSettings
from workbench.errors import WorkbenchError
from workbench.store import Store, new_id, utcnow

if TYPE_CHECKING:
    import pandas as pd

DECISIONS = ("approve", "modify", "reject", "escalate")


class ApprovalError(WorkbenchError):
    """An approval is unknown, already decided, expired, or the decision is malformed."""


@dataclass(frozen=True)
class Decision:
    """A human's (or a decider's) answer to a pending approval."""

    decision: str  # approve | modify | reject | escalate
    by: str = "decider"
    reason: str = ""
    arguments: dict[str, Any] | None = None  # with modify: the arguments to run with instead

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ApprovalError(f"decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}")
        if self.decision == "modify" and not isinstance(self.arguments, dict):
            raise ApprovalError("modify needs the edited arguments (a dict)")


Decider = Callable[[dict[str, Any]], "Decision | bool | None"]


class Approvals:
    """``wb.approvals``: the policy, the pending queue and the decisions."""

    def __init__(self, store: Store, settings: ApprovalSettings):
        self.store, self.settings = store, settings
        self.decider: Decider | None = None  # answers synchronously (tests, headless runs); None: park and wait

    def policy(self, tool: str, risk: str, spent_usd: float = 0.0, flagged: bool = False) -> str:
        """``approve``, ``ask`` or ``reject`` for a call of ``tool`` (first matching rule, else the risk default).

        ``flagged``: a guardrail flagged the call's arguments (rules with ``flagged = true`` match only then).
        """
        for rule in self.settings.rules:
            if rule.flagged is not None and rule.flagged != flagged:
                continue
            if not fnmatch.fnmatchcase(tool, rule.tool):
                continue
            if rule.risk is not None and rule.risk != risk:
                continue
            if rule.min_cost_usd is not None and spent_usd < rule.min_cost_usd:
                continue
            return rule.decision
        return self.settings.default.get(risk, "ask")

    def request(self, tool: str, arguments: dict[str, Any], *, risk: str, reason: str, session: str | None = None,
                agent: str | None = None, run_id: str | None = None,
                tool_call_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Queue a pending approval; returns its row."""
        now = datetime.now(UTC)
        row = {"id": new_id(), "created_at": now.isoformat(timespec="microseconds"),
               "expires_at": (now + timedelta(seconds=self.settings.expire_s)).isoformat(timespec="microseconds"),
               "status": "pending", "tool": tool, "risk": risk, "arguments": json.dumps(arguments, default=str),
               "reason": reason, "session": session, "agent": agent, "run_id": run_id, "tool_call_id": tool_call_id,
               "decided_by": None, "decided_at": None, "decision_reason": None, "final_arguments": None}  # fmt: skip
        with self.store.transaction() as conn:
            conn.execute(f"INSERT INTO approvals ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         tuple(row.values()))  # fmt: skip
            self.store.audit(conn, "approval", row["id"], {
                "event": "requested", "tool": tool, "risk": risk, "arguments": arguments, "reason": reason,
                "session": session, "agent": agent, "run_id": run_id})  # fmt: skip
        return row

    def ask_decider(self, row: dict[str, Any]) -> Decision | None:
        """The programmatic decider's answer for a pending row (recorded), or None when there is none."""
        if self.decider is None:
            return None
        request = {**row, "arguments": json.loads(row["arguments"])}
        answer = self.decider(request)
        if answer is None:
            return None
        decision = answer if isinstance(answer, Decision) else Decision(
            "approve" if answer else "reject", reason="" if answer else "declined")
        return self.decide(row["id"], decision.decision, by=decision.by, reason=decision.reason,
                           arguments=decision.arguments)  # fmt: skip

    def decide(self, approval_id: str, decision: str, *, by: str | None = None, reason: str = "",
               arguments: dict[str, Any] | None = None) -> Decision:  # fmt: skip
        """Record a decision on a pending approval (approve / modify / reject / escalate)."""
        d = Decision(decision, by or _who(), reason, arguments)
        row = self.get(approval_id)
        if row["status"] not in ("pending", "escalated"):
            raise ApprovalError(f"approval {approval_id} is already {row['status']}")
        if row["expires_at"] < utcnow():
            self._set(approval_id, "expired", "expiry", "not decided in time", None)
            raise ApprovalError(f"approval {approval_id} expired at {row['expires_at']}; the run stays stopped")
        status = {"approve": "approved", "modify": "modified", "reject": "rejected", "escalate": "escalated"}[decision]
        final = json.dumps(arguments if decision == "modify" else json.loads(row["arguments"]), default=str)
        self._set(approval_id, status, d.by, reason, final if decision in ("approve", "modify") else None)
        return d

    def get(self, approval_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if not rows:
            raise ApprovalError(f"no approval {approval_id!r}; %llm_approvals lists the pending ones")
        return rows[0]

    def expire(self) -> int:
        """Mark pending approvals past their time as expired; returns how many."""
        with self.store.transaction() as conn:
            expired = [r[0] for r in conn.execute("SELECT id FROM approvals WHERE status IN ('pending', 'escalated') "
                                                  "AND expires_at < ?", (utcnow(),))]  # fmt: skip
            for approval_id in expired:
                conn.execute("UPDATE approvals SET status = 'expired', decided_by = 'expiry', decided_at = ?, "
                             "decision_reason = 'not decided in time' WHERE id = ?",
                             (utcnow(), approval_id))  # fmt: skip
                self.store.audit(conn, "approval", approval_id, {"event": "expired", "by": "expiry"})
            return len(expired)

    def pending(self) -> pd.DataFrame:
        """Approvals waiting for a decision, across sessions, oldest first."""
        self.expire()
        return self._df("WHERE status IN ('pending', 'escalated') ORDER BY created_at")

    def df(self) -> pd.DataFrame:
        """Every approval and its decision, newest first."""
        return self._df("ORDER BY created_at DESC")

    def _df(self, where: str) -> pd.DataFrame:
        import pandas as pd

        cols = ["id", "created_at", "status", "tool", "risk", "arguments", "reason", "session", "agent", "run_id",
                "decided_by", "decided_at", "decision_reason", "final_arguments", "expires_at"]  # fmt: skip
        return pd.DataFrame(self.store.query(f"SELECT {', '.join(cols)} FROM approvals {where}"), columns=cols)

    def _set(self, approval_id: str, status: str, by: str, reason: str, final: str | None) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, decision_reason = ?, "
                         "final_arguments = ? WHERE id = ?",
                         (status, by, utcnow(), reason, final, approval_id))  # fmt: skip
            self.store.audit(conn, "approval", approval_id, {
                "event": status, "by": by, "reason": reason,
                "final_arguments": json.loads(final) if final else None}, who={"user": by})  # fmt: skip


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on this system
        return "unknown"
