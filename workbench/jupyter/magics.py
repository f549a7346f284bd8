"""``%%llm`` and the ``%llm_*`` line magics.

Every user mistake raises ``UsageError`` (one line, and the cell fails, so nbval
sees it). The magics only parse, call the runtime and display.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from workbench.errors import WorkbenchError
from workbench.suggest import did_you_mean

if TYPE_CHECKING:
    from workbench.context.template import Filled
    from workbench.options import AskOptions


class WorkbenchUsageError(UsageError):
    """A user mistake in a workbench magic: shown as the message alone, and the cell fails."""


def _show_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """Publish the error as an error output whose traceback is just the message (no stack).

    A magic's usage error is the message alone; any other ``WorkbenchError`` (``BudgetExceeded``
    from ``wb.ask`` in a plain cell) is its name and message, with the stack one ``%tb`` away.
    """
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # what %tb shows
    lines = str(value).splitlines() or [""]
    if issubclass(etype, UsageError):
        shell._showtraceback(etype, value, [f"UsageError: {lines[0]}", *lines[1:]])
    else:
        shell._showtraceback(etype, value, [f"{etype.__name__}: {lines[0]}", *lines[1:], "(%tb shows where)"])


def _usage(exc: BaseException) -> WorkbenchUsageError:
    return WorkbenchUsageError(str(exc))


F = TypeVar("F", bound=Callable[..., Any])


def _as_usage(method: F) -> F:
    """Turn any ``WorkbenchError`` a magic meets into a one-line ``UsageError`` (the cell fails)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except WorkbenchError as exc:
            raise _usage(exc) from None

    return cast(F, wrapper)


def _parse(magic: Any, line: str) -> Any:
    try:
        return parse_argstring(magic, line)
    except UsageError as exc:
        options = getattr(magic, "parser", None)
        hint = did_you_mean(str(exc), options._option_string_actions if options else ())
        raise WorkbenchUsageError(f"{exc}{hint}") from None


def _ask_options(args: Any, schema: Any, preview: Any, values: Any = None) -> AskOptions:
    """The ``AskOptions`` that ``%%llm``'s flags stand for; ``values`` fill the cell's ``{...}``."""
    from workbench.options import AskOptions

    return AskOptions(
        model=_unquote(args.model),  # (--session "my notes": IPython leaves the quotes on)
        session=_unquote(args.session),
        user=_unquote(args.user),
        task=_unquote(args.task),
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        response_format={"type": "json_object"} if args.format == "json" else None,
        stream=preview is not None,
        on_token=preview,
        format=args.format,
        cache=False if args.no_cache else None,
        budget=args.budget,
        priority=args.priority,
        max_wait=args.max_wait,
        spec=_unquote(args.context),
        memory=_unquote(args.memory),
        remember=args.remember,
        sink=args.sink,
        schema=schema,
        values=values,
        max_value_tokens=args.max_value_tokens,
    )


def _wb() -> Any:
    import workbench

    return workbench.get()


@magics_class
class WorkbenchMagics(Magics):
    """The workbench magics."""

    def _fill(self, wb: Any, cell: str, args: Any) -> Filled:
        """The cell with its ``{...}`` filled: variables and cells (``{In[3]}``, ``{Out[3]}``, ``{Err}``),
        each value rendered within the token budget (what was cut is said in the block); an image or a
        figure stands as its marker and is kept beside the text, to be shown to the model (``.images``).
        """
        from workbench.context.template import fill_values

        budget = args.max_value_tokens or wb.settings.max_value_tokens
        return fill_values(cell, self._values(), budget, count=lambda text: wb.count_tokens(text, args.model))

    def _values(self) -> Any:
        """What a cell's ``{...}`` is filled from: the namespace, and the cells (``In``, ``Out``, ``Err``)."""
        from collections import ChainMap

        return ChainMap(self._ns, {"Err": cell_errors(self.shell)})

    @property
    def _ns(self) -> dict[str, Any]:
        """The user's namespace (the magics are only registered on a live shell)."""
        if self.shell is None:
            raise WorkbenchUsageError("the workbench magics need an IPython shell")
        return self.shell.user_ns

    @magic_arguments()
    @argument("-m", "--model", help="route or litellm model name (default: the configured default route)")
    @argument("-s", "--session", help="continue the named conversation (its history is sent)")
    @argument("-c", "--context", metavar="SPEC", help="build the context from contexts/SPEC.yaml")
    @argument("--memory", metavar="SCOPE", help="give the call what SCOPE remembers (user:NAME, agent:NAME, shared)")
    @argument("--remember", action="store_true", help="with --memory: remember this cell's text in SCOPE")
    @argument("-o", "--output", metavar="VAR", help="store the Result in this variable")
    @argument("--user", help="who the call is for (recorded for attribution)")
    @argument("--task", help="what the call is for (recorded for attribution)")
    @argument(
        "--format",
        choices=["markdown", "text", "json", "code"],
        default="markdown",
        help="how to show the answer; json asks for a JSON object; code asks for code and puts it in a new cell below",
    )
    @argument("--no-stream", action="store_true", help="wait for the whole answer instead of streaming")
    @argument("--no-cache", action="store_true", help="do not answer from the response cache")
    @argument("--budget", type=float, metavar="USD", help="refuse the call unless its worst-case cost fits")
    @argument("--priority", type=int, default=0, help="place in a rate-limited deployment's queue (higher first)")
    @argument("--max-wait", type=float, metavar="S", help="longest wait for a rate-limit slot before failing over")
    @argument("--temperature", type=float, help="sampling temperature")
    @argument("--max-tokens", type=int, help="upper bound on answer tokens")
    @argument("--sink", choices=["html", "shell", "sql"], help="check the answer for what would run there")
    @argument("-t", "--tools", metavar="TOOLS", help="let the model use these tools (comma-separated names or globs)")
    @argument("--max-steps", type=int, default=8, help="with -t: the most model turns before stopping")
    @argument("--schema", metavar="VAR", help="answer as JSON matching VAR (a JSON-schema dict or pydantic model)")
    @argument("--rate", action="store_true", help="show Good / Bad buttons under the answer (stored with the call)")
    @argument(
        "--max-value-tokens",
        type=int,
        metavar="N",
        help="each {value} (a DataFrame, {Out[3]}, ...) at most N tokens (default: max_value_tokens in config)",
    )
    @cell_magic
    @_as_usage
    def llm(self, line: str, cell: str) -> None:
        """Ask a model: the cell is the prompt; ``{name}`` is filled from the namespace.

        Example::

            %%llm -m local/extractive -s support
            {notes}

            When does the office open?
        """
        args = _parse(self.llm, line)
        if args.max_tokens is not None and args.max_tokens <= 0:
            raise WorkbenchUsageError("--max-tokens must be a positive whole number")
        if args.max_value_tokens is not None and args.max_value_tokens < 50:
            raise WorkbenchUsageError("--max-value-tokens must be at least 50")
        wb = _wb()
        filled = self._fill(wb, cell, args)  # a missing {name} fails here, before anything is shown
        prompt = filled.text.strip()
        schema = None
        if args.schema is not None:
            if args.schema not in self._ns:
                raise WorkbenchUsageError(
                    f"--schema {args.schema}: no such variable; define a JSON-schema dict or a "
                    "pydantic model with that name first"
                )
            schema = self._ns[args.schema]
        if args.tools:
            return self._agent_cell(wb, args, prompt, tuple(filled.images))
        preview = None
        if not args.no_stream:
            from workbench.jupyter.display import StreamPreview

            preview = StreamPreview()
        try:
            result = wb.ask(prompt, _ask_options(args, schema, preview, filled))
        finally:
            if preview is not None:
                preview.close()
        if args.format == "json":
            try:
                result.json()
            except ValueError as exc:
                raise WorkbenchUsageError(
                    f"the answer is not valid JSON ({exc}); call {result.call_id} is recorded: "
                    "ask for JSON in the prompt or use --format markdown"
                ) from None
        if args.output:
            self._ns[args.output] = result
        from IPython.display import display

        display(result)
        if args.format == "code":
            self._new_cell(result.code())
        if args.rate:
            from workbench.jupyter.widgets import rating_bar

            display(rating_bar(wb, result.call_id, by=args.user))

    def _new_cell(self, code: str) -> None:
        """Put ``code`` into a new cell below this one, never run (JupyterLab, Notebook, IPython)."""
        if self.shell is not None and code.strip():
            self.shell.set_next_input(code, replace=False)

    @magic_arguments()
    @argument("session", help="the session to export (its turns since its last reset)")
    @argument("file", help="where to write it: .md, .ipynb or .jsonl")
    @argument("--overwrite", action="store_true", help="replace a file there that is not a transcript written here")
    @line_magic
    @_as_usage
    def llm_export(self, line: str) -> None:
        """Write a session as a transcript: Markdown, a new notebook or JSON lines (secrets scrubbed)."""
        args = _parse(self.llm_export, line)
        path = _wb().session(_unquote(args.session)).export(_unquote(args.file), overwrite=args.overwrite)
        print(f"session {args.session} written to {path}")

    @magic_arguments()
    @argument("cell", nargs="?", type=int, help="the execution count of the failed cell (default: the last error)")
    @argument("-m", "--model", help="route or litellm model name (default: the configured default route)")
    @argument("--max-value-tokens", type=int, metavar="N", help="the most tokens of traceback sent (default: config)")
    @line_magic
    @_as_usage
    def llm_fix(self, line: str) -> None:
        """Send a failed cell's source and traceback to a model and put its fixed cell below (not run).

        ``%llm_fix`` takes the last error; ``%llm_fix 7`` the error of the cell run as ``[7]``.
        """
        from IPython.display import display

        from workbench.context.values import render_value

        args = _parse(self.llm_fix, line)
        errors = cell_errors(self.shell)
        n = args.cell if args.cell is not None else errors.last
        if n is None:
            raise WorkbenchUsageError("no cell has raised an error yet this session: nothing to fix")
        if n not in errors.by_cell:
            raise WorkbenchUsageError(f"cell {n} raised no error this session: %llm_fix {errors.last or ''}".strip())
        source = errors.sources.get(n, "")
        wb = _wb()
        budget = args.max_value_tokens or wb.settings.max_value_tokens
        trace = render_value(errors.by_cell[n], budget, name="Err", count=lambda t: wb.count_tokens(t, args.model))
        prompt = FIX_PROMPT.format(source=source, error=trace.text)
        from workbench.options import AskOptions

        result = wb.ask(prompt, AskOptions(model=args.model, format="code", task="llm_fix"))
        display(result)
        self._new_cell(result.code())

    @magic_arguments()
    @argument("--reload", action="store_true", help="re-read workbench.toml and the environment first")
    @line_magic
    @_as_usage
    def llm_config(self, line: str) -> None:
        """Show the effective configuration (key variables by name, never their values)."""
        import os

        import workbench

        args = _parse(self.llm_config, line)
        if args.reload:
            old = workbench._current
            workbench._set_current(None)
            try:
                _wb()
            except WorkbenchError:
                workbench._set_current(old)  # a broken edit keeps the working runtime
                raise
            if old is not None:
                old.close()
        wb = _wb()
        s = wb.settings
        print(f"config: {s.source or '(none found: defaults)'}")
        print(f"store:  {s.store}")
        print(f"mode:   {s.mode}")
        print(f"default route: {s.default_route}")
        from workbench.config import shown_url

        for name, route in wb.routes.items():
            print(f"route {name} (retries {route.retries}):")
            for d in route.deployments:
                key = ""
                if d.api_key_env:
                    key = f", key from ${d.api_key_env} ({'set' if os.environ.get(d.api_key_env) else 'missing'})"
                base = f", api_base {shown_url(d.api_base)}" if d.api_base else ""
                print(f"  - {d.label}: {d.model}{base}{key}, timeout {d.timeout:g}s")

    @magic_arguments()
    @line_magic
    @_as_usage
    def llm_models(self, line: str) -> Any:
        """Routes, their deployments, and each deployment's health over its recent attempts."""
        _parse(self.llm_models, line)  # (it takes no arguments: a typo is named, not ignored)
        return _wb().models()

    @magic_arguments()
    @argument("-s", "--session", help="only this session")
    @argument("-n", "--limit", type=int, default=20, help="the most recent N calls (default 20)")
    @argument("--route", help="only this route")
    @line_magic
    @_as_usage
    def llm_calls(self, line: str) -> Any:
        """Recorded calls as a DataFrame (an unpriced model's cost reads ``unknown``)."""
        from workbench.observability.calls import readable_costs

        args = _parse(self.llm_calls, line)
        return readable_costs(_wb().calls.df(session=args.session, limit=args.limit, route=args.route))

    @magic_arguments()
    @argument("--by", default="model", help="user | task | agent | session | model | route | day | month")
    @argument("--since", help="only calls since: an age (30d, 12h) or an ISO date, e.g. 2026-11-01")
    @argument("--plot", choices=["spend", "latency", "cache"], help="show a figure instead of the table")
    @argument("--freq", default="day", choices=["hour", "day", "month"], help="time buckets of --plot spend|cache")
    @line_magic
    @_as_usage
    def llm_costs(self, line: str) -> Any:
        """Spend from the ledger, grouped by one dimension (or, with --plot, as a figure)."""
        args = _parse(self.llm_costs, line)
        if args.plot:
            from workbench.observability import plots

            store = _wb().store
            if args.plot == "spend":
                return plots.spend_over_time(store, by=args.by if args.by != "day" else "model", freq=args.freq)
            if args.plot == "latency":
                return plots.latency_by_model(store)
            return plots.cache_hit_rate(store, freq=args.freq)
        from workbench.observability.calls import readable_costs

        return readable_costs(_wb().costs.df(by=args.by, since=args.since))

    @magic_arguments()
    @argument("--set", nargs=2, metavar=("SCOPE", "USD"), help="set a budget, e.g. --set user:alice 5")
    @argument("--tokens", type=int, help="with --set: a token limit (USD may be '-' for tokens only)")
    @argument("--period", default="total", choices=["day", "month", "total"], help="with --set or --remove")
    @argument("--since", metavar="WHEN", help="with --set: count spend from 'now' or an ISO date")
    @argument("--remove", metavar="SCOPE", help="delete a budget")
    @argument("--kill", nargs="?", const="kill switch", metavar="REASON", help="refuse every new call")
    @argument("--lift", action="store_true", help="lift the kill switch")
    @line_magic
    @_as_usage
    def llm_budget(self, line: str) -> Any:
        """Show budgets (spent, reserved, used); set, remove; the kill switch."""
        args = _parse(self.llm_budget, line)
        wb = _wb()
        if args.set:
            scope, usd = args.set
            wb.budgets.set(
                scope, None if usd == "-" else _usd(usd), tokens=args.tokens, period=args.period, since=args.since
            )
        if args.remove:
            wb.budgets.remove(args.remove, args.period)
        if args.kill:
            reason = args.kill.strip("\"'")  # IPython keeps the quotes of a quoted argument
            wb.kill(reason)
            print(f"kill switch ON ({reason}): every new call is refused until %llm_budget --lift")
        if args.lift:
            wb.budgets.lift()
            print("kill switch lifted")
        return wb.budgets.df()

    @magic_arguments()
    @argument(
        "--add",
        nargs=3,
        metavar=("NAME", "METRIC", "ABOVE"),
        help="add a rule: METRIC is error_rate, p50_latency_ms, p95_latency_ms or spend_usd",
    )
    @argument("--window", type=float, default=300.0, metavar="S", help="with --add: the metric's window")
    @argument("--min-calls", type=int, default=5, help="with --add: calls needed before rates count")
    @argument("--route", help="with --add: only this route's calls")
    @argument("--remove", metavar="NAME", help="stop checking a rule")
    @argument("--history", action="store_true", help="show what fired and resolved, newest first")
    @line_magic
    @_as_usage
    def llm_alerts(self, line: str) -> Any:
        """Alert rules with their current values (checked now), or their history."""
        args = _parse(self.llm_alerts, line)
        wb = _wb()
        if args.add:
            name, metric, above = args.add
            wb.alerts.add(
                name,
                metric,
                _number(above, "ABOVE"),
                window_s=args.window,
                min_calls=args.min_calls,
                route=args.route,
            )
        if args.remove:
            wb.alerts.remove(args.remove)
        wb.alerts.check()
        return wb.alerts.df() if args.history else wb.alerts.values()

    @magic_arguments()
    @argument("spec", nargs="?", help="the context spec (contexts/SPEC.yaml); none: only memory and history")
    @argument("--input", required=True, nargs="+", help="the user text to plan for")
    @argument("-m", "--model", help="count tokens for this route or model")
    @argument("-s", "--session", help="include this session's history")
    @argument("--user", help="the user (for user-scoped memory)")
    @argument("--memory", metavar="SCOPE", help="also read this memory scope")
    @line_magic
    @_as_usage
    def llm_context(self, line: str) -> Any:
        """Show what a call would be given: each block with its tokens, what was dropped and why, the messages."""
        args = _parse(self.llm_context, line)
        plan = _wb().plan_context(
            args.spec,
            " ".join(args.input).strip("\"'"),
            model=args.model,
            session=args.session,
            user=args.user,
            memory=args.memory,
        )
        from workbench.jupyter.widgets import context_view

        return context_view(plan)

    @magic_arguments()
    @argument("scope", nargs="?", help="one scope (user:alice, agent:triage, shared); default: all")
    @line_magic
    @_as_usage
    def llm_memory(self, line: str) -> Any:
        """Inspect long-term memory: search, age and importance, forget an item, see its history."""
        args = _parse(self.llm_memory, line)
        from workbench.memory import check_scope

        if args.scope:
            check_scope(args.scope)
        from workbench.jupyter.widgets import MemoryInspector

        return MemoryInspector(_wb().memory, args.scope).widget

    def _agent_cell(self, wb: Any, args: Any, prompt: str, images: tuple[Any, ...] = ()) -> None:
        """``%%llm -t``: run the agent loop with the cell as the task (and its images); show the answer or what
        it waits for.
        """
        from IPython.display import display

        agent = wb.agent(
            "cell",
            model=args.model,
            tools=args.tools,
            max_steps=args.max_steps,
            budget=args.budget,
            session=args.session,
            user=args.user,
        )
        run = agent.run(prompt, images=images)
        if args.output:
            self._ns[args.output] = run
        display(run)
        if run.status == "waiting":
            from workbench.jupyter.widgets import approval_card

            display(approval_card(wb, run))

    @magic_arguments()
    @argument("--approve", metavar="ID", help="approve a pending approval (and resume its run here)")
    @argument("--reject", metavar="ID", help="reject a pending approval (the run is told why)")
    @argument("--reason", default="", help="why (recorded)")
    @argument("--by", help="who decides (default: your user name)")
    @argument("--history", action="store_true", help="every approval and its decision")
    @line_magic
    @_as_usage
    def llm_approvals(self, line: str) -> Any:
        """Approvals waiting for a decision across sessions; decide one and resume its run."""
        args = _parse(self.llm_approvals, line)
        wb = _wb()
        target, decision = (args.approve, "approve") if args.approve else (args.reject, "reject")
        if target:
            wb.approvals.decide(target, decision, by=_unquote(args.by), reason=_unquote(args.reason) or "")
            run_id = wb.approvals.get(target)["run_id"]
            if run_id:
                return wb.resume(run_id)
        return wb.approvals.df() if args.history else wb.approvals.pending()

    @magic_arguments()
    @argument("-s", "--session", help="only this session's events")
    @argument("--locks", action="store_true", help="sessions and agents the circuit breaker locked")
    @argument("--reset", metavar="KEY", help="unlock session:NAME or agent:NAME after review")
    @argument("--by", help="with --reset: who reviewed it (recorded)")
    @argument("--scanners", action="store_true", help="the registered scanners and each stage's policy")
    @line_magic
    @_as_usage
    def llm_guard(self, line: str) -> Any:
        """What the guardrails found: stage, scanner, action and the kinds and spans (never the text)."""
        args = _parse(self.llm_guard, line)
        guard = _wb().guard
        if args.reset:
            guard.reset(args.reset, by=_unquote(args.by))
            return guard.locks()
        if args.locks:
            return guard.locks()
        if args.scanners:
            return guard.scanners()
        return guard.df(args.session)

    @magic_arguments()
    @argument("ref", nargs="?", default="last", help="a call id, an agent/workflow run id, a trace id, or last")
    @argument("--table", action="store_true", help="only the span table, no figure")
    @line_magic
    @_as_usage
    def llm_trace(self, line: str) -> Any:
        """Show a call's (or a run's) spans as a waterfall, and return them as a table."""
        args = _parse(self.llm_trace, line)
        view = _wb().trace(_unquote(args.ref))
        if not args.table:
            from IPython.display import display

            display(view.figure())
        return view.df[["depth", "name", "start_ms", "duration_ms", "status", "attributes"]]

    @magic_arguments()
    @argument("--since", help="only calls since: an age (24h, 7d) or an ISO date")
    @argument("--freq", choices=["minute", "hour", "day", "month"], help="the time bucket (default: from the span)")
    @line_magic
    @_as_usage
    def llm_dashboard(self, line: str) -> Any:
        """The health of the whole system as one plotly figure grid."""
        args = _parse(self.llm_dashboard, line)
        return _wb().dashboard(since=args.since, freq=args.freq)

    @magic_arguments()
    @argument("session", help="the recorded session to re-run")
    @argument("--against", metavar="MODEL", help="re-execute the requests on this model or route, side by side")
    @argument("--suite", help="with --against: grade both answers with this eval suite's scorers")
    @line_magic
    @_as_usage
    def llm_replay(self, line: str) -> Any:
        """Re-run a recorded session: identical/different per call, or --against another model side by side."""
        args = _parse(self.llm_replay, line)
        report = _wb().replay(_unquote(args.session), against=_unquote(args.against), suite=_unquote(args.suite))
        same = int(report["identical"].sum())
        changed = int(report["served_changed"].sum())
        note = (
            f"; {changed} served by another model version than recorded (see served, served_recorded)"
            if changed
            else ""
        )
        if args.against is None:
            print(f"{same}/{len(report)} calls identical{note}")
            return report
        print(
            f"{len(report)} calls re-run on {args.against}: {same} identical, mean similarity "
            f"{report['similarity'].mean():.2f}, cost {report['cost_delta'].sum():+.6f} USD, latency "
            f"{report['latency_delta_ms'].median():+.1f} ms (median){note}"
        )
        from workbench.audit.replay import AGAINST_COLUMNS

        columns = ["call_id", "prompt", "recorded", "replayed", "similarity", "diff", "cost_delta", "latency_delta_ms"]
        return report[columns + [c for c in report.columns if c not in AGAINST_COLUMNS]]

    @magic_arguments()
    @argument("--verify", action="store_true", help="walk the chain and say whether it is intact")
    @argument("--kind", help="only entries of this kind (call, tool_call, approval, budget, guard, config, ...)")
    @argument("--since", help="only entries since: an age (24h, 30d) or an ISO date")
    @argument("--export", metavar="FILE", help="write the entries (since --since) and the chain proof as JSON lines")
    @argument("--overwrite", action="store_true", help="with --export: replace a file that is not an earlier export")
    @line_magic
    @_as_usage
    def llm_audit(self, line: str) -> Any:
        """The hash-chained audit log: entries as a table, --verify the chain, --export it with its proof."""
        args = _parse(self.llm_audit, line)
        wb = _wb()
        if args.verify:
            result = wb.audit.verify()
            print(result)
            return None
        if args.export:
            text = wb.audit.export(_unquote(args.export), since=args.since, overwrite=args.overwrite)
            print(f"{text.count(chr(10)) - 1} entries and their proof written to {_unquote(args.export)}")
            return None
        return wb.audit.df(kind=args.kind, since=args.since)

    @magic_arguments()
    @argument("session", help="the session to report on")
    @argument("-o", "--output", help="the HTML file (default: SESSION.html)")
    @argument("--overwrite", action="store_true", help="replace a file there that is not an earlier report")
    @line_magic
    @_as_usage
    def llm_report(self, line: str) -> Any:
        """Write a standalone HTML report of a session (calls, cost, latency, tool calls, guard events, approvals)."""
        args = _parse(self.llm_report, line)
        session = _unquote(args.session)
        path = _wb().report(session, _unquote(args.output) or f"{session}.html", overwrite=args.overwrite)
        print(f"report of session {session} written to {path}")

    @magic_arguments()
    @argument("--older-than", help="an age (30d, 12h) or an ISO date (default: [retention] older_than)")
    @argument("--dry-run", action="store_true", help="only count what would go")
    @line_magic
    @_as_usage
    def llm_compact(self, line: str) -> Any:
        """Remove old call bodies and spans; keep aggregates and the audit chain (behind a checkpoint)."""
        args = _parse(self.llm_compact, line)
        print(_wb().compact(args.older_than, dry_run=args.dry_run))

    @magic_arguments()
    @argument("suite", help="a suite name (evals/NAME.yaml) or path")
    @argument("-m", "--model", action="append", help="a model or route to run it on (repeatable)")
    @argument("-c", "--context", action="append", help="a context spec to run it with (repeatable)")
    @argument("--repeats", type=int, help="run each case this many times")
    @argument("--baseline", help="compare with this eval run id, or latest")
    @line_magic
    @_as_usage
    def llm_eval(self, line: str) -> Any:
        """Run an eval suite: a comparison chart, thresholds, and (--baseline) the regression gate."""
        from IPython.display import display

        args = _parse(self.llm_eval, line)
        wb = _wb()
        report = wb.evals.run(_unquote(args.suite), models=args.model, contexts=args.context, repeats=args.repeats)
        display(report.chart())
        for problem in report.failures():
            print(f"under threshold: {problem}")
        if not args.baseline:
            return report
        gates = [
            gate.assign(model=run["model"], baseline_run=baseline)
            for run, baseline, gate in wb.evals.gate(report, args.baseline)
            if gate is not None
        ]
        if not gates:
            print("no earlier run to compare with: this run is the baseline now")
            return report
        import pandas as pd

        return pd.concat(gates, ignore_index=True)[
            ["model", "baseline_run", "scorer", "baseline", "candidate", "delta", "ci_low", "ci_high", "verdict"]
        ]


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise WorkbenchUsageError(f"{what} {text!r} is not a number: write e.g. 0.2 or 1500") from None


def _usd(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise WorkbenchUsageError(f"budget {text!r} is not an amount in USD: write e.g. 5 or 0.25") from None


def _unquote(value: str | None) -> str | None:
    """A line-magic value without the quotes IPython's argument splitting leaves on it."""
    if value and len(value) > 1 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


FIX_PROMPT = """This notebook cell failed. Write a corrected version of the whole cell.

The cell:
```python
{source}
```

What it raised:
```
{error}
```"""


def cell_errors(shell: Any) -> Any:
    """The shell's record of the exceptions its cells raised (``{Err[n]}``), kept by a post-run hook."""
    from workbench.context.template import CellErrors

    errors = getattr(shell, "_workbench_errors", None)
    if errors is None:
        errors = CellErrors()
        shell._workbench_errors = errors
    return errors


def _record_error(shell: Any, result: Any) -> None:
    """After each cell: keep its exception as plain traceback text for ``{Err}``."""
    exc = result.error_in_exec or result.error_before_exec
    if exc is None or result.execution_count is None:
        return
    source = getattr(getattr(result, "info", None), "raw_cell", None) or ""
    cell_errors(shell).record(result.execution_count, portable_traceback(exc, shell), source)


def portable_traceback(exc: BaseException, shell: Any = None) -> str:
    """The traceback as a model should read it: no terminal colours, no IPython machinery frames,
    cells named ``Cell In[7]`` as IPython shows them, and no machine paths (``…/site-packages/pandas/…``).
    """
    import re
    import sys
    import traceback

    def trim(te: traceback.TracebackException | None, seen: set[int]) -> None:
        if te is None or id(te) in seen:
            return
        seen.add(id(te))
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if "/IPython/core/" not in f.filename])
        trim(te.__cause__, seen)
        trim(te.__context__, seen)

    te = traceback.TracebackException.from_exception(exc)
    trim(te, set())
    text = "".join(te.format())
    names = getattr(getattr(shell, "compile", None), "_filename_map", {}) or {}
    for filename, number in names.items():
        text = text.replace(f'File "{filename}"', f"Cell In[{number}]")
    text = re.sub(r'File "[^"]*?/(site-packages|dist-packages)/', r'File "…/\1/', text)
    text = text.replace(f'File "{sys.base_prefix}/', 'File "…/')
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).strip()


def _warm_up() -> None:
    """Load what the first ``%%llm`` cell (typed while this runs) will need: the pipeline's modules on the
    kernel's main thread as soon as this cell is done, then, on a background thread, the tokenizers and litellm
    when the default route goes past the local models (seconds to import, which a kernel using only local
    models never pays); ``WORKBENCH_NO_WARMUP=1`` turns it off.

    The workbench's own modules are never imported beside a cell: two threads importing one package's modules
    at once can each wait on the other, and Python then hands one of them a module half run (a cell queued right
    after ``%load_ext`` failed once with "cannot import name 'Guard'"). Outside a kernel (a terminal IPython,
    whose next prompt is typed, not queued) all of it loads on the background thread.
    """
    import os
    import threading

    if os.environ.get("WORKBENCH_NO_WARMUP"):
        return

    def warm() -> None:
        try:
            from workbench.config import Deployment, Route, load_settings
            from workbench.serving import prepare

            settings = load_settings()
            prepare(
                settings.routes.get(settings.default_route)
                or Route(deployments=[Deployment(model=settings.default_route)]),
                settings,
            )
        except Exception:  # noqa: BLE001 - a warm-up: the first real call reports any error itself
            pass

    def load(on_this_thread: bool = False) -> None:
        try:
            import workbench.runtime  # noqa: F401 - the pipeline's modules (those prepare() needs among them)
        except Exception:  # noqa: BLE001 - the first real call reports any error itself
            return
        if on_this_thread:
            warm()
        else:
            threading.Thread(target=warm, name="workbench-warm-up", daemon=True).start()

    loop = _kernel_loop()
    if loop is None:  # a terminal IPython: no loop to wait on, and a prompt typed slower than the import
        threading.Thread(target=load, args=(True,), name="workbench-warm-up", daemon=True).start()
    else:
        loop.add_callback(load)  # (runs on the thread that runs the cells, between them)


def _kernel_loop() -> Any:
    """The event loop of this kernel's main thread (ipykernel), or ``None`` outside a kernel."""
    from IPython import get_ipython

    loop = getattr(getattr(get_ipython(), "kernel", None), "io_loop", None)
    return loop if callable(getattr(loop, "add_callback", None)) else None


def register(ipython: Any) -> None:
    """Register the magics, and show their usage errors as error outputs without a stack.

    IPython prints a plain ``UsageError`` to stderr with no ``error`` message, which
    nbval cannot see; the handler is installed only if no other one is.
    """
    ipython.register_magics(WorkbenchMagics)
    _warm_up()
    if not getattr(ipython, "_workbench_error_hook", False):
        ipython.events.register("post_run_cell", lambda result: _record_error(ipython, result))
        ipython._workbench_error_hook = True
    if not ipython.custom_exceptions:
        ipython.set_custom_exc((WorkbenchUsageError, WorkbenchError), _show_error)
