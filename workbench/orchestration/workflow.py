"""Workflows: steps (Python, LLM, tool) with dependencies, fan-out, retries — checkpointed in SQLite.

    wf = wb.workflow("weekly-report", concurrency=4)

    @wf.step()
    def regions() -> list[str]:
        return ["north", "south"]

    wf.map("revenue", over="regions", fn=lambda region: fetch(region), retry=2, on_error="skip")
    wf.llm("summary", "Summarise: {revenue}", depends_on=["revenue"], model="local/extractive")
    run = wf.run()

A step starts when the steps it depends on have finished; it is called with their results
as keyword arguments (by step name). ``map`` fans out over a list (another step's result,
or a fixed list): each item is a branch of its own, at most ``concurrency`` at a time,
and the step's result is the list of the branches' results (aggregation). Each step has
``retry`` (extra attempts, with a short backoff) and ``on_error``: ``fail`` (the run
fails), ``skip`` (its result is ``None``), or ``fallback`` (its result is ``fallback``, a
value or a function of the error).

Every finished step — every branch — is committed to ``workflow_steps`` as it finishes.
A run stopped by a crash, a kernel restart or a tool waiting for approval resumes with
``wf.resume(run_id)`` (the same workflow, defined again by the same code): finished steps
are read back from the store and never run again. Results are stored as JSON, so they
come back as JSON values (tuples as lists).
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import GuardrailViolation, WorkbenchError
from workbench.guardrails.scanners import check_name, scrub
from workbench.observability import iso_ns, run_trace, span_row
from workbench.options import json_problem, whole_number
from workbench.orchestration.claims import (
    WAIT_S,
    claim_tool_call,
    finish_tool_call,
    owner_token,
    owning,
    wait_for_run,
    wait_for_tool_call,
)
from workbench.store import new_id, utcnow

if TYPE_CHECKING:
    import pandas as pd

    from workbench.orchestration.host import WorkflowHost

ON_ERROR = ("fail", "skip", "fallback")


class WorkflowError(WorkbenchError):
    """A workflow is malformed (unknown dependency, a cycle) or a step failed with ``on_error="fail"``."""


class _Waiting(Exception):  # noqa: N818 - control flow: a tool step waits for a human
    def __init__(self, approval_id: str):
        super().__init__(approval_id)
        self.approval_id = approval_id


@dataclass
class Step:
    """One node: what to run, what it depends on, how to retry and what to do when it fails."""

    name: str
    run: Callable[..., Any]
    depends_on: list[str] = field(default_factory=list)
    retry: int = 0
    on_error: str = "fail"
    fallback: Any = None
    over: str | list[Any] | None = None  # map steps: a step's name, or the items themselves
    kind: str = "python"  # python | llm | tool | map


@dataclass
class WorkflowRun:
    """A run's outcome: status (done / failed / waiting), each step's result, and the timings."""

    id: str
    workflow: str
    status: str
    results: dict[str, Any]
    error: str | None = None
    waiting_on: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def df(self) -> pd.DataFrame:
        """One row per step and branch: status, attempts, latency, error."""
        import pandas as pd

        cols = ["step", "status", "attempts", "latency_ms", "error", "started_at", "finished_at"]
        return pd.DataFrame(self.steps, columns=cols)

    def __getitem__(self, step: str) -> Any:
        return self.results[step]


class Workflow:
    """A named graph of steps; ``run()`` executes it, ``resume(run_id)`` finishes a stopped run."""

    def __init__(self, wb: WorkflowHost, name: str, concurrency: int = 4):
        if concurrency < 1:
            raise WorkflowError("concurrency must be at least 1")
        self.wb, self.name, self.concurrency = wb, check_name("workflow name", name), concurrency
        self.steps: dict[str, Step] = {}
        self._owners: dict[str, str] = {}  # run id -> who continues it in this process

    # -- defining -----------------------------------------------------------------------------

    def step(
        self,
        name: str | None = None,
        *,
        depends_on: list[str] | None = None,
        retry: int = 0,
        on_error: str = "fail",
        fallback: Any = None,
    ) -> Callable[[Callable[..., Any]], Any]:
        """Decorator: a Python step; its parameters name the steps it depends on (or pass ``depends_on``)."""

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise WorkflowError(f"a step is a function (decorate one with @wf.step()), not {type(fn).__name__}")
            deps = depends_on if depends_on is not None else [p for p in inspect.signature(fn).parameters]
            self._add(Step(name or fn.__name__, fn, list(deps), retry, on_error, fallback))
            return fn

        return add

    def map(
        self,
        name: str,
        *,
        over: str | list[Any],
        fn: Callable[[Any], Any],
        retry: int = 0,
        on_error: str = "fail",
        fallback: Any = None,
    ) -> None:
        """Fan out: ``fn(item)`` for each item of ``over`` (a step's result, or a list); the result is the list."""
        deps = [over] if isinstance(over, str) else []
        self._add(Step(name, fn, deps, retry, on_error, fallback, over=over, kind="map"))

    def llm(
        self,
        name: str,
        prompt: str,
        *,
        depends_on: list[str] | None = None,
        retry: int = 0,
        on_error: str = "fail",
        fallback: Any = None,
        **ask: Any,
    ) -> None:
        """A model call: ``prompt`` is filled with the dependencies' results (``{step}``); the result is the text."""

        def call(**results: Any) -> str:
            text = prompt.format(
                **{k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in results.items()}
            )
            return self.wb.ask(text, task=f"workflow:{self.name}", **ask).text

        self._add(Step(name, call, list(depends_on or []), retry, on_error, fallback, kind="llm"))

    def tool(
        self,
        name: str,
        tool: str,
        *,
        arguments: dict[str, Any] | Callable[..., dict[str, Any]],
        depends_on: list[str] | None = None,
        retry: int = 0,
        on_error: str = "fail",
        fallback: Any = None,
    ) -> None:
        """A tool call, behind the tool guardrails and the approval policy (``ask`` parks the run)."""
        self._add(
            Step(
                name,
                lambda **r: (tool, arguments(**r) if callable(arguments) else arguments),
                list(depends_on or []),
                retry,
                on_error,
                fallback,
                kind="tool",
            )
        )

    def _add(self, step: Step) -> None:
        check_name("step name", step.name)
        if not whole_number(step.retry) or step.retry < 0:
            raise WorkflowError(
                f"step {step.name}: retry is how many more attempts, a whole number, not {step.retry!r}"
            )
        if step.name in self.steps:
            raise WorkflowError(f"workflow {self.name} already has a step {step.name!r}")
        if step.on_error not in ON_ERROR:
            raise WorkflowError(f"on_error must be one of {', '.join(ON_ERROR)}, not {step.on_error!r}")
        self.steps[step.name] = step

    def _check(self) -> list[str]:
        """The steps in an order that respects dependencies (errors for unknown ones and cycles)."""
        for s in self.steps.values():
            unknown = [d for d in s.depends_on if d not in self.steps]
            if unknown:
                raise WorkflowError(f"step {s.name} depends on unknown step(s) {unknown}")
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str, path: list[str]) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise WorkflowError(f"workflow {self.name} has a cycle: {' -> '.join([*path, n])}")
            state[n] = 1
            for d in self.steps[n].depends_on:
                visit(d, [*path, n])
            state[n] = 2
            order.append(n)

        for n in self.steps:
            visit(n, [])
        return order

    # -- running ------------------------------------------------------------------------------

    def run(self, **inputs: Any) -> WorkflowRun:
        """Run every step (``inputs`` are given to steps that take them as parameters)."""
        self._check()
        if problem := json_problem(inputs):
            raise WorkflowError(
                f"workflow {self.name}'s inputs cannot be written as JSON ({problem}): give plain values"
            )
        inputs = self._screened(inputs, f"workflow {self.name}'s inputs")  # (block: refused, nothing recorded)
        self._check_inputs(inputs)
        run_id, owner = new_id(), owner_token()
        with self.wb.store.transaction() as conn:
            conn.execute(
                "INSERT INTO workflow_runs (id, workflow, status, inputs, started_at, owner) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, self.name, "running", json.dumps(inputs, default=str), utcnow(), owner),
            )
        with owning(self.wb.store, "workflow_runs", run_id, owner):
            return self._execute(run_id, inputs, owner)

    def _check_inputs(self, inputs: dict[str, Any]) -> None:
        """A one-line error for an input no step takes (a misspelled one would leave a step on its default)."""
        taken: set[str] = set()
        for step in self.steps.values():
            if step.kind != "python":
                continue
            taken |= set(inspect.signature(step.run).parameters) - set(step.depends_on)  # (what _args gives)
        unknown = sorted(set(inputs) - taken)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(taken), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise WorkflowError(
                f"workflow {self.name}: no step takes an input named {unknown[0]!r} (its steps take: "
                f"{', '.join(sorted(taken)) or 'none'}){hint}"
            )

    def resume(self, run_id: str, wait_s: float = WAIT_S) -> WorkflowRun:
        """Finish a stopped run: finished steps are read back, the rest run (nothing runs twice).

        One caller continues a run at a time, in any thread or process: a second resume waits
        for the first and returns what it recorded.
        """
        self._check()
        rows = self.wb.store.query("SELECT workflow, inputs FROM workflow_runs WHERE id = ?", (run_id,))
        if not rows:
            raise WorkflowError(f"no workflow run {run_id!r}")
        if rows[0]["workflow"] != self.name:
            raise WorkflowError(f"run {run_id} is of workflow {rows[0]['workflow']!r}, not {self.name!r}")
        owner = owner_token()
        if wait_for_run(self.wb.store, "workflow_runs", run_id, owner, wait_s) is not None:
            return self._outcome(run_id, self._finished(run_id), [])
        with owning(self.wb.store, "workflow_runs", run_id, owner):
            return self._execute(run_id, json.loads(rows[0]["inputs"] or "{}"), owner)

    def _execute(self, run_id: str, inputs: dict[str, Any], owner: str) -> WorkflowRun:
        self._owners[run_id] = owner
        done = self._finished(run_id)
        results: dict[str, Any] = {k: v for k, v in done.items() if "[" not in k}
        pending = [n for n in self._check() if n not in results]
        waiting: list[str] = []
        error: str | None = None
        futures: dict[Future[Any], str] = {}
        with ThreadPoolExecutor(self.concurrency) as pool:
            while pending or futures:
                # after a failure nothing new starts; a step waiting on a human holds back only its dependents
                ready = [] if error else [n for n in pending if all(d in results for d in self.steps[n].depends_on)]
                for n in ready:
                    pending.remove(n)
                    if self.steps[n].kind == "map":
                        futures[pool.submit(self._map, run_id, self.steps[n], results, done, pool)] = n
                    else:
                        futures[pool.submit(self._step, run_id, self.steps[n], n, self._args(n, results, inputs))] = n
                if not futures:
                    break  # what is left waits on an approval or on a failed step
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for f in finished:
                    n = futures.pop(f)
                    try:
                        results[n] = f.result()
                    except _Waiting:
                        results.pop(n, None)
                        waiting.append(n)
                    except WorkflowError as exc:
                        results.pop(n, None)
                        error = error or str(exc)
        status = "failed" if error else "waiting" if waiting or pending else "done"
        trace_id, root = run_trace("workflow", run_id)
        started = self.wb.store.query("SELECT started_at FROM workflow_runs WHERE id = ?", (run_id,))[0]["started_at"]
        with self.wb.store.transaction() as conn:
            conn.execute(
                "UPDATE workflow_runs SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                (status, scrub(error), utcnow() if status == "done" else None, run_id),
            )
            self.wb.store.add_spans(
                conn,
                [
                    span_row(
                        trace_id,
                        None,
                        "workflow.run",
                        iso_ns(started),
                        time.time_ns(),
                        "error" if error else "ok",
                        None,
                        root,
                        workflow=self.name,
                        run_id=run_id,
                        status=status,
                        error=error,
                    )
                ],
            )
        return self._outcome(run_id, results, waiting)

    def _outcome(self, run_id: str, results: dict[str, Any], waiting: list[str]) -> WorkflowRun:
        """The run as the store has it: status, error, and every step's row."""
        run = self.wb.store.query("SELECT status, error FROM workflow_runs WHERE id = ?", (run_id,))[0]
        steps = self.wb.store.query(
            "SELECT step, status, attempts, latency_ms, error, started_at, finished_at "
            "FROM workflow_steps WHERE run_id = ? ORDER BY started_at",
            (run_id,),
        )
        if not waiting:
            waiting = [r["step"] for r in steps if r["status"] == "waiting"]
        results = {k: v for k, v in results.items() if "[" not in k}
        return WorkflowRun(run_id, self.name, run["status"], results, run["error"], waiting, steps)

    def _args(self, name: str, results: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        step = self.steps[name]
        args = {d: results[d] for d in step.depends_on}
        if step.kind == "python":
            params = inspect.signature(step.run).parameters
            args |= {k: v for k, v in inputs.items() if k in params and k not in args}
        return args

    def _map(
        self, run_id: str, step: Step, results: dict[str, Any], done: dict[str, Any], pool: ThreadPoolExecutor
    ) -> list[Any]:
        items = results[step.over] if isinstance(step.over, str) else step.over
        if not isinstance(items, list):
            raise WorkflowError(f"map step {step.name}: {step.over!r} gave {type(items).__name__}, not a list")
        names = [f"{step.name}[{i}]" for i in range(len(items))]
        out: list[Any] = [done.get(n) for n in names]
        todo = [i for i, n in enumerate(names) if n not in done]
        # Branches run on their own small pool: the workflow's pool may be busy running this very map.
        with ThreadPoolExecutor(self.concurrency) as branches:
            futures = {branches.submit(self._step, run_id, step, names[i], {"__item__": items[i]}): i for i in todo}
            waiting = None
            for f, i in futures.items():
                try:
                    out[i] = f.result()
                except _Waiting as exc:
                    waiting = exc
            if waiting:
                raise waiting
        self._checkpoint(run_id, step.name, "done", out, 1, 0.0, None)
        return out

    def _step(self, run_id: str, step: Step, name: str, args: dict[str, Any]) -> Any:
        attempts, t0, started = 0, time.perf_counter(), utcnow()
        while True:
            attempts += 1
            try:
                if step.kind == "map":
                    value = step.run(args["__item__"])
                elif step.kind == "tool":
                    value = self._tool(run_id, name, *step.run(**args))
                else:
                    value = step.run(**args)
                if step.kind != "tool":  # (a tool's result went through the tool-result guardrails)
                    value = self._screened(value, f"workflow {self.name} step {name}'s result")
                json.dumps(value, default=str)
                self._checkpoint(
                    run_id, name, "done", value, attempts, (time.perf_counter() - t0) * 1000, None, started
                )
                return value
            except _Waiting:
                self._checkpoint(run_id, name, "waiting", None, attempts, 0.0, None, started)
                raise
            except Exception as exc:  # noqa: BLE001 - the step's error policy decides
                if attempts <= step.retry and not isinstance(exc, GuardrailViolation):  # (that would hold again)
                    time.sleep(min(0.05 * 2 ** (attempts - 1), 1.0))
                    continue
                message = f"{type(exc).__name__}: {exc}"
                latency = (time.perf_counter() - t0) * 1000
                if step.on_error == "skip":
                    self._checkpoint(run_id, name, "skipped", None, attempts, latency, message, started)
                    return None
                if step.on_error == "fallback":
                    value = step.fallback(exc) if callable(step.fallback) else step.fallback
                    try:
                        value = self._screened(value, f"workflow {self.name} step {name}'s fallback")
                    except GuardrailViolation as refused:
                        message = f"{message}; its fallback: {refused}"
                        self._checkpoint(run_id, name, "failed", None, attempts, latency, message, started)
                        raise WorkflowError(f"step {name} failed after {attempts} attempt(s): {message}") from None
                    self._checkpoint(run_id, name, "fallback", value, attempts, latency, message, started)
                    return value
                self._checkpoint(run_id, name, "failed", None, attempts, latency, message, started)
                raise WorkflowError(f"step {name} failed after {attempts} attempt(s): {message}") from None

    def _tool(self, run_id: str, name: str, tool_name: str, arguments: dict[str, Any]) -> Any:
        tool = self.wb.tools.get(tool_name)
        agent = f"workflow:{self.name}"
        row_id = f"{run_id}:{name}"
        recorded = self.wb.store.query("SELECT status, result FROM tool_calls WHERE id = ?", (row_id,))
        if recorded and recorded[0]["status"] in ("ok", "unknown"):  # it ran (or may have): never again
            return recorded[0]["result"]
        self.wb.guard.check_tool_call(tool.name, arguments, risk=tool.risk, agent=agent)
        rows = self.wb.store.query(
            "SELECT id, status, final_arguments FROM approvals WHERE run_id = ? AND "
            "tool_call_id = ? ORDER BY created_at DESC LIMIT 1",
            (run_id, name),
        )
        decision = self.wb.approvals.policy(tool.name, tool.risk)
        if decision == "reject":
            raise WorkflowError(f"tool {tool.name} is rejected by the approval policy")
        approval = None
        if decision == "ask":
            row = rows[0] if rows else None
            if row is None:
                row = self.wb.approvals.request(
                    tool.name,
                    arguments,
                    risk=tool.risk,
                    run_id=run_id,
                    tool_call_id=name,
                    reason=f"workflow {self.name} step {name}: {tool.risk} tool",
                    agent=agent,
                )
                self.wb.approvals.ask_decider(row)
                row = self.wb.approvals.get(row["id"])
            if row["status"] in ("pending", "escalated"):
                raise _Waiting(row["id"])
            if row["status"] not in ("approved", "modified"):
                raise WorkflowError(f"tool {tool.name} was {row['status']} by a human")
            approval = row["id"]
            self.wb.approvals.vouch(approval)  # acted on only as the audit log recorded it
            if row["status"] == "modified":  # edited by a human: checked again, like the original
                arguments = tool.check(json.loads(row["final_arguments"]))
                self.wb.guard.check_tool_call(tool.name, arguments, risk=tool.risk, agent=agent, recheck=True)
            else:
                arguments = json.loads(row["final_arguments"])
        return self._run_once(run_id, name, tool, arguments, approval)

    def _run_once(self, run_id: str, name: str, tool: Any, arguments: dict[str, Any], approval: str | None) -> Any:
        """Claim the tool call, run it, record its outcome; a caller that loses the claim gets that outcome."""
        from workbench.integrations import result_text

        row_id = f"{run_id}:{name}"
        claim = {
            "id": row_id,
            "run_id": run_id,
            "step": 0,
            "call_id": None,
            "tool": tool.name,
            "risk": tool.risk,
            "arguments": json.dumps(arguments, default=str),
            "started_at": utcnow(),
        }
        other = claim_tool_call(
            self.wb.store,
            claim,
            approval,
            self._owners.get(run_id) or owner_token(),
            {"tool": tool.name, "arguments": arguments, "run_id": run_id, "workflow": self.name},
        )
        if other is not None:
            done = wait_for_tool_call(self.wb.store, row_id, approval)
            if done["status"] not in ("ok", "unknown"):
                raise WorkflowError(f"tool {tool.name}: {done.get('result')}")
            return done.get("result")
        t0 = time.perf_counter()
        try:
            out, status, error = result_text(tool.run(arguments)), "ok", None
        except Exception as exc:  # noqa: BLE001 - recorded, then the step's error policy decides
            out, status, error = f"error: {type(exc).__name__}: {exc}", "error", repr(exc)
        checked = self.wb.guard.check_tool_result(tool.name, out)  # (an error's text too: it is stored)
        with self.wb.store.transaction() as conn:
            conn.execute(
                "UPDATE tool_calls SET status = ?, result = ?, error = ?, latency_ms = ? WHERE id = ?",
                (status, checked[:20_000], scrub(error), round((time.perf_counter() - t0) * 1000, 3), row_id),
            )
            finish_tool_call(conn, self.wb.store, approval, status)
            self.wb.store.audit(
                conn,
                "tool_call",
                row_id,
                {
                    "tool": tool.name,
                    "risk": tool.risk,
                    "arguments": arguments,
                    "status": status,
                    "run_id": run_id,
                    "workflow": self.name,
                    "result_sha256": hashlib.sha256(checked.encode()).hexdigest(),
                },
                bind=[("tool_calls", row_id)] + ([("approvals", approval)] if approval else []),
            )
        if status != "ok":
            raise WorkflowError(f"tool {tool.name} failed: {error}")
        return checked

    # -- the record ---------------------------------------------------------------------------

    def _screened(self, value: Any, where: str) -> Any:
        """Inputs or a step's result as they may be stored and handed on: the secrets in them under the input
        policy (``block``: :class:`~workbench.errors.GuardrailViolation`; ``redact``: the steps that depend on
        it get it redacted too, so a resumed run sees what a live one saw).
        """
        return self.wb.guard.screen_value(value, where, agent=f"workflow:{self.name}")

    def _finished(self, run_id: str) -> dict[str, Any]:
        rows = self.wb.store.query(
            "SELECT step, result FROM workflow_steps WHERE run_id = ? AND status IN ('done', 'skipped', 'fallback')",
            (run_id,),
        )
        return {r["step"]: json.loads(r["result"]) for r in rows}

    def _checkpoint(
        self,
        run_id: str,
        name: str,
        status: str,
        value: Any,
        attempts: int,
        latency: float,
        error: str | None,
        started: str | None = None,
    ) -> None:
        with self.wb.store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workflow_steps (run_id, step, status, result, attempts, latency_ms, "
                "error, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    name,
                    status,
                    json.dumps(value, default=str),
                    attempts,
                    round(latency, 3),
                    scrub(error),
                    started or utcnow(),
                    utcnow(),
                ),
            )
            trace_id, root = run_trace("workflow", run_id)
            start = iso_ns(started) if started else time.time_ns() - int(latency * 1e6)
            kind = self.steps[name.split("[")[0]].kind if name.split("[")[0] in self.steps else "python"
            self.wb.store.add_spans(
                conn,
                [
                    span_row(
                        trace_id,
                        root,
                        f"workflow.step {name}",
                        start,
                        time.time_ns(),
                        "error" if status == "failed" else "ok",
                        kind=kind,
                        step=name,
                        status=status,
                        attempts=attempts,
                        error=error,
                    )
                ],
            )
            self.wb.store.audit(
                conn,
                "workflow_step",
                f"{run_id}:{name}",
                {
                    "workflow": self.name,
                    "run_id": run_id,
                    "step": name,
                    "status": status,
                    "attempts": attempts,
                    "error": error,
                    "result_sha256": hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest(),
                },
                bind=[("workflow_steps", f"{run_id}:{name}")],
            )
