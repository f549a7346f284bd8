"""The ``workbench`` command: calls, replay, eval, trace, metrics, audit, store, report, costs, budget, and more.

Errors meant for users print one line (``workbench: …``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError
from workbench.suggest import did_you_mean

if TYPE_CHECKING:
    from workbench.runtime import Workbench


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="The 11-factor AI workbench.")
    parser.add_argument("--config", help="path of workbench.toml (default: searched from here up)")
    sub = parser.add_subparsers(dest="command", required=True)

    calls = sub.add_parser("calls", help="list recorded calls")
    calls.add_argument("-s", "--session", help="only this session's calls (since its last reset)")
    calls.add_argument("--route", help="only this route's calls")
    calls.add_argument("-n", "--limit", type=int, default=20, help="the most recent N (default 20)")
    calls.add_argument("--format", choices=["table", "csv", "json"], default="table", help="how to print them")

    replay = sub.add_parser("replay", help="re-run a recorded session; exit 1 if any answer differs")
    replay.add_argument("session", help="the recorded session (its calls since its last reset)")
    replay.add_argument("--against", metavar="MODEL", help="re-execute on this model or route and compare side by side")
    replay.add_argument("--suite", help="with --against: grade both answers with this eval suite's scorers")

    costs = sub.add_parser("costs", help="spend grouped by user, task, agent, session, model, route, day, month")
    costs.add_argument("--by", default="model", help="user, task, agent, session, model, route, day or month")
    costs.add_argument("--since", help="only calls since an age (30d, 12h) or an ISO date, e.g. 2026-11-01")

    budget = sub.add_parser("budget", help="list or set budgets; kill or lift the kill switch")
    budget_sub = budget.add_subparsers(dest="action", required=True)
    budget_sub.add_parser("list", help="every budget with what is spent and reserved")
    budget_set = budget_sub.add_parser("set", help="create or change a budget: set SCOPE USD")
    budget_set.add_argument("scope", help="global, user:NAME, task:NAME, agent:NAME or session:NAME")
    budget_set.add_argument(
        "usd", nargs="?", help="the limit in USD ('-' or none: tokens only), as in %%llm_budget --set SCOPE USD"
    )
    budget_set.add_argument("--usd", dest="usd_option", type=float, help="the same limit as an option")
    budget_set.add_argument("--tokens", type=int, help="a token limit")
    budget_set.add_argument(
        "--period", choices=["day", "month", "total"], default="total", help="what the limit is per (default: total)"
    )
    budget_set.add_argument("--since", metavar="WHEN", help="count spend from 'now' or an ISO date")
    kill = budget_sub.add_parser("kill", help="refuse every new call, in every process, until lifted")
    kill.add_argument("reason", nargs="?", default="kill switch", help="why (recorded)")
    budget_sub.add_parser("lift", help="allow calls again")

    context = sub.add_parser("context", help="render a context spec's plan without calling a model")
    context_sub = context.add_subparsers(dest="action", required=True)
    render = context_sub.add_parser("render", help="print the plan and the final messages")
    render.add_argument("spec", help="the spec's name (contexts/NAME.yaml) or a path to it")
    render.add_argument("--input", required=True, help="the user text to plan for")
    render.add_argument("-m", "--model", help="count tokens for this route or model")
    render.add_argument("--user", help="the user (for user-scoped memory)")
    render.add_argument("-s", "--session", help="include this session's history")
    render.add_argument("--memory", metavar="SCOPE", help="also read this memory scope")
    alerts = sub.add_parser("alerts", help="alert rules with their current values; --history: what fired when")
    alerts.add_argument("--history", action="store_true", help="list alerts that fired or resolved")
    alerts.add_argument("--check", action="store_true", help="evaluate the rules now (record and post changes)")
    approvals = sub.add_parser("approvals", help="list pending approvals, or decide one")
    approvals_sub = approvals.add_subparsers(dest="action", required=True)
    approvals_sub.add_parser("list", help="what waits for a decision, across sessions")
    approvals_sub.add_parser("history", help="every approval and its decision, newest first")
    for name in ("approve", "reject", "escalate"):
        decide = approvals_sub.add_parser(
            name,
            help={
                "approve": "let the tool call run",
                "reject": "refuse it",
                "escalate": "hand it to someone else to decide",
            }[name],
        )
        decide.add_argument("id", help="the approval's id (approvals list)")
        decide.add_argument("--by", help="who decides (default: your user name)")
        decide.add_argument("--reason", default="", help="why (recorded)")
        if name == "approve":
            decide.add_argument("--arguments", metavar="JSON", help="run with these arguments instead (modify)")
        if name == "escalate":
            decide.add_argument("--to", required=True, help="who must decide it now")

    mcp = sub.add_parser("mcp", help="MCP servers: list their tools (with pin status), resources and prompts")
    mcp_sub = mcp.add_subparsers(dest="action", required=True)
    mcp_list = mcp_sub.add_parser("list", help="start the configured servers and list what they offer")
    mcp_list.add_argument("server", nargs="?", help="only this server")
    mcp_approve = mcp_sub.add_parser("approve", help="re-pin a tool whose definition changed, after review")
    mcp_approve.add_argument("tool", help="server.tool")
    mcp_approve.add_argument("--by", help="who reviewed it")

    ev = sub.add_parser("eval", help="run an eval suite; with --baseline, gate on regressions")
    ev.add_argument("suite", help="a suite name (evals/NAME.yaml) or path")
    ev.add_argument("-m", "--model", action="append", help="a model or route to run it on (repeatable)")
    ev.add_argument("-c", "--context", action="append", help="a context spec to run it with (repeatable)")
    ev.add_argument("--repeats", type=int, help="run each case this many times")
    ev.add_argument("--baseline", help="an eval run id, or 'latest' (the newest earlier run of the same variant)")
    ev.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a scorer regressed")
    ev.add_argument("--min-effect", type=float, default=0.0, help="ignore changes smaller than this")

    trace = sub.add_parser("trace", help="the spans of a call, an agent or workflow run, or a trace, as a table")
    trace.add_argument("ref", nargs="?", default="last", help="a call id, run id, trace id, or last")

    metrics = sub.add_parser("metrics", help="calls, errors, latency p50/p95, cache hits, cost, tokens per bucket")
    metrics.add_argument("--by", default="model", help="model, route, user, task, agent, session, or none")
    metrics.add_argument(
        "--freq", default="hour", choices=["minute", "hour", "day", "month"], help="the time buckets (default: hour)"
    )
    metrics.add_argument("--since", help="an age (24h, 7d) or an ISO date")

    otel = sub.add_parser("otel", help="send stored spans to an OTLP/HTTP collector (the otel extra)")
    otel_sub = otel.add_subparsers(dest="action", required=True)
    otel_export = otel_sub.add_parser("export", help="send spans since a time, or of one call or run")
    otel_export.add_argument("--since", help="an age (24h, 7d) or an ISO date")
    otel_export.add_argument("--ref", help="only this call, run or trace")
    otel_export.add_argument("--endpoint", help="the collector (default: [otel] endpoint)")

    report = sub.add_parser("report", help="write a standalone HTML report of a session")
    report.add_argument("session", help="the session to report on")
    report.add_argument("-o", "--output", default=None, help="the HTML file (default: SESSION.html)")
    report.add_argument("--overwrite", action="store_true", help="replace a file there that is not an earlier report")

    audit = sub.add_parser("audit", help="verify the hash-chained audit log, or export it with its proof")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", help="walk the chain; exit 1 and name the first bad entry if broken")
    verify.add_argument("--file", help="check an exported file on its own instead of the store")
    ack = audit_sub.add_parser("acknowledge", help="let a log whose end was cut off grow again, the break recorded")
    ack.add_argument("--by", required=True, help="who looked into it")
    ack.add_argument("--reason", required=True, help="what happened (recorded in the log)")
    export = audit_sub.add_parser("export", help="entries (since a time) as JSON lines, ending with the chain proof")
    export.add_argument("--since", help="an age (30d, 12h) or an ISO date")
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="JSON lines, the proof last")
    export.add_argument("-o", "--output", help="write here (default: standard output)")
    export.add_argument("--overwrite", action="store_true", help="replace a file there that is not an earlier export")

    team = sub.add_parser("team", help="a team's spend from its analysts' audit exports")
    team_sub = team.add_subparsers(dest="action", required=True)
    team_report = team_sub.add_parser("report", help="verify each export, merge the rest by user, model, task, day")
    team_report.add_argument("files", nargs="+", help="audit exports (workbench audit export -o FILE)")
    team_report.add_argument("--by", default="user,model,task,day", help="what to sum by (and store)")
    team_report.add_argument("--html", metavar="FILE", help="also write the HTML report (with its figure)")
    team_report.add_argument("--overwrite", action="store_true", help="replace a --html file not an earlier report")

    store = sub.add_parser("store", help="look after the store file")
    store_sub = store.add_subparsers(dest="action", required=True)
    compact = store_sub.add_parser(
        "compact", help="remove old call bodies and spans; keep aggregates and the audit chain (behind a checkpoint)"
    )
    compact.add_argument("--older-than", help="an age (30d, 12h) or an ISO date (default: [retention] older_than)")
    compact.add_argument("--dry-run", action="store_true", help="only count what would go")

    plugins = sub.add_parser(
        "plugins", help="what is registered: scanners, scorers, checks, models, tools, and from where"
    )
    plugins.add_argument("--kind", choices=["scanner", "scorer", "check", "model", "tool"], help="only this kind")

    chaos = sub.add_parser("chaos-server", help="serve a misbehaving OpenAI-compatible API")
    chaos.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    chaos.add_argument("--port", type=int, default=8900, help="the port to listen on")
    chaos.add_argument("--name", default="chaos", help="its name, at the start of each answer")
    chaos.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    chaos.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with an error")
    chaos.add_argument("--error-status", type=int, default=500, help="the status of those errors")
    chaos.add_argument("--status", type=int, help="answer every request with this status")
    chaos.add_argument("--rpm", type=int, help="requests per minute before 429 + Retry-After")
    chaos.add_argument("--retry-after", type=float, help="Retry-After to send with 429 (seconds)")
    chaos.add_argument("--context-window", type=int, help="prompt tokens over this: 400 context_length_exceeded")
    chaos.add_argument("--api-key-env", help="require the bearer token held in this environment variable")
    chaos.add_argument("--jitter-ms", type=float, default=0.0, help="latency standard deviation")
    chaos.add_argument("--tpm", type=int, help="prompt tokens per minute before 429 + Retry-After")
    chaos.add_argument(
        "--window",
        type=float,
        default=60.0,
        metavar="S",
        help="rpm/tpm allow bursts of this many seconds' worth (1: per-second enforcement)",
    )
    chaos.add_argument("--malformed-rate", type=float, default=0.0, help="share of answers with a broken body")
    chaos.add_argument("--cut-stream-after", type=int, help="close streams after N words")
    chaos.add_argument("--no-stream-usage", action="store_true", help="never send usage in streams")
    chaos.add_argument("--seed", type=int, help="for reproducible errors and jitter")
    handlers: dict[str, Callable[..., int]] = {
        "calls": _calls,
        "replay": _replay,
        "costs": _costs,
        "budget": _budget,
        "context": _context,
    }
    handlers |= {"alerts": _alerts, "approvals": _approvals, "mcp": _mcp, "eval": _eval, "trace": _trace}
    handlers |= {"metrics": _metrics, "otel": _otel, "report": _report, "audit": _audit, "store": _audit}
    handlers |= {"chaos-server": _chaos, "plugins": _plugins, "team": _team}
    for name, command in sub.choices.items():
        command.set_defaults(func=handlers[name])  # a new subcommand without a handler fails here, at once
    for sub_parser in _all(parser):
        sub_parser.set_defaults(_parser=sub_parser)  # the innermost one wins: its usage for mistakes
    return parser


def _all(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every subcommand's parser under it."""
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                out += _all(child)
    return out


# Commands that may create the store; every other one reads, and first checks there is one.
_WRITES = {
    ("budget", "set"),
    ("budget", "kill"),
    ("budget", "lift"),
    ("eval", None),
    ("mcp", "list"),
    ("mcp", "approve"),
    ("context", "render"),
    ("alerts", None),
}


def _existing_store(args: argparse.Namespace) -> None:
    """Raise a one-line error saying where no store was found, and how to point at one."""
    from workbench.config import load_settings

    settings = load_settings(args.config)
    if settings.store.exists():
        return
    if os.environ.get("WORKBENCH_STORE"):
        where = "from WORKBENCH_STORE"
    elif settings.source:
        where = f"named by {settings.source}"
    else:
        where = f"the default: no workbench.toml in {Path.cwd()} or above it"
    raise WorkbenchError(
        f"no store at {settings.store} ({where}); nothing was created. Make one by running a "
        "notebook or wb.ask(), or point at one: WORKBENCH_STORE=path/to/workbench.db or "
        "--config path/to/workbench.toml"
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; a mistake is reported with the subcommand's own usage, and a close option suggested."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        inner = getattr(args, "_parser", parser)
        message = f"unrecognized arguments: {' '.join(extra)}"
        inner.error(message + did_you_mean(message, inner._option_string_actions))
    return args


def _mcp(wb: Workbench, args: argparse.Namespace) -> int:
    mcp = wb.mcp
    try:
        if args.action == "approve":
            mcp.approve(args.tool, by=args.by)
            print(f"{args.tool}: pinned again")
            return 0
        servers = [args.server] if args.server else sorted(mcp.settings.servers)
        if not servers:
            print("no MCP servers configured ([mcp.servers.NAME] in workbench.toml)")
            return 0
        for server in servers:
            tools = mcp.connect(server)
            pins = mcp.df().set_index("name")["status"].to_dict()
            print(f"{server}: {len(tools)} tools")
            for t in tools:
                print(f"  {t.name:32} {t.risk:11} {pins.get(t.name, ''):8} {t.description[:60]}")
            for label, df in (("resources", mcp.resources(server)), ("prompts", mcp.prompts(server))):
                if len(df):
                    print(f"  {label}: {', '.join(df.iloc[:, 0].astype(str))}")
        return 0
    finally:
        mcp.close()


def _eval(wb: Workbench, args: argparse.Namespace) -> int:
    evals = wb.evals
    report = evals.run(args.suite, models=args.model, contexts=args.context, repeats=args.repeats, progress=False)
    summary = report.summary()[
        ["run_id", "model", "context", "scorer", "mean", "ci_low", "ci_high", "pass_rate", "threshold", "ok"]
    ]
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    failed = report.failures()
    regressed = []
    for run, baseline, gate in evals.gate(report, args.baseline, min_effect=args.min_effect) if args.baseline else []:
        if gate is None:
            print(f"\n{run['model']}: no earlier run to compare with (this one, {run['id']}, is the baseline now)")
            continue
        print(f"\n{run['model']} [{run['context'] or '-'}] run {run['id']} against baseline {baseline}:")
        print(gate.drop(columns="served_changed").to_string(index=False, float_format=lambda v: f"{v:+.3f}"))
        if gate["served_changed"].any():
            print(f"note: the provider served other model versions: {gate['served_changed'].iloc[0]}")
        regressed += [f"{run['model']}: {r.scorer}" for r in gate.itertuples() if r.verdict == "regressed"]
    for line in failed:
        print(f"under threshold: {line}")
    if regressed:
        print(f"REGRESSED: {', '.join(regressed)}")
    return 1 if failed or (regressed and args.fail_on_regression) else 0


def _team(args: argparse.Namespace) -> int:
    """``workbench team report FILE...``: exit 1 when a file was left out (the report is still printed)."""
    from workbench.audit.team import team_report

    report = team_report(args.files)
    print(report.df(tuple(b.strip() for b in args.by.split(",") if b.strip())).to_string(index=False))
    print(report)
    if args.html:
        report.html(args.html, overwrite=args.overwrite)
        print(f"written to {args.html}")
    return 1 if report.left_out else 0


def _audit(args: argparse.Namespace) -> int:
    from workbench.audit import AuditLog, verify_export
    from workbench.config import load_settings
    from workbench.store import Store
    from workbench.store.retention import compact

    settings = load_settings(args.config)
    if args.action == "verify" and args.file:
        result = verify_export(args.file)
        print(str(result).replace("audit chain", f"{args.file}:"))
        return 0 if result.ok else 1
    store = Store(settings.store)
    try:
        if args.action == "verify":
            result = AuditLog(store).verify()
            print(result)
            return 0 if result.ok else 1
        if args.action == "acknowledge":
            print(AuditLog(store).acknowledge(args.by, args.reason))
            return 0
        if args.action == "export":
            text = AuditLog(store).export(args.output, since=args.since, format=args.format, overwrite=args.overwrite)
            if args.output:
                print(f"{text.count(chr(10)) - 1} entries and their proof written to {args.output}")
            else:
                print(text, end="")
            return 0
        print(compact(store, args.older_than or settings.retention.older_than, dry_run=args.dry_run))
        return 0
    finally:
        store.close()


def _approvals(wb: Workbench, args: argparse.Namespace) -> int:
    import json

    approvals = wb.approvals
    if args.action in ("list", "history"):
        df = approvals.pending() if args.action == "list" else approvals.df()
        cols = ["id", "created_at", "status", "tool", "risk", "arguments", "session", "agent", "reason"]
        if args.action == "history":
            cols += ["decided_by", "decided_at", "decision_reason"]
        print(
            df[cols].to_string(index=False) if len(df) else f"no {'pending ' if args.action == 'list' else ''}approvals"
        )
        return 0
    decision, edited = args.action, None
    if args.action == "approve" and args.arguments:
        try:
            edited = json.loads(args.arguments)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"--arguments is not JSON ({exc})") from None
        except RecursionError:
            raise WorkbenchError("--arguments is nested too deeply to read: give plain values") from None
        decision = "modify"
    approvals.decide(args.id, decision, by=args.by, reason=args.reason, arguments=edited, to=getattr(args, "to", None))
    row = approvals.get(args.id)
    print(
        f"{args.id}: {row['status']} by {row['decided_by']}"
        + (f" (run {row['run_id']} resumes when its notebook or `wb.resume` picks it up)" if row["run_id"] else "")
    )
    return 0


def _check_text(args: argparse.Namespace) -> None:
    """Arguments that are not valid text (bytes that were not UTF-8 in the shell) are one-line errors."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    flag = name if name in ("session", "suite", "scope", "spec", "id", "tool") else f"--{name}"
                    raise WorkbenchError(
                        f"{flag.replace('_', '-')}: {item.encode('utf-8', 'replace').decode()!r} "
                        "is not valid UTF-8 text; retype it"
                    ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parse(argv)
    try:
        _check_text(args)
        if args.func in (_chaos, _plugins, _team):
            return int(args.func(args))  # no store needed
        if (args.command, getattr(args, "action", None)) not in _WRITES:
            _existing_store(args)  # reading: never create a store (or its folder) just to find it empty
        if args.func is _audit:
            return _audit(args)  # on the store alone: verifying must not write a config entry first
        from workbench.runtime import Workbench

        wb = Workbench.from_config(args.config)
        return int(args.func(wb, args))
    except WorkbenchError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 2


def _calls(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench calls``."""
    df = wb.calls.df(session=args.session, limit=args.limit, route=args.route)
    if args.format == "csv":
        print(df.to_csv(index=False), end="")
    elif args.format == "json":
        print(df.to_json(orient="records", indent=2))
    else:
        cols = [
            "call_id",
            "started_at",
            "session",
            "route",
            "model",
            "status",
            "prompt",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "latency_ms",
        ]
        from workbench.observability.calls import readable_costs

        view = readable_costs(df[cols].assign(prompt=df["prompt"].str.slice(0, 40)))
        print(view.to_string(index=False) if len(df) else "no calls recorded")
    return 0


def _costs(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench costs``."""
    from workbench.observability.calls import readable_costs

    df = wb.costs.df(by=args.by, since=args.since)
    print(readable_costs(df).to_string(index=False) if len(df) else "no spend recorded")
    return 0


def _budget(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench budget``."""
    if args.action == "set":
        usd = args.usd_option if args.usd in (None, "-") else _usd(args.usd)
        wb.budgets.set(args.scope, usd, tokens=args.tokens, period=args.period, since=args.since)
    elif args.action == "kill":
        wb.kill(args.reason)
        print(f"kill switch ON ({args.reason})")
    elif args.action == "lift":
        wb.budgets.lift()
        print("kill switch lifted")
    df = wb.budgets.df()
    print(df.to_string(index=False) if len(df) else "no budgets set")
    return 0


def _context(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench context``."""
    plan = wb.plan_context(
        args.spec, args.input, model=args.model, user=args.user, session=args.session, memory=args.memory
    )
    print(plan)
    for message in plan.messages:
        print(f"\n--- {message['role']}\n{message['content']}")
    return 0


def _alerts(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench alerts``."""
    for notice in wb.alerts.check(warn=False) if args.check else []:
        print(notice)
    df = wb.alerts.df() if args.history else wb.alerts.values()
    empty = "no alerts recorded" if args.history else "no alert rules configured ([[alerts.rules]])"
    print(df.to_string(index=False) if len(df) else empty)
    wb.alerts.flush()
    return 0


def _trace(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench trace``."""
    df = wb.trace(args.ref).df
    view = df.assign(name=[f"{'  ' * d}{n}" for d, n in zip(df["depth"], df["name"], strict=True)])
    print(view[["name", "start_ms", "duration_ms", "status"]].to_string(index=False, float_format="%.3f"))
    return 0


def _metrics(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench metrics``."""
    df = wb.metrics.df(by=None if args.by == "none" else args.by, freq=args.freq, since=args.since)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.6g}") if len(df) else "no calls recorded")
    return 0


def _otel(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench otel``."""
    sent = wb.otel.export(since=args.since, ref=args.ref, endpoint=args.endpoint)
    print(f"{sent} spans sent")
    return 0


def _report(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench report``."""
    path = wb.report(args.session, args.output or f"{args.session}.html", overwrite=args.overwrite)
    print(f"report of session {args.session} written to {path}")
    return 0


def _replay(wb: Workbench, args: argparse.Namespace) -> int:
    """``workbench replay``."""
    report = wb.replay(args.session, against=args.against, suite=args.suite)
    if args.against:
        cols = ["call_id", "similarity", "cost_delta", "latency_delta_ms", "diff"]
        scores = [
            c
            for c in report.columns
            if c not in cols and c.endswith("_recorded") and c != "cost_recorded" and c != "latency_recorded_ms"
        ]
        extra = [c for s in scores for c in (s, s.removesuffix("_recorded"))]
        print(report[cols + extra].assign(diff=report["diff"].str.slice(0, 60)).to_string(index=False))
        print(
            f"{int(report['identical'].sum())}/{len(report)} identical on {args.against}; cost "
            f"{report['cost_delta'].sum():+.6f} USD"
        )
        return 0
    for row in report.itertuples():
        mark = "identical" if row.identical else "DIFFERENT"
        served = f"  (served by {row.served}; recorded: {row.served_recorded})" if row.served_changed else ""
        print(f"{row.call_id}  {mark:9}  {str(row.prompt)[:60]!r}{served}")
    same = int(report["identical"].sum())
    changed = int(report["served_changed"].sum())
    note = f"; {changed} served by another model version than recorded" if changed else ""
    print(f"{same}/{len(report)} calls identical{note}")
    return 0 if same == len(report) else 1


def _plugins(args: argparse.Namespace) -> int:
    """``workbench plugins``: every registered thing by kind, built in or installed, and where it came from."""
    import workbench.evals.scorers  # noqa: F401 - the built-ins register on import
    import workbench.guardrails.standard  # noqa: F401
    from workbench.plugins import REGISTRY
    from workbench.serving.types import LOCAL_MODELS

    rows = [("model", name, "workbench") for name in LOCAL_MODELS]
    rows += [(e.kind, e.name, e.source) for e in REGISTRY.entries()]
    rows = [r for r in rows if args.kind in (None, r[0])]
    width = max(len(r[1]) for r in rows) if rows else 4
    for kind, name, source in rows:
        print(f"{kind:8} {name:{width}}  {source}")
    for problem in REGISTRY.errors:
        print(f"broken plug-in: {problem}", file=sys.stderr)
    return 1 if REGISTRY.errors else 0


def _usd(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise WorkbenchError(f"budget {text!r} is not an amount in USD: write e.g. 5 or 0.25") from None


def _chaos(args: argparse.Namespace) -> int:
    import os

    from workbench.limits import ChaosServer

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise WorkbenchError(f"--api-key-env {args.api_key_env}: that variable is not set; export it first")
    server = ChaosServer(
        host=args.host,
        port=args.port,
        name=args.name,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        error_status=args.error_status,
        status=args.status,
        rpm=args.rpm,
        retry_after=args.retry_after,
        context_window=args.context_window,
        api_key=key,
        seed=args.seed,
        jitter_ms=args.jitter_ms,
        tpm=args.tpm,
        malformed_rate=args.malformed_rate,
        cut_stream_after=args.cut_stream_after,
        stream_usage=not args.no_stream_usage,
        window_s=args.window,
    )
    print(f"chaos server {args.name!r} on {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
