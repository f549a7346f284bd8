"""The agent loop: the model asks for tools, they run (behind guardrails and approvals), results go back.

``wb.agent("analyst", model=..., tools=["db.*"], max_steps=8, budget=0.05).run(task)``:

1. a step is one recorded model call with the tools' schemas (``wb.step``); the task is
   scanned by the input guardrails on the first step;
2. each tool call the model asks for passes the ``tool_call`` guardrails (allowlists,
   argument checks, destructive cap), then the approval policy: ``approve`` runs it,
   ``reject`` tells the model so, ``ask`` goes to the programmatic decider or — when
   there is none — **parks the run**: its messages are saved, ``run()`` returns with
   ``status == "waiting"``, and the approval card, ``%llm_approvals`` or ``workbench
   approvals`` decide later; ``resume(run_id)`` continues from the saved state without
   running again the tools that already ran;
3. independent tool calls of one step run in parallel; their results pass the
   ``tool_result`` guardrails (quarantine, redaction) before the model sees them;
4. the loop stops on an answer, ``max_steps`` or ``budget`` (USD over the run).

An agent is also a tool of other agents (``as_tool()``: delegation). Each agent reads
its own memory scope ``agent:NAME`` and ``shared``; with ``remember=True`` a finished run
writes its task and answer to ``agent:NAME`` as an episode, for its later runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Required, TypedDict, cast

from workbench.errors import BudgetExceeded, GuardrailViolation, WorkbenchError
from workbench.guardrails.scanners import check_name, scrub
from workbench.integrations import Tool, ToolError, result_text
from workbench.observability import iso_ns, run_trace, span_row
from workbench.options import AskOptions, real_number, whole_number
from workbench.orchestration.claims import (
    WAIT_S,
    approval_of,
    claim_tool_call,
    finish_tool_call,
    owner_token,
    owning,
    wait_for_run,
    wait_for_tool_call,
)
from workbench.serving.images import as_image, with_parts
from workbench.store import new_id, utcnow

if TYPE_CHECKING:
    import pandas as pd

    from workbench.orchestration.host import AgentHost

RunStatus = Literal["running", "waiting", "done", "stopped"]
# What became of one tool call the model asked for: ``run`` (cleared to run), ``pending`` (waits on a
# human), ``recorded`` (ran before: its recorded result), and the outcomes ``ok``, ``error``, ``denied``
# (by the guardrails) and ``rejected`` (by the policy or a human).
PlanStatus = Literal["run", "pending", "recorded", "ok", "error", "denied", "rejected"]
Span = tuple[str, int, int, str, dict[str, Any]]  # name, start ns, end ns, status, attributes


class ToolPlan(TypedDict, total=False):
    """One tool call of a step, from the model's request to its recorded outcome."""

    id: Required[str]  # the model's tool-call id
    row: Required[str]  # its row in tool_calls (stable across resumes)
    tool: Required[str]
    risk: Required[str]
    tool_obj: Required[Tool | None]
    arguments: dict[str, Any]
    status: PlanStatus
    result: str
    error: str | None
    latency_ms: float
    approval_id: str | None
    spans: list[Span]
    run_ns: int


class RunState(TypedDict, total=False):
    """A run as saved in agent_runs (its messages and tools as JSON), and loaded to resume it."""

    id: Required[str]
    agent: Required[str]
    task: Required[str]
    status: Required[RunStatus]
    model: str | None
    session: str | None
    user: str | None
    messages: list[dict[str, Any]]
    tools: list[str]
    steps: int
    cost_usd: float
    answer: str | None
    stop_reason: str | None
    waiting_on: str | None
    started_at: str
    finished_at: str | None
    owner: str | None
    max_steps: int
    budget: float | None
    system: str | None
    remember: int
    last_call: str | None


DONE: RunStatus = "done"
WAITING: RunStatus = "waiting"
STOPPED: RunStatus = "stopped"


@dataclass
class AgentRun:
    """What a run did: its answer (or why it stopped / what it waits for), steps, cost, tool calls."""

    id: str
    agent: str
    task: str
    status: RunStatus  # done | waiting | stopped (running only while a run is in progress)
    answer: str | None
    steps: int
    cost_usd: float
    stop_reason: str | None = None
    waiting_on: str | None = None  # the approval id a waiting run needs
    tool_calls: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def df(self) -> pd.DataFrame:
        """The run's tool calls: step, tool, arguments, status, result, latency."""
        import pandas as pd

        cols = ["step", "tool", "risk", "arguments", "status", "result", "latency_ms"]
        return pd.DataFrame(self.tool_calls, columns=cols)

    def __str__(self) -> str:
        if self.status == DONE:
            return self.answer or ""
        if self.status == WAITING:
            return f"waiting for approval {self.waiting_on}"
        return f"stopped: {self.stop_reason}"

    def footer(self) -> str:
        """The line under the answer: agent, steps, tool calls, cost, run id."""
        return (
            f"agent {self.agent} · {self.steps} steps · {len(self.tool_calls)} tool calls · ${self.cost_usd:.6f} "
            f"· run {self.id}"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        head = str(self) if self.status == DONE else f"**{self}**"
        return {"text/markdown": f"{head}\n\n<sub>{self.footer()}</sub>", "text/plain": f"{self}\n— agent {self.agent}"}


class Agent:
    """A model with tools, a step limit and a budget; ``run(task)`` loops until it answers."""

    def __init__(
        self,
        wb: AgentHost,
        name: str,
        *,
        model: str | None = None,
        tools: list[str] | str | None = None,
        memory: bool = True,
        max_steps: int = 8,
        budget: float | None = None,
        system: str | None = None,
        session: str | None = None,
        user: str | None = None,
        remember: bool = False,
    ) -> None:
        if not name or not check_name("agent name", name).replace("-", "").replace("_", "").isalnum():
            raise WorkbenchError(f"agent name {name!r}: use letters, digits, '-' and '_'")
        check_name("session", session)
        check_name("user", user)
        if not whole_number(max_steps) or max_steps < 1:
            raise WorkbenchError(f"max_steps must be a whole number, at least 1, not {max_steps!r}")
        if budget is not None and not (real_number(budget) and budget >= 0):
            raise WorkbenchError(f"budget must be dollars (0 or more), not {budget!r}")
        if tools is not None and not (
            isinstance(tools, str) or (isinstance(tools, list | tuple) and all(isinstance(t, str) for t in tools))
        ):
            raise WorkbenchError(f"tools are names or globs (a list of them, or one string), not {tools!r}")
        self.wb, self.name, self.model, self.memory, self.remember = wb, name, model, memory, remember
        self.tool_names = tools
        self.max_steps, self.budget, self.system, self.session, self.user = max_steps, budget, system, session, user
        wb.tools.select(tools)  # unknown tools fail now, not mid-run

    # -- running ----------------------------------------------------------------------------

    def run(
        self, task: str, *, session: str | None = None, user: str | None = None, images: Sequence[Any] = ()
    ) -> AgentRun:
        """Work on ``task`` until an answer, the step limit, the budget, or an approval to wait for.

        ``images`` (figures, PNG/JPEG bytes, paths) are shown with the task: the run's messages name
        them by hash, the first step stores them, and a resumed run reads them from the store.
        """
        if not isinstance(task, str) or not task.strip():
            raise WorkbenchError("give the agent a task: agent.run('Which customers churned in May?')")
        check_name("session", session)
        check_name("user", user)
        shown = [as_image(i) for i in images]
        task = self.wb.guard.screen_secrets(
            task, "the agent's task", session=session or self.session, agent=self.name
        )  # saved with the run: screened before anything is
        tools = self.wb.tools.select(self.tool_names)
        limit = self.wb.settings.mcp.max_tools
        if len(tools) > limit:  # more than fit: give the model the ones most related to the task
            tools = self.wb.tools.search(task, tools, limit)
        messages: list[dict[str, Any]] = []
        system = self._system(task)
        if system:
            messages.append({"role": "system", "content": system})
        if shown:
            marked = task + "".join(f"\n{i.marker}" for i in shown if i.marker not in task)
            messages.append({"role": "user", "content": with_parts(marked, shown)})
        else:
            messages.append({"role": "user", "content": task})
        state: RunState = {
            "id": new_id(),
            "agent": self.name,
            "task": task,
            "status": "running",
            "model": self.model,
            "session": session or self.session,
            "user": user or self.user,
            "messages": messages,
            "tools": [t.name for t in tools],
            "steps": 0,
            "cost_usd": 0.0,
            "answer": None,
            "stop_reason": None,
            "waiting_on": None,
            "started_at": utcnow(),
            "finished_at": None,
            "owner": owner_token(),
        }
        owner = state["owner"] or owner_token()
        state.update(
            {"max_steps": self.max_steps, "budget": self.budget, "system": self.system, "remember": int(self.remember)}
        )
        self._save(state)
        with owning(self.wb.store, "agent_runs", state["id"], owner):
            return self._loop(state, tuple(shown))

    def resume(self, run_id: str, wait_s: float = WAIT_S) -> AgentRun:
        """Continue a parked run from its saved messages (tools that already ran are not run again).

        One caller continues a run at a time, in any thread or process: a second resume waits
        (up to ``wait_s``) for the first to finish and returns what it recorded.
        """
        self._load(run_id)  # the run exists and is this agent's
        owner = owner_token()
        if wait_for_run(self.wb.store, "agent_runs", run_id, owner, wait_s) is not None:
            return self._result(self._load(run_id))
        with owning(self.wb.store, "agent_runs", run_id, owner):
            state = self._load(run_id)
            state["owner"] = owner
            return self._loop(state)

    def as_tool(self, risk: str = "read") -> Tool:
        """This agent as a tool (``agent.NAME``) other agents can delegate a task to."""

        def delegate(task: str) -> str:
            run = self.run(task)
            return (run.answer or "") if run.status == DONE else f"[{self.name} {run}]"

        tool = Tool(
            f"agent.{self.name}",
            f"Delegate a task to the {self.name} agent; it answers in text.",
            {
                "type": "object",
                "properties": {"task": {"type": "string", "description": "what to do"}},
                "required": ["task"],
            },
            risk,
            delegate,
            "agent",
        )
        return self.wb.tools.add(tool)

    def _options(self, state: RunState, budget: float | None) -> AskOptions:
        """The options of this run's next step: its model, who it is for, and what is left of its budget."""
        return AskOptions(
            model=state["model"],
            session=state["session"],
            user=state["user"],
            task=f"agent:{self.name}",
            agent=self.name,
            budget=budget,
        )

    def _loop(self, state: RunState, images: tuple[Any, ...] = ()) -> AgentRun:
        tools = {t.name: t for t in self.wb.tools.select(state["tools"])} if state["tools"] else {}
        schemas = [t.schema() for t in tools.values()] or None
        messages = state["messages"]
        if messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
            if not self._tool_results(state, tools, messages[-1]["tool_calls"]):
                return self._result(state)
        while state["steps"] < self.max_steps:
            if self.budget is not None and state["cost_usd"] >= self.budget:
                return self._stop(state, f"budget of ${self.budget:.4f} spent")
            remaining = None if self.budget is None else self.budget - state["cost_usd"]
            try:
                result = self.wb.step(
                    messages,
                    replace(self._options(state, remaining), images=images),
                    tools=schemas,
                    trace=run_trace("agent", state["id"]),
                    check_input=state["task"] if state["steps"] == 0 else None,
                )
            except BudgetExceeded as exc:
                return self._stop(state, f"budget: the next step {str(exc).split('; ')[0].removeprefix('this call ')}")
            state["steps"] += 1
            state["cost_usd"] += result.cost_usd or 0.0
            state["last_call"] = result.call_id
            if not result.tool_calls:
                state.update({"status": DONE, "answer": result.text, "finished_at": utcnow()})
                self._save(state)
                if self.remember and result.text:  # what this agent learned, in its own scope
                    self.wb.memory.add(
                        f"{state['task']} -> {result.text}", f"agent:{self.name}", "episode", source_call=result.call_id
                    )
                return self._result(state)
            messages.append({"role": "assistant", "content": result.text or None, "tool_calls": result.tool_calls})
            self._save(state)
            if not self._tool_results(state, tools, result.tool_calls):
                return self._result(state)
        return self._stop(state, f"step limit of {self.max_steps} reached")

    # -- tool calls ---------------------------------------------------------------------------

    def _tool_results(self, state: RunState, tools: dict[str, Tool], calls: list[dict[str, Any]]) -> bool:
        """Decide, run and record this step's tool calls; False when the run must wait for a human."""
        done = {
            r["id"]: r
            for r in self.wb.store.query(
                "SELECT * FROM tool_calls WHERE run_id = ? AND step = ?", (state["id"], state["steps"])
            )
        }
        plans = [self._decide(state, tools, call, done.get(_row_id(state, call))) for call in calls]
        waiting = next((p for p in plans if p["status"] == "pending"), None)
        runnable = [p for p in plans if p["status"] == "run"]
        if len(runnable) > 1:
            with ThreadPoolExecutor(min(8, len(runnable))) as pool:
                list(pool.map(lambda p: self._execute(state, p), runnable))
        else:
            for p in runnable:
                self._execute(state, p)
        for p in plans:
            if p["status"] not in ("pending", "recorded"):
                self._record(state, p)
        if waiting is not None:
            state.update({"status": WAITING, "waiting_on": waiting["approval_id"]})
            self._save(state)
            return False
        state["messages"] += [{"role": "tool", "tool_call_id": p["id"], "content": p["result"]} for p in plans]
        state.update({"status": "running", "waiting_on": None})
        self._save(state)
        return True

    def _decide(
        self, state: RunState, tools: dict[str, Tool], call: dict[str, Any], recorded: dict[str, Any] | None
    ) -> ToolPlan:
        wire = call["function"]["name"]
        tool = next((t for t in tools.values() if t.name == wire or t.name.replace(".", "__") == wire), None)
        plan: ToolPlan = {
            "id": call["id"],
            "row": _row_id(state, call),
            "tool": tool.name if tool else wire,
            "risk": tool.risk if tool else "read",
            "tool_obj": tool,
            "result": "",
            "error": None,
            "latency_ms": 0.0,
            "approval_id": None,
        }
        try:
            plan["arguments"] = json.loads(call["function"].get("arguments") or "{}")
        except json.JSONDecodeError as exc:
            return {**plan, "arguments": {}, "status": "error", "result": f"error: arguments are not JSON ({exc})"}
        if recorded and recorded["status"] == "running":  # claimed by another caller: wait for its outcome
            return {**plan, "status": "run", "approval_id": approval_of(recorded)}
        if recorded and recorded["status"] != "pending":
            return {**plan, "status": "recorded", "result": recorded["result"]}
        if recorded:  # waiting on an approval: has it been decided?
            return self._after_approval(state, plan, recorded)
        if tool is None:
            return {**plan, "status": "error", "result": f"error: unknown tool {wire}; use one of {sorted(tools)}"}
        checked: dict[str, Any] = {}
        t0 = time.time_ns()
        try:
            self.wb.guard.check_tool_call(
                tool.name,
                plan["arguments"],
                risk=tool.risk,
                session=state["session"],
                agent=self.name,
                call_id=state.get("last_call"),
                report=checked,
            )
        except GuardrailViolation as exc:
            plan["spans"] = [("guardrails.check_tool_call", t0, time.time_ns(), "error", {**checked, "blocked": True})]
            return {**plan, "status": "denied", "result": f"denied by the guardrails: {exc}"}
        plan["spans"] = [("guardrails.check_tool_call", t0, time.time_ns(), "ok", checked)]
        flagged = bool(checked.get("flagged"))
        decision = self.wb.approvals.policy(tool.name, tool.risk, state["cost_usd"], flagged)
        if decision == "approve":
            return {**plan, "status": "run"}
        if decision == "reject":
            return {**plan, "status": "rejected", "result": f"rejected by policy: {tool.name} is not allowed"}
        why = (
            f"the guardrails flagged its arguments ({', '.join(checked['flagged'])})"
            if flagged
            else f"{tool.risk} tool {tool.name} needs a human's approval"
        )
        row = self.wb.approvals.request(
            tool.name,
            plan["arguments"],
            risk=tool.risk,
            reason=why,
            session=state["session"],
            agent=self.name,
            run_id=state["id"],
            tool_call_id=call["id"],
        )
        plan["approval_id"] = row["id"]
        t0 = time.time_ns()
        decided = self.wb.approvals.ask_decider(row)
        plan["spans"].append(
            (
                "approvals.request",
                t0,
                time.time_ns(),
                "ok",
                {"approval": row["id"], "reason": why, "decider": decided.decision if decided else None},
            )
        )
        return self._after_approval(state, plan, None)

    def _after_approval(self, state: RunState, plan: ToolPlan, recorded: dict[str, Any] | None) -> ToolPlan:
        approval_id = plan["approval_id"] or approval_of(recorded)
        if approval_id is None:
            raise WorkbenchError(f"run {state['id']}: a tool call waits on an approval that was never recorded")
        plan["approval_id"] = approval_id
        row = self.wb.approvals.get(approval_id)
        if row["status"] in ("pending", "escalated") and row["expires_at"] < utcnow():
            self.wb.approvals.expire()
            row = self.wb.approvals.get(approval_id)
        if row["status"] in ("approved", "modified"):  # acted on only as the audit log recorded it
            self.wb.approvals.vouch(approval_id)
        if row["status"] == "modified":  # edited by a human: checked again, exactly as the model's own would be
            return self._edited(state, plan, json.loads(row["final_arguments"]))
        if row["status"] == "approved":
            return {**plan, "status": "run", "arguments": json.loads(row["final_arguments"])}
        if row["status"] == "rejected":
            return {
                **plan,
                "status": "rejected",
                "result": f"rejected by {row['decided_by']}: {row['decision_reason'] or 'no reason given'}",
            }
        if row["status"] == "expired":
            return {**plan, "status": "rejected", "result": "not approved in time (the approval expired)"}
        if recorded is None:
            self._record(state, {**plan, "status": "pending"})
        return {**plan, "status": "pending"}

    def _edited(self, state: RunState, plan: ToolPlan, arguments: dict[str, Any]) -> ToolPlan:
        """A human's edited arguments through the tool's schema and every tool-call guardrail."""
        tool: Tool | None = plan["tool_obj"]
        checked: dict[str, Any] = {}
        t0 = time.time_ns()
        try:
            if tool is not None:
                tool.check(arguments)
            self.wb.guard.check_tool_call(
                plan["tool"],
                arguments,
                risk=plan["risk"],
                session=state["session"],
                agent=self.name,
                call_id=state.get("last_call"),
                report=checked,
                recheck=True,
            )
        except (GuardrailViolation, ToolError) as exc:
            plan.setdefault("spans", []).append(
                (
                    "guardrails.check_tool_call",
                    t0,
                    time.time_ns(),
                    "error",
                    {**checked, "blocked": True, "edited": True},
                )
            )
            return {
                **plan,
                "arguments": arguments,
                "status": "denied",
                "result": f"the edited arguments were refused: {exc}",
            }
        plan.setdefault("spans", []).append(
            ("guardrails.check_tool_call", t0, time.time_ns(), "ok", {**checked, "edited": True})
        )
        return {**plan, "status": "run", "arguments": arguments}

    def _execute(self, state: RunState, plan: ToolPlan) -> None:
        tool = plan["tool_obj"]
        if tool is None:  # a plan is cleared to run only for a tool that exists
            raise WorkbenchError(f"run {state['id']}: tool {plan['tool']} is not registered")
        claim = {
            "id": plan["row"],
            "run_id": state["id"],
            "step": state["steps"],
            "call_id": state.get("last_call"),
            "tool": plan["tool"],
            "risk": plan["risk"],
            "arguments": json.dumps(plan["arguments"], default=str),
            "started_at": utcnow(),
        }
        other = claim_tool_call(
            self.wb.store,
            claim,
            plan["approval_id"],
            state.get("owner") or owner_token(),
            {"tool": plan["tool"], "arguments": plan["arguments"], "run_id": state["id"], "agent": self.name},
        )
        if other is not None:  # another caller ran (or is running) it: its outcome, never a second run
            done = wait_for_tool_call(self.wb.store, plan["row"], plan["approval_id"])
            plan.update({"status": "recorded", "result": done.get("result") or ""})
            return
        plan["run_ns"] = time.time_ns()
        t0 = time.perf_counter()
        try:
            out = result_text(tool.run(plan["arguments"]))
            plan["status"] = "ok"
        except ToolError as exc:
            out, plan["status"], plan["error"] = f"error: {exc}", "error", str(exc)
        except Exception as exc:  # noqa: BLE001 - a tool's failure is told to the model, which may recover
            out, plan["status"], plan["error"] = f"error: {type(exc).__name__}: {exc}", "error", repr(exc)
        plan["latency_ms"] = (time.perf_counter() - t0) * 1000
        checked_at = time.time_ns()
        plan["result"] = self.wb.guard.check_tool_result(tool.name, out, session=state["session"], agent=self.name)
        plan.setdefault("spans", []).append(
            ("guardrails.check_tool_result", checked_at, time.time_ns(), "ok", {"changed": plan["result"] != out})
        )

    def _record(self, state: RunState, plan: ToolPlan) -> None:
        row: dict[str, Any] = {
            "id": plan["row"],
            "run_id": state["id"],
            "step": state["steps"],
            "call_id": state.get("last_call"),
            "tool": plan["tool"],
            "risk": plan["risk"],
            "arguments": json.dumps(plan["arguments"], default=str),
            "status": plan["status"],
            "result": plan["result"][:20_000],
            "error": scrub(plan["error"]),
            "started_at": utcnow(),
            "latency_ms": round(plan["latency_ms"], 3),
            "claimed_by": state.get("owner") if plan.get("run_ns") else None,
            "approval_id": plan.get("approval_id"),
        }
        approval = plan.get("approval_id") if plan["status"] not in ("pending",) else None
        with self.wb.store.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO tool_calls ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            self.wb.store.add_spans(conn, self._spans(state, plan))
            finish_tool_call(conn, self.wb.store, approval, plan["status"])
            bind = [("tool_calls", row["id"])] + ([("approvals", approval)] if approval else [])
            self.wb.store.audit(
                conn,
                "tool_call",
                row["id"],
                {
                    "tool": row["tool"],
                    "risk": row["risk"],
                    "arguments": plan["arguments"],
                    "status": row["status"],
                    "result_sha256": hashlib.sha256(plan["result"].encode()).hexdigest(),
                    "run_id": row["run_id"],
                    "call_id": row["call_id"],
                    "agent": self.name,
                    "session": state.get("session"),
                    "model": state.get("model") or self.wb.settings.default_route,
                },
                who={"user": state.get("user")},
                bind=bind,
            )

    def _spans(self, state: RunState, plan: ToolPlan) -> list[tuple[Any, ...]]:
        """The tool call as a span under the run's root, with its guard check and approval as children."""
        trace_id, root = run_trace("agent", state["id"])
        children = plan.get("spans") or []
        now = time.time_ns()
        start = min([c[1] for c in children] + [plan.get("run_ns") or now])
        end = (plan["run_ns"] + int(plan["latency_ms"] * 1e6)) if plan.get("run_ns") else now
        span_id = hashlib.sha256(f"tool:{plan['row']}:{plan['status']}".encode()).hexdigest()[:16]
        status = "error" if plan["status"] in ("error", "denied") else "ok"
        rows = [
            span_row(
                trace_id,
                root,
                "tool.call",
                start,
                max(end, start),
                status,
                state.get("last_call"),
                span_id,
                tool=plan["tool"],
                risk=plan["risk"],
                outcome=plan["status"],
                step=state["steps"],
                approval=plan.get("approval_id"),
                latency_ms=round(plan["latency_ms"], 3),
            )
        ]
        if plan.get("run_ns"):
            rows.append(
                span_row(
                    trace_id,
                    span_id,
                    f"tool.run {plan['tool']}",
                    plan["run_ns"],
                    end,
                    status,
                    state.get("last_call"),
                    error=plan["error"],
                )
            )
        rows += [
            span_row(trace_id, span_id, name, s, e, st, state.get("last_call"), **attrs)
            for name, s, e, st, attrs in children
        ]
        return rows

    # -- state ------------------------------------------------------------------------------

    def _system(self, task: str) -> str | None:
        parts = (
            [self.wb.guard.screen_secrets(self.system, "the agent's system prompt", agent=self.name)]
            if self.system
            else []
        )
        if self.memory:
            found = self.wb.memory.search(task, [f"agent:{self.name}", "shared"], 5)
            if found:
                parts.append("What you remember:\n" + "\n".join(f"- {m.text}" for m in found))
        return "\n\n".join(parts) or None

    def _stop(self, state: RunState, reason: str) -> AgentRun:
        state.update({"status": STOPPED, "stop_reason": reason, "finished_at": utcnow()})
        self._save(state)
        return self._result(state)

    def _save(self, state: RunState) -> None:
        row = {
            k: state.get(k)
            for k in (
                "id",
                "agent",
                "task",
                "status",
                "model",
                "session",
                "user",
                "steps",
                "cost_usd",
                "answer",
                "stop_reason",
                "waiting_on",
                "started_at",
                "finished_at",
                "max_steps",
                "budget",
                "system",
                "remember",
                "owner",
            )
        }
        row["messages"] = json.dumps(state["messages"], default=str)
        row["tools"] = json.dumps(state["tools"])
        trace_id, root = run_trace("agent", state["id"])
        span = span_row(
            trace_id,
            None,
            "agent.run",
            iso_ns(state["started_at"]),
            time.time_ns(),
            "error" if state["status"] == STOPPED else "ok",
            state.get("last_call"),
            root,
            agent=self.name,
            run_id=state["id"],
            status=state["status"],
            steps=state["steps"],
            cost_usd=state["cost_usd"],
            stop_reason=state.get("stop_reason"),
        )
        with self.wb.store.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO agent_runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()),
            )
            self.wb.store.add_spans(conn, [span])

    def _load(self, run_id: str) -> RunState:
        rows = self.wb.store.query("SELECT * FROM agent_runs WHERE id = ?", (run_id,))
        if not rows:
            raise WorkbenchError(f"no agent run {run_id!r}")
        state = dict(rows[0])
        if state["agent"] != self.name:
            raise WorkbenchError(f"run {run_id} belongs to agent {state['agent']!r}, not {self.name!r}")
        state["messages"] = json.loads(state["messages"])
        state["tools"] = json.loads(state["tools"])
        return cast(RunState, state)

    @classmethod
    def of_run(cls, wb: AgentHost, run_id: str) -> Agent:
        """The agent a stored run belongs to, as it was configured (to resume it from anywhere)."""
        rows = wb.store.query(
            "SELECT agent, model, tools, max_steps, budget, system, session, user, remember "
            "FROM agent_runs WHERE id = ?",
            (run_id,),
        )
        if not rows:
            raise WorkbenchError(f"no agent run {run_id!r}")
        r = rows[0]
        return cls(
            wb,
            r["agent"],
            model=r["model"],
            tools=json.loads(r["tools"]) or None,
            max_steps=r["max_steps"] or 8,
            budget=r["budget"],
            system=r["system"],
            session=r["session"],
            user=r["user"],
            memory=False,
            remember=bool(r["remember"]),
        )

    def _result(self, state: RunState) -> AgentRun:
        calls = self.wb.store.query(
            "SELECT step, tool, risk, arguments, status, result, latency_ms FROM tool_calls "
            "WHERE run_id = ? ORDER BY step, started_at",
            (state["id"],),
        )
        return AgentRun(
            state["id"],
            self.name,
            state["task"],
            state["status"],
            state["answer"],
            state["steps"],
            round(state["cost_usd"], 9),
            state["stop_reason"],
            state["waiting_on"],
            calls,
        )


def _row_id(state: RunState, call: dict[str, Any]) -> str:
    """A tool call's row: the run, the step and the model's id for the call (stable across a resume)."""
    return f"{state['id']}:{state['steps']}:{call['id']}"
