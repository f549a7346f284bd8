"""``Workbench``: the public surface. It builds every part, wires them, and delegates.

A call goes through :class:`~workbench.pipeline.Pipeline` (compose, serve, observe, settle,
record); the factor folders hold everything else. See docs/architecture.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Unpack

from workbench.approvals import Approvals
from workbench.audit import AuditLog, replay_against, rerun_session
from workbench.config import Deployment, Route, Settings, load_settings
from workbench.context import (
    Composer,
    ContextArg,
    ContextPlan,
    Docs,
)
from workbench.cost import Budgets, Costs, Pricing
from workbench.errors import WorkbenchError
from workbench.evals.feedback import Feedback
from workbench.files import write_output
from workbench.guardrails import Guard, check_name
from workbench.integrations import MCP, Tools
from workbench.limits.cache import ResponseCache
from workbench.limits.ratelimit import RateLimiter
from workbench.memory import Memory, Session, Sessions
from workbench.observability import Alerts, CallLog, deployment_health
from workbench.observability.metrics import Metrics
from workbench.options import AskKwargs, AskOptions
from workbench.pipeline import Pipeline, counting_model
from workbench.result import Result
from workbench.serving import ReplayServing, Request, Router, tokens
from workbench.serving.breaker import Breakers
from workbench.serving.router import check_route
from workbench.store import Store

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evals import Evals
    from workbench.observability.otel import OTel
    from workbench.observability.traces import TraceView
    from workbench.orchestration import Agent, AgentRun, Workflow
    from workbench.serving.embed import Embeddings
    from workbench.store.retention import Compaction
    from workbench.team import TeamState


# Refusals and failures a call is recorded with (anything else is a bug and propagates).


class Workbench:
    """The runtime: ``wb.ask(...)`` and the views on what it recorded."""

    def __init__(self, settings: Settings | None = None):
        self._settings = settings or load_settings()
        self.store = Store(self.settings.store)
        self._router = Router(self.settings)
        self.team = _team(self.settings)
        if self.team is None:
            self._router.limiter = RateLimiter(self.store)
        else:  # budgets, rate limits, the kill switch and breakers shared with the team through Redis
            from workbench.team.limits import SharedBreakers, SharedRateLimiter

            self._router.limiter = SharedRateLimiter(self.store, self.team)
            self._router.breakers = SharedBreakers(
                self.team, self.settings.breaker.failures, self.settings.breaker.cooldown_s
            )
        self._replayer = ReplayServing(self.store)
        self._composer = Composer()
        self._pricing = Pricing(self.settings)
        self._sessions = Sessions(self.store, replay=self.mode == "replay")
        self.calls = CallLog(self.store)
        self.metrics = Metrics(self.store)
        self._evals: Evals | None = None
        self.feedback = Feedback(self.store)
        self.audit = AuditLog(self.store)
        self.costs = Costs(self.store)
        self.budgets = Budgets(self.store, self.settings, self.team)
        self.cache = ResponseCache(self.store)
        if self.team is None:
            self.alerts = Alerts(self.store, self.settings)
        else:  # metrics over the team's calls, one firing state for the team
            from workbench.team.alerts import SharedAlerts

            self.alerts = SharedAlerts(self.store, self.settings, self.team)
        self.guard = Guard(self.store, self.settings.guardrails, self.settings.root)
        self.tools = Tools()
        self.approvals = Approvals(self.store, self.settings.approvals)
        self.approvals.human = self.guard.human  # one human-decision callback: decider == approver
        self.approvals.checker = self._check_edited
        self.approvals.notify = lambda ref, text: self.alerts.notice("approval_escalated", text, ref)
        self.store.on_broken_chain = lambda text: self.alerts.notice("audit_chain", text)
        self.mcp = MCP(self.store, self.settings.mcp, self.settings.root, self.tools)
        self.docs = Docs(self.store, hybrid=self.settings.retrieval == "hybrid")
        self.memory = Memory(self.store, self.settings.memory, hybrid=self.settings.retrieval == "hybrid")
        self.docs.screen = self.memory.screen = self._sessions.screen = self._screen  # no secret is stored
        self._pipeline = Pipeline(
            settings=self.settings,
            store=self.store,
            router=self._router,
            replayer=self._replayer,
            composer=self._composer,
            pricing=self._pricing,
            sessions=self._sessions,
            budgets=self.budgets,
            alerts=self.alerts,
            guard=self.guard,
            cache=self.cache,
            tools=self.tools,
            mcp=self.mcp,
            docs=self.docs,
            memory=self.memory,
        )
        self._otel: OTel | None = None
        if self.settings.otel.endpoint:
            self.store.on_spans = self.otel.submit
        self._audit_config()

    def _audit_config(self) -> None:
        """Chain a ``config`` entry when these settings differ from the last ones the store saw.

        The entry holds each setting's name and a keyed digest of its value, never the value: a
        deployment's ``params`` or an MCP server's ``env`` may hold a token.
        """
        import hashlib
        import hmac
        import json

        from workbench.store.chain import audit_key

        dump = self.settings.model_dump(mode="json", exclude={"root": True})
        text = json.dumps(dump, sort_keys=True, default=str)
        version = hashlib.sha256(text.encode()).hexdigest()[:16]
        with self.store.transaction() as conn:
            last = conn.execute(
                "SELECT json_extract(payload, '$.version') FROM audit WHERE kind = 'config' ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if last is None or last[0] != version:
                secret = audit_key().secret
                digests = {
                    name: hmac.new(
                        secret, json.dumps(value, sort_keys=True, default=str).encode(), hashlib.sha256
                    ).hexdigest()[:16]
                    for name, value in _leaves(dump)
                }
                self.store.audit(conn, "config", str(self.settings.root), {"version": version, "settings": digests})

    def _screen(self, text: str, where: str) -> str:
        """A text about to be stored (a document chunk, a memory, session state) under the secrets policy."""
        return self.guard.screen_secrets(text, where)

    def _check_edited(self, row: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
        """A human's edited tool arguments, checked like the model's: the tool's schema, then the guardrails."""
        from workbench.guardrails import ToolDenied

        if row["tool"] in self.tools:
            arguments = self.tools.get(row["tool"]).check(arguments)
        problems = self.guard.preview_tool_call(
            row["tool"], arguments, risk=row["risk"], session=row["session"], agent=row["agent"]
        )
        if problems:
            raise ToolDenied(f"tool {row['tool']} would not run with them ({'; '.join(problems)})")
        return arguments

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Workbench:
        """Build from workbench.toml / [tool.workbench] / WORKBENCH_* (``overrides`` win)."""
        return cls(load_settings(path, **overrides))

    @property
    def settings(self) -> Settings:
        """The effective settings (replacing them reaches the pipeline too)."""
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value
        self._pipeline.settings = value

    @property
    def mode(self) -> str:
        """``live`` (call providers, record) or ``replay`` (answer from recordings)."""
        return self.settings.mode

    def __repr__(self) -> str:
        return f"Workbench(mode={self.mode!r}, store={str(self.store.path)!r})"

    # ---- the pipeline -------------------------------------------------------------

    def ask(self, prompt: str, options: AskOptions | None = None, **kwargs: Unpack[AskKwargs]) -> Result:
        """Send ``prompt`` to a model or route and return the recorded :class:`Result`.

        The keywords are the fields of :class:`~workbench.options.AskOptions` (or pass one
        ``AskOptions`` positionally; keywords override its fields): ``session`` continues a
        named conversation; ``context`` (text, ``{id: text}`` or a list) is given to the model
        as citable sources; ``stream`` calls ``on_token(delta)`` as text arrives;
        ``user``/``task``/``agent`` attribute the cost; ``cache=False`` bypasses the response
        cache (``None``: as configured); ``budget`` (USD) refuses the call unless its worst case
        fits; ``priority`` (higher first) is its place in a rate-limited deployment's queue and
        ``max_wait`` (seconds) the longest it waits there before failing over. ``spec`` names a
        context spec (``contexts/NAME.yaml``) that builds the context within its token budget
        (the plan is ``result.context``); ``memory`` (a scope such as ``user:alice``) gives the
        call what that scope remembers, and ``remember=True`` writes the prompt to it. ``sink``
        (``html``, ``shell``, ``sql``) says where the answer is going, so the output guardrail
        checks it for what would run there; ``schema`` (a JSON schema dict or a pydantic model)
        asks for JSON matching it, re-asks once if the answer doesn't, and puts the parsed value
        in ``result.data``.
        """
        return self._pipeline.ask(prompt, options, **kwargs)

    async def aask(self, prompt: str, options: AskOptions | None = None, **kwargs: Unpack[AskKwargs]) -> Result:
        """Async twin of :meth:`ask` (uses ``litellm.acompletion``); the same options."""
        return await self._pipeline.aask(prompt, options, **kwargs)

    @property
    def tool(self) -> Tools:
        """``@wb.tool`` / ``@wb.tool(risk="destructive")``: register a typed function as a tool."""
        return self.tools

    def agent(self, name: str, **options: Any) -> Agent:
        """An agent: ``model=``, ``tools=`` (names or globs), ``max_steps=``, ``budget=`` (USD), ``system=``."""
        from workbench.orchestration import Agent

        self._connect_for(options.get("tools"))
        return Agent(self, name, **options)

    def _connect_for(self, names: list[str] | str | None) -> None:
        """Start the MCP servers whose tools are named (``server.tool`` or ``server.*``) and not loaded yet."""
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if not isinstance(names, list | tuple):
            return  # (none named; anything else is refused by the agent, with what it takes)
        for server in {n.split(".", 1)[0] for n in names if isinstance(n, str) and "." in n}:
            if server in self.settings.mcp.servers and not any(
                t.source == f"mcp:{server}" for t in self.tools.select(None)
            ):
                self.mcp.connect(server)

    def workflow(self, name: str, concurrency: int = 4) -> Workflow:
        """A workflow of Python, LLM and tool steps, checkpointed in the store (see orchestration/workflow.py)."""
        from workbench.orchestration import Workflow

        return Workflow(self, name, concurrency)

    def resume(self, run_id: str) -> AgentRun:
        """Continue a parked agent run (after its approval was decided), from its saved state."""
        from workbench.orchestration import Agent

        return Agent.of_run(self, run_id).resume(run_id)

    def step(
        self,
        messages: list[dict[str, Any]],
        options: AskOptions | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        check_input: str | None = None,
        trace: tuple[str, str] | None = None,
        **kwargs: Unpack[AskKwargs],
    ) -> Result:
        """One model turn on ``messages`` as given (an agent's step): no composing, no session history.

        Of the :class:`~workbench.options.AskOptions` (an object and/or keywords) a step uses
        ``model``, ``session``, ``user``, ``task``, ``agent``, ``budget``, ``max_tokens`` and
        ``temperature``; any other is an error. ``tools`` are OpenAI-style function schemas;
        ``result.tool_calls`` holds what the model wants to run. ``check_input`` is scanned by the
        input guardrails first (the task, on an agent's first step). ``trace`` (trace id, parent
        span id) puts the call's spans under a longer run's. The call is recorded, priced and
        guarded like any other.
        """
        return self._pipeline.step(messages, options, tools=tools, check_input=check_input, trace=trace, **kwargs)

    def plan_context(
        self,
        spec: str | None,
        prompt: str,
        *,
        model: str | None = None,
        user: str | None = None,
        task: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        memory: str | None = None,
        system: str | None = None,
        context: ContextArg = None,
    ) -> ContextPlan:
        """What a call would be given, without calling a model (summaries are listed, not made)."""
        return self._pipeline.plan_context(
            spec,
            prompt,
            model=model,
            user=user,
            task=task,
            agent=agent,
            session=session,
            memory=memory,
            system=system,
            context=context,
        )

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        model: str | None = None,
        user: str | None = None,
        task: str | None = None,
        session: str | None = None,
    ) -> Embeddings:
        """Vectors for ``texts`` (one text or a list), through a route like :meth:`ask`: failover, cost, recording.

        ``model`` is a route or a litellm embedding model (``openai/text-embedding-3-small``); the
        default is ``embedding_model`` in config, ``local/minilm`` (offline, the embeddings extra).
        Each text passes the secrets policy first. The vectors (``result.vectors``, float32) are
        stored once in the store, so replay mode answers from the recording.
        """
        return self._pipeline.embed(texts, model=model, user=user, task=task, session=session)

    def rerun(
        self,
        request: Request,
        prompt: str,
        replay_of: str,
        request_json: str | None = None,
        recorded: dict[str, Any] | None = None,
    ) -> Result:
        """Send a recorded request again, exactly as recorded (no composing, no session).

        ``request_json`` is its stored form when the caller has it (it is what the fingerprint hashes);
        ``recorded`` the call ``replay_of`` as ``store.recorded_call`` returned it (read and checked against its
        audit entry): in replay mode, when it is what answers the request, it is served without a second check.
        """
        return self._pipeline.rerun(request, prompt, replay_of, request_json, recorded)

    # ---- sessions, routes, views --------------------------------------------------

    def kill(self, reason: str = "kill switch") -> None:
        """Refuse every new call (every process on this store) until ``wb.budgets.lift()``."""
        self.budgets.kill(reason)

    def session(self, name: str) -> Session:
        """The named session: ``.history``, ``.state``, ``.reset()``."""
        return Session(self._sessions, name)

    def add_route(
        self,
        name: str,
        deployments: Sequence[dict[str, Any] | Deployment | str],
        retries: int = 1,
        max_retry_after: float = 10.0,
        deadline_s: float = 30.0,
        cache: bool | None = None,
        policy: str = "ordered",
    ) -> None:
        """Define (or replace) a route for this Workbench: ordered deployments tried in turn.

        Takes the same settings as a ``[routes.NAME]`` table in workbench.toml.
        """
        from pydantic import ValidationError

        check_name("route", name)  # (before an error below shows it)
        items = [{"model": d} if isinstance(d, str) else d for d in deployments]
        try:
            route = Route.model_validate(
                {
                    "deployments": items,
                    "retries": retries,
                    "max_retry_after": max_retry_after,
                    "deadline_s": deadline_s,
                    "cache": cache,
                    "policy": policy,
                }
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise WorkbenchError(f"add_route({name!r}): {where}: {first['msg']}") from None
        check_route(name, route)
        self._router.extra_routes[name] = route

    def resolve(self, model: str | None = None, *, check: bool = True) -> tuple[str, Route]:
        """The route a model or route name stands for (``None``: the default route), as ``(name, route)``.

        ``check=True`` fails with ``UnknownModel`` now for a name that is neither a route nor a model
        litellm knows, before anything is sent.
        """
        return self._router.resolve(model, check=check)

    def count_tokens(self, text: str, model: str | None = None) -> int:
        """``text``'s token count for ``model`` (a route: its first deployment's model; ``None``: the default)."""
        if not isinstance(text, str):
            raise WorkbenchError(f"count_tokens() counts a text, not {type(text).__name__}")
        name, route = self.resolve(model, check=False)
        counted = counting_model(name, route)
        return tokens.count_text(counted, text)  # not cached: texts here are one-offs

    @property
    def routes(self) -> dict[str, Route]:
        """Every route: the configured ones and those added with :meth:`add_route`."""
        return {**self.settings.routes, **self._router.extra_routes}

    @property
    def breakers(self) -> Breakers:
        """The circuit breakers, one per endpoint (``.threshold`` failures open one for ``.cooldown_s``)."""
        return self._router.breakers

    def models(self) -> pd.DataFrame:
        """Routes, their deployments and each deployment's recent health.

        Models called directly by name (``-m local/echo``) are listed under the route
        ``(direct)`` once they have been used.
        """
        import pandas as pd

        health = deployment_health(self.store)
        queues = self._router.limiter.queues() if self._router.limiter is not None else {}
        idle = {"waiting": 0, "in_flight": 0}
        rows = []
        routes = {**self.settings.routes, **self._router.extra_routes}
        endpoints = {d.endpoint for route in routes.values() for d in route.deployments}
        direct = [
            Deployment(model=endpoint)
            for endpoint in health
            if endpoint not in endpoints
            and "/" in endpoint
            and " " not in endpoint
            and not endpoint.startswith("replay:")
        ]
        for name, deployments in [*((n, r.deployments) for n, r in routes.items()), ("(direct)", direct)]:
            for i, d in enumerate(deployments, 1):
                key = "-"
                if d.api_key_env:
                    key = f"{d.api_key_env} ({'set' if os.environ.get(d.api_key_env) else 'missing'})"
                rows.append(
                    {
                        "route": name,
                        "order": i,
                        "deployment": d.label,
                        "model": d.model,
                        "endpoint": d.endpoint,
                        "key": key,
                        "default": self.settings.default_route in (name, d.label),
                        "breaker": self._router.breakers.state(d.endpoint),
                        "limits": _limits(d),
                        **queues.get(d.endpoint, idle),
                        **health.get(d.endpoint, {}),
                    }
                )
        columns = [
            "route",
            "order",
            "deployment",
            "model",
            "endpoint",
            "key",
            "default",
            "breaker",
            "limits",
            "waiting",
            "in_flight",
            "attempts",
            "errors",
            "error_rate",
            "p50_ms",
            "last_error",
        ]
        return pd.DataFrame(rows, columns=columns)

    @property
    def evals(self) -> Evals:
        """Eval suites: ``wb.evals.run(suite, models=[...], contexts=[...], repeats=n)``, ``compare``, ``runs``."""
        if self._evals is None:
            from workbench.evals import Evals

            self._evals = Evals(self)
        return self._evals

    @property
    def otel(self) -> OTel:
        """OpenTelemetry export: ``wb.otel.export(since=, ref=, endpoint=)``; streams live with ``[otel] endpoint``."""
        if self._otel is None:
            from workbench.observability.otel import OTel

            config = self.settings.otel
            raw = os.environ.get(config.headers_env, "") if config.headers_env else ""
            headers = dict(p.split("=", 1) for p in raw.split(",") if "=" in p) or None
            self._otel = OTel(self.store, config.endpoint, headers, config.capture_content, config.service_name)
        return self._otel

    def trace(self, ref: str = "last") -> TraceView:
        """The spans of a call, an agent or workflow run, or a trace: ``.df`` and ``.figure()`` (a waterfall)."""
        from workbench.observability.traces import TraceView

        return TraceView(self.store, ref)

    def dashboard(self, since: str | None = None, freq: str | None = None) -> Any:
        """A plotly grid of the system's health: calls, errors, latency, spend, cache, guardrails, approvals."""
        from workbench.observability.dashboard import dashboard

        return dashboard(self.store, since, freq)

    def report(self, session: str, path: str | os.PathLike[str] | None = None, *, overwrite: bool = False) -> str:
        """A standalone HTML report of ``session`` (calls, cost, latency, tool calls, guard events, approvals).

        Returns the HTML; with ``path``, writes it there and returns the path. A file there that is not an earlier
        report is replaced only with ``overwrite``.
        """
        from workbench.observability.report import SIGNATURE, session_report

        text = session_report(self.store, session)
        if path is None:
            return text
        what = f"the report of session {session!r}"
        return write_output(path, text, what, signatures=(SIGNATURE,), overwrite=overwrite)

    def compact(self, older_than: str | None = None, *, dry_run: bool = False) -> Compaction:
        """Remove call bodies and spans older than ``older_than`` (default ``[retention] older_than``)."""
        from workbench.store.retention import compact

        return compact(self.store, older_than or self.settings.retention.older_than, dry_run=dry_run)

    def replay(self, session: str, against: str | None = None, suite: Any = None) -> pd.DataFrame:
        """Re-run a recorded session: identical/different per call, or ``against`` another model side by side.

        ``against`` re-executes the recorded requests on that model or route and reports both
        answers, a similarity and diff, cost and latency deltas, and ``suite``'s scores of both.
        """
        if against is not None:
            return replay_against(self, session, against, suite)
        if suite is not None:
            raise WorkbenchError("suite= scores a replay against another model: give against= as well")
        return rerun_session(self, session)

    def close(self) -> None:
        """Stop MCP servers, send what OTel still holds, close the store."""
        self.mcp.close()
        if self._otel is not None and self._otel._thread is not None:
            self._otel.flush()
        if self.team is not None:
            self.team.close()
        self.store.close()


def _team(settings: Settings) -> TeamState | None:
    """The team's shared state when ``[team] redis_url`` is set (nothing is imported otherwise)."""
    if not settings.team.redis_url:
        return None
    from workbench.team import TeamState

    return TeamState(settings.team)


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """``(dotted.name, value)`` for every leaf of a settings dump (lists of tables are indexed)."""
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, value)]


def _limits(d: Deployment) -> str:
    """A deployment's rate limits as one short cell, e.g. ``600 rpm · 3 parallel``."""
    parts = [f"{v} {k}" for k, v in (("rpm", d.rpm), ("tpm", d.tpm), ("parallel", d.max_parallel)) if v]
    return " · ".join(parts) or "-"
