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

A decision is one compare-and-set from ``pending`` (or ``escalated``) inside ``BEGIN
IMMEDIATE``: of two people deciding at once, in any processes, one wins and the other
gets an :class:`ApprovalError` naming the decision that stands. Edited arguments
(``modify``) are checked like the model's own — the tool's schema and every tool-call
guardrail (``checker``, wired by the runtime) — before they are accepted, and again
before the tool runs. ``escalate(id, to=NAME)`` hands the decision to NAME (posted to
the alerts webhook); after that only NAME may decide, and with ``[approvals]
approvers`` set only the people listed may decide at all. Who decides is the name given
(``by=``, default the OS user): an accountability record, not an authentication.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from workbench.config import ApprovalSettings
from workbench.errors import WorkbenchError, shown
from workbench.guardrails.guard import Human
from workbench.guardrails.scanners import check_name, scrub, scrub_values
from workbench.store import Store, new_id, utcnow

if TYPE_CHECKING:
    import pandas as pd

DECISIONS = ("approve", "modify", "reject", "escalate")


RISKS = ("read", "write", "destructive")  # a tool's risk, as tools declare it (integrations/tools.py)


class ApprovalError(WorkbenchError):
    """An approval is unknown, already decided, expired, or the decision is malformed."""


@dataclass(frozen=True)
class Decision:
    """A human's (or a decider's) answer to a pending approval."""

    decision: str  # approve | modify | reject | escalate
    by: str = "decider"
    reason: str = ""
    arguments: dict[str, Any] | None = None  # with modify: the arguments to run with instead
    to: str | None = None  # with escalate: who must decide now

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ApprovalError(f"decision must be one of {', '.join(DECISIONS)}, not {self.decision!r}")
        if self.decision == "modify" and not isinstance(self.arguments, dict):
            raise ApprovalError("modify needs the edited arguments (a dict)")
        if self.decision == "escalate" and not (isinstance(self.to, str) and self.to.strip()):
            raise ApprovalError(
                "escalate needs who must decide: escalate(ID, to='manager') "
                "(workbench approvals escalate ID --to manager)"
            )


Decider = Callable[[dict[str, Any]], "Decision | bool | None"]
Checker = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]  # (approval row, edited arguments) -> checked
_STATUS = {"approve": "approved", "modify": "modified", "reject": "rejected", "escalate": "escalated"}


class Approvals:
    """``wb.approvals``: the policy, the pending queue and the decisions."""

    def __init__(self, store: Store, settings: ApprovalSettings):
        self.store, self.settings = store, settings
        self.human = Human()  # the runtime shares the guard's: one human-decision callback per workbench
        self.checker: Checker | None = None  # edited arguments through the tool's schema and the guardrails
        self.notify: Callable[[str, str], None] | None = None  # (approval id, text): an escalation was posted

    @property
    def decider(self) -> Decider | None:
        """Answers pending approvals synchronously (tests, headless runs); None: park and wait for a person.
        The same callback answers the guardrails' ``ask`` (``wb.guard.approver``): see ``Human``.
        """
        return self.human.decide

    @decider.setter
    def decider(self, decide: Decider | None) -> None:
        self.human.decide = decide

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
        return self.settings.default.get(risk, "ask") if risk in RISKS else "ask"  # type: ignore[call-overload]

    def request(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        risk: str,
        reason: str,
        session: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        tool_call_id: str | None = None,
    ) -> dict[str, Any]:
        """Queue a pending approval; returns its row. Its arguments are stored (and later run) with any secret in
        them redacted, as a model's tool call is.
        """
        if not isinstance(tool, str) or not tool.strip():
            raise ApprovalError(f"an approval is asked for a tool, named by text, not {tool!r}")
        _check_arguments(arguments)
        if risk not in RISKS:  # (the policy and its rules are keyed by these)
            raise ApprovalError(f"risk must be one of {', '.join(RISKS)}, not {shown(risk)}")
        if not isinstance(reason, str):
            raise ApprovalError(f"reason is text (a name or a sentence), not {type(reason).__name__}")
        check_name("tool", tool)
        check_name("session", session)
        check_name("agent", agent)
        arguments = scrub_values(arguments)
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": new_id(),
            "created_at": now.isoformat(timespec="microseconds"),
            "expires_at": (now + timedelta(seconds=self.settings.expire_s)).isoformat(timespec="microseconds"),
            "status": "pending",
            "tool": tool,
            "risk": risk,
            "arguments": json.dumps(arguments, default=str),
            "reason": scrub(reason),
            "session": session,
            "agent": agent,
            "run_id": run_id,
            "tool_call_id": tool_call_id,
            "decided_by": None,
            "decided_at": None,
            "decision_reason": None,
            "final_arguments": None,
        }
        with self.store.transaction() as conn:
            conn.execute(
                f"INSERT INTO approvals ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )
            self.store.audit(
                conn,
                "approval",
                row["id"],
                {
                    "event": "requested",
                    "tool": tool,
                    "risk": risk,
                    "arguments": arguments,
                    "reason": reason,
                    "session": session,
                    "agent": agent,
                    "run_id": run_id,
                },
                bind=[("approvals", row["id"])],
            )
        return row

    def ask_decider(self, row: dict[str, Any]) -> Decision | None:
        """The programmatic decider's answer for a pending row (recorded), or None when there is none."""
        if self.decider is None:
            return None
        request = {**row, "kind": "approval", "arguments": json.loads(row["arguments"])}
        answer = self.decider(request)
        if answer is None:
            return None
        decision = (
            answer
            if isinstance(answer, Decision)
            else Decision("approve" if answer else "reject", reason="" if answer else "declined")
        )
        return self.decide(
            row["id"],
            decision.decision,
            by=decision.by,
            reason=decision.reason,
            arguments=decision.arguments,
            to=decision.to,
        )

    def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        by: str | None = None,
        reason: str = "",
        arguments: dict[str, Any] | None = None,
        to: str | None = None,
    ) -> Decision:
        """Record a decision on a pending approval (approve / modify / reject / escalate ``to`` someone).

        One compare-and-set: if someone else decided first, :class:`ApprovalError` names their decision.
        """
        for what, text in (("by", by), ("reason", reason), ("to", to)):
            if text is not None and not isinstance(text, str):
                raise ApprovalError(f"{what} is text (a name or a sentence), not {type(text).__name__}")
        to = check_name("escalated to", to.strip()) if to else None
        d = Decision(decision, check_name("by", by or _who()), scrub(reason) or "", arguments, to)
        row = self.get(approval_id)
        approvers = self.settings.approvers
        if d.to and approvers and d.to not in approvers:
            raise ApprovalError(f"can't escalate to {d.to}: [approvals] approvers lists {', '.join(approvers)}")
        if d.decision == "modify" and d.arguments is not None:
            _check_arguments(d.arguments)
        if d.decision == "modify" and self.checker is not None:
            try:
                d = Decision(d.decision, d.by, d.reason, self.checker(row, d.arguments or {}), d.to)
            except WorkbenchError as exc:
                raise ApprovalError(
                    f"the edited arguments for approval {approval_id} were refused, nothing was decided: {exc}"
                ) from None
        expired = self._compare_and_set(approval_id, d)
        if expired:
            self.expire()
            raise ApprovalError(f"approval {approval_id} expired at {expired}; the run stays stopped")
        if d.decision == "escalate" and self.notify is not None:
            self.notify(
                approval_id,
                f"approval {approval_id} ({row['tool']} {row['arguments']}) escalated by {d.by} "
                f"to {d.to}: {d.reason or 'no reason given'}",
            )
        return d

    def escalate(self, approval_id: str, to: str, *, by: str | None = None, reason: str = "") -> Decision:
        """Hand a pending approval to ``to``: only they may decide it now (posted to the alerts webhook)."""
        return self.decide(approval_id, "escalate", by=by, reason=reason, to=to)

    def _compare_and_set(self, approval_id: str, d: Decision) -> str | None:
        """Apply ``d`` if the approval is still undecided (else raise); returns the expiry time if it lapsed."""
        now = utcnow()
        with self.store.transaction() as conn:
            status, decided_by, decided_at, expires_at, escalated_to, arguments = conn.execute(
                "SELECT status, decided_by, decided_at, expires_at, escalated_to, arguments FROM approvals "
                "WHERE id = ?",
                (approval_id,),
            ).fetchone()
            if status not in ("pending", "escalated"):
                raise ApprovalError(
                    f"approval {approval_id} is already {status} (by {decided_by} at "
                    f"{(decided_at or '')[:19]}); a decision is taken once"
                )
            if expires_at < now:
                return expires_at
            self._authorised(approval_id, d.by, escalated_to)
            final = None
            if d.decision in ("approve", "modify"):
                final = json.dumps(d.arguments if d.decision == "modify" else json.loads(arguments), default=str)
            changed = conn.execute(
                "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, "
                "decision_reason = ?, final_arguments = ?, escalated_to = ? WHERE id = ? AND "
                "status IN ('pending', 'escalated')",
                (_STATUS[d.decision], d.by, now, d.reason, final, d.to or escalated_to, approval_id),
            ).rowcount
            if changed != 1:
                raise ApprovalError(f"approval {approval_id} was decided by someone else meanwhile")
            self.store.audit(
                conn,
                "approval",
                approval_id,
                {
                    "event": _STATUS[d.decision],
                    "by": d.by,
                    "reason": d.reason,
                    "to": d.to,
                    "final_arguments": json.loads(final) if final else None,
                },
                who={"user": d.by},
                bind=[("approvals", approval_id)],
            )
        return None

    def _authorised(self, approval_id: str, by: str, escalated_to: str | None) -> None:
        approvers = self.settings.approvers
        if escalated_to and by != escalated_to:
            raise ApprovalError(
                f"approval {approval_id} was escalated to {escalated_to}: only they can decide it, not {by}"
            )
        if approvers and by not in approvers:
            raise ApprovalError(f"{by} may not decide approvals: [approvals] approvers lists {', '.join(approvers)}")

    def vouch(self, approval_id: str) -> None:
        """Before a decision is acted on: refuse (:class:`~workbench.store.chain.AuditChainBroken`, and an alert)
        when the approval differs from what the audit log recorded for it (a decision edited or forged in the
        file). The claim that runs its tool checks again, in the transaction that claims it.
        """
        with self.store.transaction() as conn:
            self.store.check_vouched(conn, "approvals", approval_id)

    def get(self, approval_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if not rows:
            raise ApprovalError(f"no approval {approval_id!r}; %llm_approvals lists the pending ones")
        return rows[0]

    def expire(self) -> int:
        """Mark pending approvals past their time as expired; returns how many."""
        with self.store.transaction() as conn:
            expired = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM approvals WHERE status IN ('pending', 'escalated') AND expires_at < ?", (utcnow(),)
                )
            ]
            for approval_id in expired:
                conn.execute(
                    "UPDATE approvals SET status = 'expired', decided_by = 'expiry', decided_at = ?, "
                    "decision_reason = 'not decided in time' WHERE id = ?",
                    (utcnow(), approval_id),
                )
                self.store.audit(
                    conn,
                    "approval",
                    approval_id,
                    {"event": "expired", "by": "expiry"},
                    bind=[("approvals", approval_id)],
                )
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

        cols = [
            "id",
            "created_at",
            "status",
            "tool",
            "risk",
            "arguments",
            "reason",
            "session",
            "agent",
            "run_id",
            "decided_by",
            "decided_at",
            "decision_reason",
            "final_arguments",
            "escalated_to",
            "execution",
            "expires_at",
        ]
        return pd.DataFrame(self.store.query(f"SELECT {', '.join(cols)} FROM approvals {where}"), columns=cols)


def _who() -> str:
    from workbench.audit.entry import actor

    return actor()["os_user"] or "unknown"  # the one OS-user lookup, shared with the audit entries


MAX_ARGUMENTS_CHARS = 100_000  # the longest a tool call's arguments may be as JSON (as max_input_chars for a prompt)


def _check_arguments(arguments: Any) -> None:
    """A one-line :class:`ApprovalError` for arguments that are not a dict, cannot be JSON (nested too deeply,
    circular) or are too long to store: before anything is queued or decided.
    """
    if not isinstance(arguments, dict):
        raise ApprovalError(f"the tool's arguments are a dict (its JSON object), not {type(arguments).__name__}")
    try:
        size = len(json.dumps(arguments, default=str))
    except (RecursionError, ValueError) as exc:  # (ValueError: a circular reference)
        raise ApprovalError(
            f"the tool's arguments cannot be written as JSON ({type(exc).__name__}: nested too deeply, or circular): "
            "give plain values"
        ) from None
    if size > MAX_ARGUMENTS_CHARS:
        raise ApprovalError(
            f"the tool's arguments are {size:,} characters of JSON, over {MAX_ARGUMENTS_CHARS:,}: pass a reference "
            "(a path, an id) instead of the data"
        )
