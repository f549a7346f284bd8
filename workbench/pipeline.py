"""The one-call pipeline: compose the context, serve it, observe it, settle its cost, record it.

``Pipeline.ask()`` reads as the pipeline (see docs/architecture.md): compose the context, serve
it (live over litellm with failover, or from the recording in replay mode), observe it into the
session, settle its cost, and record call, attempts, spans and an audit entry in one
transaction. Each stage opens a span. It is given what it uses — the store, the router, the
guard, budgets, sessions, memory, documents, tools — and nothing else; ``Workbench`` builds it
and delegates to it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from workbench.config import Deployment, Route, Settings
from workbench.context import (
    Block,
    Composer,
    ContextArg,
    ContextPlan,
    ContextSpec,
    Docs,
    Item,
    SourceSpec,
    fit,
    load_spec,
)
from workbench.context.compose import context_items
from workbench.context.grounding import grounding
from workbench.context.template import Filled, fill_values
from workbench.cost import Attribution, Budgets, Pricing
from workbench.cost.budgets import LOCAL, TEAM
from workbench.errors import (
    BudgetExceeded,
    KillSwitchActive,
    ProviderError,
    ReplayMiss,
    TeamStateDown,
    WorkbenchError,
    shown,
)
from workbench.guardrails import (
    SINKS,
    Finding,
    Guard,
    ScanResult,
    SchemaViolation,
    Screened,
    SecretSafeStream,
    check_name,
    conform,
    reask_prompt,
    schema_instruction,
    scrub,
)
from workbench.integrations import MCP, Tools
from workbench.limits.cache import ResponseCache
from workbench.memory import Memory, Sessions, check_scope, visible_scopes
from workbench.memory.extract import Kind as MemoryKind
from workbench.memory.extract import extract as extract_memories
from workbench.observability import Alerts, Trace, new_id
from workbench.options import AskKwargs, AskOptions
from workbench.result import Format, Result
from workbench.serving import (
    Completion,
    ReplayServing,
    Request,
    Router,
    TokenSink,
    litellm_module,
    prepare,
    tokens,
)
from workbench.serving.embed import MIME as EMBEDDING_MIME
from workbench.serving.embed import Embeddings
from workbench.serving.embed import embed as embed_route
from workbench.serving.images import (
    BLOB_SCHEME,
    Image,
    ImageError,
    as_image,
    check_sizes,
    from_data_url,
    is_image,
    part_url,
    refs,
    with_parts,
)
from workbench.serving.router import PARTIAL
from workbench.store import Store, utcnow
from workbench.store.records import CallRow, CallStatus

if TYPE_CHECKING:
    pass


@dataclass(slots=True)
class _Call:
    """The state of one call as it moves down the pipeline."""

    id: str
    trace: Trace
    started_at: str
    t0: float
    route_name: str
    route: Route
    request: Request
    request_json: str
    fingerprint: str
    prompt: str
    session: str | None
    user: str | None
    task: str | None
    agent: str | None = None
    use_cache: bool = False
    budgeted: int = 0  # budgets exist (cost.budgets LOCAL | TEAM): reserve before sending, notify after
    reserved: bool = False
    reserved_usd: float = 0.0  # the worst case held against budgets
    reserved_tokens: int = 0
    budget: float | None = None  # this call's own cap in USD
    replay_of: str | None = None
    plan: ContextPlan | None = None  # the context plan, when a spec, memory or a history budget built it
    memory: str | None = None  # the long-term memory scope the call reads (and writes if remember)
    remember: bool = False
    grounding: float | None = None
    system: str | None = None  # the system message as sent (with its canary)
    sink: str | None = None  # where the answer is going: html | shell | sql
    observe: bool = True  # add the exchange to the session's history (an agent's steps don't)
    meaning: tuple[str, Any] | None = None  # the semantic cache's (context key, prompt vector), when it is on
    recorded: dict[str, Any] | None = None  # a re-run's recorded call, as its caller read and checked it

    @property
    def who(self) -> Attribution:
        return Attribution(self.user, self.task, self.agent, self.session)


CODE_INSTRUCTION = (
    "Answer with code only: one fenced ```python block that can be run as a notebook cell, "
    "with any explanation as comments inside it."
)

_NAME_ARGS = frozenset({"session", "user", "task", "agent", "spec", "memory"})  # stored as written: no secret in them
_RECORDED_FAILURES = (ProviderError, ReplayMiss, BudgetExceeded, KillSwitchActive, TeamStateDown)


class Pipeline:
    """What one call goes through, from prompt to recorded :class:`Result`."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        router: Router,
        replayer: ReplayServing,
        composer: Composer,
        pricing: Pricing,
        sessions: Sessions,
        budgets: Budgets,
        alerts: Alerts,
        guard: Guard,
        cache: ResponseCache,
        tools: Tools,
        mcp: MCP,
        docs: Docs,
        memory: Memory,
    ):
        self.settings, self.store, self._router, self._replayer = settings, store, router, replayer
        self._composer, self._pricing, self._sessions, self.budgets = composer, pricing, sessions, budgets
        self.alerts, self.guard, self.cache, self.tools, self.mcp = alerts, guard, cache, tools, mcp
        self.docs, self.memory = docs, memory
        self._versions_seen: set[tuple[str, str]] = set()

    @property
    def mode(self) -> str:
        """``live`` or ``replay``."""
        return self.settings.mode

    def ask(self, prompt: str, options: AskOptions | None = None, **kwargs: Unpack[AskKwargs]) -> Result:
        """The call behind :meth:`Workbench.ask <workbench.runtime.Workbench.ask>`."""
        prompt, opts = _with_images(prompt, self._options(options, dict(kwargs)))
        call = self._begin(prompt, opts)
        result = self._run(call, opts.on_token, opts.format)
        if opts.schema is None:
            return result
        conforming, error = self._first_answer(result, opts.schema)
        if conforming is not None:
            return conforming
        again = self.ask(reask_prompt(prompt, result.text, error or "", opts.schema), opts.for_reask())
        return self._conformed(again, opts.schema, result)

    async def aask(self, prompt: str, options: AskOptions | None = None, **kwargs: Unpack[AskKwargs]) -> Result:
        """Async twin of :meth:`ask` (uses ``litellm.acompletion``); the same options."""
        prompt, opts = _with_images(prompt, self._options(options, dict(kwargs)))
        call = self._begin(prompt, opts)
        result = await self._arun(call, opts.on_token, opts.format)
        if opts.schema is None:
            return result
        conforming, error = self._first_answer(result, opts.schema)
        if conforming is not None:
            return conforming
        again = await self.aask(reask_prompt(prompt, result.text, error or "", opts.schema), opts.for_reask())
        return self._conformed(again, opts.schema, result)

    def _options(self, options: AskOptions | None, kwargs: dict[str, Any]) -> AskOptions:
        """One ``AskOptions`` from the object and keywords, with the schema's instruction in the system message."""
        opts = AskOptions.of(options, kwargs)
        if opts.format == "code":  # asked for, so the answer can go into a cell as it is
            opts = replace(opts, system="\n\n".join(p for p in (opts.system, CODE_INSTRUCTION) if p))
        if opts.schema is None:
            return opts
        return replace(opts, system=self._schema_system(opts.system, opts.schema))

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
        """The turn behind :meth:`Workbench.step <workbench.runtime.Workbench.step>` (documented there)."""
        opts = AskOptions.of(options, dict(kwargs)).for_step()
        model, session, user, task, agent = opts.model, opts.session, opts.user, opts.task, opts.agent
        budget, max_tokens, temperature = opts.budget, opts.max_tokens, opts.temperature
        if not messages:
            raise WorkbenchError("a step needs at least one message")
        roles = ("system", "user", "assistant", "tool")
        if isinstance(messages, str | bytes | Mapping) or not all(
            isinstance(m, Mapping) and m.get("role") in roles for m in messages
        ):
            raise WorkbenchError(
                "a step takes a list of messages, each a dict with a role (system, user, assistant or tool) and "
                "its content: [{'role': 'user', 'content': 'hi'}]"
            )
        self._check_args(
            None,
            session=session,
            user=user,
            task=task,
            agent=agent,
            check_input=check_input,
            **{
                f"message {n}": m.get("content") for n, m in enumerate(messages, 1) if isinstance(m.get("content"), str)
            },
        )
        call_id = new_id()
        route_name, route = self._router.resolve(model, check=self.mode == "live")
        if self.mode == "live":
            prepare(route, self.settings)  # a one-off import or load of seconds is not part of any call's latency
        t0 = time.perf_counter()
        spans = Trace(*trace) if trace else Trace()  # under the caller's span (an agent step), or a trace of its own
        spans.begin("llm.call", route=route_name, mode=self.mode, session=session, agent=agent)
        if check_input is not None:
            with spans.span("guardrails.check_input") as attrs:
                self.guard.check("input", check_input, call_id, session, agent=agent, report=attrs)
        else:
            self.guard.ensure_open(session, agent)
        messages = [dict(m) for m in messages]
        blobs: dict[str, Image] = {}
        known = {i.sha256: i for i in map(as_image, opts.images)}  # named by hash, perhaps not stored yet
        for n, m in enumerate(messages, 1):  # everything sent, not only the task: under the secrets policy
            if isinstance(m.get("content"), list):  # content parts: images stored by hash, text screened
                m["content"] = self._parts(m["content"], blobs, f"message {n} ({m.get('role')})", session, agent, known)
            elif isinstance(m.get("content"), str):
                m["content"] = self.guard.screen_secrets(
                    m["content"], f"message {n} ({m.get('role')})", session=session, agent=agent, call_id=call_id
                )
        if blobs:
            check_sizes(list(blobs.values()), self.settings.images.max_mb, self.settings.images.max_call_mb)
            if self.mode == "live":
                self._check_vision(route)
        system_text = None
        if messages[0]["role"] == "system":
            system_text = messages[0]["content"]
            messages[0]["content"] = self.guard.with_canary(system_text)
        tools = self._screen_json(tools, "the tools' schemas", session, agent, call_id)  # descriptions: sent, stored
        params = {"temperature": temperature, "max_tokens": max_tokens, "tools": tools or None}
        request = Request(route_name, messages, {k: v for k, v in params.items() if v is not None}, False)
        request.blobs = blobs
        said = request.text_messages()[0]
        prompt = next((m["content"] for m in reversed(said) if m["role"] == "user"), "") or ""
        call = self._call(spans, t0, route, request, prompt, session, user, task, call_id)
        call.agent, call.system, call.observe = agent, system_text, False
        call.use_cache = route.cache if route.cache is not None else self.settings.cache.enabled
        call.budget = budget
        return self._run(call, None, "text")

    def _screen_secrets(
        self, system: str | None, context: ContextArg, session: str | None, agent: str | None, call_id: str
    ) -> tuple[str | None, ContextArg]:
        """The system prompt and each context item under the input policy's ``secrets`` action."""

        def screen(text: str, where: str) -> str:
            return self.guard.screen_secrets(text, where, session=session, agent=agent, call_id=call_id)

        return _each_sent(system, context, screen)

    def _screen_json(self, value: Any, where: str, session: str | None, agent: str | None, call_id: str) -> Any:
        """A JSON value stored and sent with the request (a ``response_format``, tool schemas) with each of its
        strings, keys included, under the input policy's ``secrets`` action.
        """
        if isinstance(value, str):
            return self.guard.screen_secrets(value, where, session=session, agent=agent, call_id=call_id)
        if isinstance(value, Mapping):
            return {
                self._screen_json(str(k), where, session, agent, call_id): self._screen_json(
                    v, where, session, agent, call_id
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._screen_json(v, where, session, agent, call_id) for v in value]
        return value

    @staticmethod
    def _schema_system(system: str | None, schema: Any) -> str | None:
        if schema is None:
            return system
        return "\n\n".join(p for p in (system, schema_instruction(schema)) if p)

    def _first_answer(self, result: Result, schema: Any) -> tuple[Result | None, str | None]:
        """The result with its parsed value; or ``(None, what is wrong)``, recorded as a re-ask."""
        value, error = conform(result.text, schema)
        if error is None:
            return replace(result, data=value), None
        self._reasking(result, error)
        return None, error

    def _reasking(self, result: Result, error: str) -> None:
        """Record that an answer missed its schema and is being asked for once more."""
        self.guard.record(
            [ScanResult("schema", "output", "reask", (Finding(error[:200], 0, len(result.text)),))],
            result.call_id,
            result.session,
        )

    def _conformed(self, again: Result, schema: Any, first: Result) -> Result:
        value, error = conform(again.text, schema)
        if error is not None:
            self.guard.record(
                [ScanResult("schema", "output", "block", (Finding(error[:200], 0, len(again.text)),))],
                again.call_id,
                again.session,
            )
            raise SchemaViolation(
                f"the answer did not match the schema after one re-ask ({error}); both calls are "
                f"recorded ({first.call_id}, {again.call_id}). Loosen the schema or try a "
                "stronger model"
            )
        return replace(again, data=value)

    def _preview(self, on_token: TokenSink | None) -> TokenSink | None:
        """The live preview of a streamed answer, with secrets redacted as the stored answer will be."""
        if on_token is None or self.settings.guardrails.output.get("secrets", "off") in ("off", "flag"):
            return on_token
        return SecretSafeStream(on_token)

    def _run(self, call: _Call, on_token: TokenSink | None, format: Format) -> Result:
        on_token = self._preview(on_token)
        try:
            completion = self._admit(call, on_token)
            if completion is None:
                with call.trace.span("serving.complete") as attrs:
                    if self.mode == "replay":
                        completion = self._replay(call, on_token)
                    else:
                        completion = self._router.complete(call.route_name, call.route, call.request, on_token)
                    self._served(call, completion, attrs)
        except _RECORDED_FAILURES as exc:
            self._record_failure(call, exc)
            raise
        except BaseException as exc:
            self._abandon(call, exc)
            raise
        if isinstance(on_token, SecretSafeStream):
            on_token.flush()
        return self._finish(call, completion, format)

    async def _arun(self, call: _Call, on_token: TokenSink | None, format: Format) -> Result:
        on_token = self._preview(on_token)
        try:
            completion = self._admit(call, on_token)
            if completion is None:
                with call.trace.span("serving.complete") as attrs:
                    if self.mode == "replay":
                        completion = self._replay(call, on_token)
                    else:
                        completion = await self._router.acomplete(call.route_name, call.route, call.request, on_token)
                    self._served(call, completion, attrs)
        except _RECORDED_FAILURES as exc:
            self._record_failure(call, exc)
            raise
        except BaseException as exc:
            self._abandon(call, exc)
            raise
        if isinstance(on_token, SecretSafeStream):
            on_token.flush()
        return self._finish(call, completion, format)

    def _admit(self, call: _Call, on_token: TokenSink | None) -> Completion | None:
        """Kill switch, then the response cache (a hit is returned), then the budget reservation."""
        call.budgeted = self.budgets.gate()
        if self.mode != "live":
            return None
        if call.use_cache:
            with call.trace.span("limits.cache") as attrs:
                hit = self.cache.lookup(call.fingerprint, self.settings.cache.ttl_s, call.route_name)
                attrs["hit"] = hit is not None
            if hit is None and self.settings.cache.semantic is not None:
                hit = self._similar(call)
            if hit is not None:
                if on_token and hit.text:
                    on_token(hit.text)
                return hit
        if call.budgeted or call.budget is not None:
            with call.trace.span("cost.reserve") as attrs:
                usd, tokens = self.budgets.estimate(call.route, call.request)
                attrs.update(usd=usd, tokens=tokens)
                if call.budget is not None and usd > call.budget:
                    raise BudgetExceeded(
                        f"this call may cost up to ${usd:.6f}, over its budget of ${call.budget:.6f}; nothing was "
                        "sent. Lower --max-tokens, pick a cheaper model, or raise --budget"
                    )
                if call.budgeted:
                    self.budgets.reserve(call.id, call.who, usd, tokens, call.budgeted)
                    call.reserved, call.reserved_usd, call.reserved_tokens = True, usd, tokens
                if call.request.answer_cap is None:  # a stream is not read past what was reserved for the answer
                    call.request.answer_cap = self.budgets.answer_tokens(call.route, call.request)
        return None

    def _similar(self, call: _Call) -> Completion | None:
        """The semantic cache: a recorded answer to a request that differs only in meaning-alike last words."""
        from workbench.context.embeddings import embedder
        from workbench.serving.types import canonical_json

        messages, _ = call.request.text_messages()
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        if last is None:
            return None
        rest = {"route": call.route_name, "params": call.request.params, "messages": messages[:last]}
        context = hashlib.sha256(canonical_json(rest).encode()).hexdigest()
        with call.trace.span("limits.semantic_cache") as attrs:
            vector = embedder().embed([str(messages[last].get("content") or "")])[0]
            call.meaning = (context, vector)
            found = self.cache.similar(
                call.route_name, context, vector, self.settings.cache.semantic or 1.0, self.settings.cache.ttl_s
            )
            attrs["hit"] = found is not None
            if found is None:
                return None
            hit, similarity = found
            attrs["similarity"] = round(similarity, 4)
        hit.routing = f"semantic cache: {similarity:.3f} similar to call {hit.cached_from}"
        return hit

    def _abandon(self, call: _Call, exc: BaseException) -> None:
        """A call stopped by its caller: recorded as ``interrupted`` with what streamed and what that cost (it
        was billed; budgets count it), or, if nothing streamed, its reservation given back.
        """
        partial = getattr(exc, PARTIAL, None)
        if partial is not None:
            try:
                self._record_interrupted(call, partial, exc)
                return
            except Exception:  # noqa: BLE001 - the caller's exception is what propagates; never mask it
                pass
        if call.reserved:
            self.budgets.release(call.id)

    def _record_interrupted(self, call: _Call, partial: Completion, exc: BaseException) -> None:
        text = self.guard.redact_secrets(partial.text, "output", "the interrupted answer", call_id=call.id)
        cost = self._pricing.settle(self._deployment(call.route, partial.deployment), partial)
        usage = partial.usage
        row = self._row(
            call,
            model=partial.model,
            deployment=partial.deployment,
            status="interrupted",
            error=f"stopped by the caller while the answer streamed ({type(exc).__name__}); what streamed is kept",
            text=text,
            finish_reason="interrupted",
            cost_usd=cost,
            latency_ms=round((time.perf_counter() - call.t0) * 1000, 3),
            ttft_ms=partial.ttft_ms,
            routing=partial.routing,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
        )
        call.trace.end(exc)
        self.store.record_call(
            row,
            [a.row(call.id) for a in partial.attempts],
            call.trace.for_store(call.id),
            settle_reservation=call.reserved,
            blobs=_blobs(call.request),
            team=self._team(call),
        )
        if call.reserved:  # the team's budgets count what it cost
            self.budgets.settle(call.id, cost or 0.0, usage.get("total_tokens") or 0)

    @staticmethod
    def _check_args(prompt: Any, **texts: Any) -> None:
        """One-line errors for arguments that are not text (bytes, numbers, unpaired surrogates), and for
        names that hold a secret (a name is stored as written: see ``check_name``).
        """
        if isinstance(prompt, bytes | bytearray):
            raise WorkbenchError("the prompt is bytes: decode it first (text = data.decode('utf-8'))")
        if prompt is not None and not isinstance(prompt, str):
            raise WorkbenchError(f"the prompt must be text, not {type(prompt).__name__}")
        for name, value in (("prompt", prompt), *texts.items()):
            if value is None:
                continue
            if not isinstance(value, str):
                raise WorkbenchError(f"{name} must be text, not {type(value).__name__}")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise WorkbenchError(
                    f"{name} holds an unpaired surrogate ({value[exc.start]!r} at character "
                    f"{exc.start}), which is not text; it usually comes from bytes decoded with "
                    "errors='surrogateescape': clean it with .encode('utf-8', 'replace')"
                    ".decode()"
                ) from None
            if name in _NAME_ARGS:
                if not value.strip():  # (an empty name files calls under '', listed as a session of its own)
                    raise WorkbenchError(f"{name} is empty: name it, or leave it out")
                check_name(name, value)

    def _begin(self, prompt: str, opts: AskOptions) -> _Call:
        model, session, system, context = opts.model, opts.session, opts.system, opts.context
        user, task, agent, spec, memory, remember = (
            opts.user,
            opts.task,
            opts.agent,
            opts.spec,
            opts.memory,
            opts.remember,
        )
        self._check_args(
            prompt, system=system, session=session, user=user, task=task, agent=agent, spec=spec, memory=memory
        )
        prompt, rendered = self._filled(prompt or "", opts)
        images = [as_image(i) for i in (*opts.images, *rendered.images)]
        check_sizes(images, self.settings.images.max_mb, self.settings.images.max_call_mb)
        prompt += "".join(f"\n{i.marker}" for i in images if i.marker not in prompt)  # each shown where it stands
        if not prompt.strip():
            raise WorkbenchError("the prompt is empty: write the question in the cell or pass prompt=")
        if memory is not None:
            check_scope(memory)
        elif remember:
            raise WorkbenchError(
                "remember=True needs a memory scope to write to: memory='user:alice' "
                "(%%llm --memory user:alice --remember)"
            )
        call_id = new_id()
        route_name, route = self._router.resolve(model, check=self.mode == "live")
        if self.mode == "live":
            prepare(route, self.settings)  # a one-off import or load of seconds is not part of any call's latency
        t0 = time.perf_counter()
        if images and self.mode == "live":
            self._check_vision(route)
        trace = Trace()
        trace.begin("llm.call", route=route_name, mode=self.mode, session=session)
        with trace.span("guardrails.check_input") as attrs:  # a block raises: nothing is sent

            def length(text: str, where: str) -> str:  # each on its length first, as the prompt is
                self.guard.check_length(text, where, session=session, agent=agent, call_id=call_id)
                return text

            _each_sent(system, context, length)
            prompt = self.guard.check("input", prompt, call_id, session, agent=agent, report=attrs)
            system, context = self._screen_secrets(system, context, session, agent, call_id)
            response_format = self._screen_json(opts.response_format, "the response format", session, agent, call_id)
        plan = None
        with trace.span("context.compose") as attrs:
            history = self._sessions.history(session) if session else ()
            if spec is None and memory is None and not (session and self.settings.memory.history_tokens):
                messages = self._composer.compose(prompt, system, context, history)
            else:
                plan = self._plan(
                    prompt,
                    system,
                    context,
                    history,
                    route_name,
                    route,
                    spec,
                    memory,
                    Attribution(user, task, agent, session),
                    call_id=call_id,
                    trace=trace,
                )
                messages = plan.messages
                attrs.update(spec=plan.spec, version=plan.version, tokens=plan.used, budget=plan.budget)
            attrs.update(messages=len(messages), history_messages=len(history))
        if messages and messages[0]["role"] == "system":
            composed = self.guard.screen_secrets(
                messages[0]["content"],
                "the composed context (spec, documents, memory)",
                session=session,
                agent=agent,
                call_id=call_id,
            )
            messages = [{**messages[0], "content": self.guard.with_canary(composed)}, *messages[1:]]
        # What the leakage scanner protects: the instructions, not the retrieved context (answers quote that);
        # the canary is recognised wherever it appears.
        instructions = [b.text for b in plan.blocks if b.source == "system"] if plan else [system or ""]
        system_text = "\n".join(instructions).strip() or None
        params = {
            "temperature": opts.temperature,
            "max_tokens": opts.max_tokens,
            "response_format": response_format,
        }
        if rendered.values:  # each value placed in the prompt, and what was cut of it, goes into the plan
            plan = _with_values(plan, messages, rendered, opts.max_value_tokens or self.settings.max_value_tokens)
        if images:
            messages = _show(messages, images)
        request = Request(route_name, messages, {k: v for k, v in params.items() if v is not None}, opts.stream)
        request.answer_cap = opts.max_tokens
        request.blobs = {i.sha256: i for i in images}
        call = self._call(trace, t0, route, request, prompt, session, user, task, call_id)
        call.agent, call.plan, call.memory, call.remember = agent, plan, memory, remember
        who = {"user": user, "session": session, "task": task, "agent": agent}
        request.who = {k: v for k, v in who.items() if v}  # forwarded to a LiteLLM Proxy gateway
        call.system = system_text
        route_cache = route.cache if route.cache is not None else self.settings.cache.enabled
        call.use_cache = opts.cache if opts.cache is not None else route_cache
        call.budget, call.sink = opts.budget, _sink(opts.sink)
        call.request.priority, call.request.max_wait_s = opts.priority, opts.max_wait  # (checked with the options)
        return call

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
        """What :meth:`Workbench.plan_context <workbench.runtime.Workbench.plan_context>` shows."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise WorkbenchError("give the input to plan for: --input 'When do refunds arrive?'")
        if memory is not None:
            check_scope(memory)
        route_name, route = self._router.resolve(model, check=self.mode == "live")
        history = self._sessions.history(session) if session else ()
        return self._plan(
            prompt,
            system,
            context,
            history,
            route_name,
            route,
            spec,
            memory,
            Attribution(user, task, agent, session),
            summaries=False,
        )

    def _plan(
        self,
        prompt: str,
        system: str | None,
        context: ContextArg,
        history: Sequence[dict[str, Any]],
        route_name: str,
        route: Route,
        spec_name: str | None,
        memory: str | None,
        who: Attribution,
        summaries: bool = True,
        call_id: str | None = None,
        trace: Trace | None = None,
    ) -> ContextPlan:
        """Gather each source's candidates and fit them into the spec's budget (see context/budget.py)."""
        if spec_name:
            spec = load_spec(spec_name, self.settings.contexts)
        else:
            spec = ContextSpec(budget_tokens=10**9)
        sources = list(spec.sources)
        if memory and not any(s.kind == "memory" for s in sources):
            sources.append(SourceSpec(kind="memory", scopes=[], k=self.settings.memory.k, priority=-1))
        if history and not any(s.kind == "history" for s in sources):
            over = "summarise" if self.settings.memory.history_overflow == "summarise" else "drop"
            sources.append(
                SourceSpec(
                    kind="history",
                    turns=10**6,
                    priority=-2,
                    overflow=over,
                    max_tokens=self.settings.memory.history_tokens,
                )
            )
        inline = [Item(ref, text) for ref, text in context_items(context)]
        has_tools = any(s.kind == "tools" for s in sources)
        spec = spec.model_copy(update={"sources": sources})
        candidates: dict[int, list[Item]] = {}
        quarantined: list[tuple[str, Screened]] = []
        for i, source in enumerate(sources):
            if source.kind == "documents":
                with _span(trace, "context.retrieve", collection=source.collection) as a:
                    found = self.docs.search(source.collection or "", prompt, source.k)
                    a["found"] = len(found)
                with _span(trace, "guardrails.check_documents") as attrs:
                    screened = self.guard.screen(
                        "document",
                        [(c.id, c.text) for c in found],
                        call_id,
                        who.session,
                        agent=who.agent,
                        record=summaries,
                        report=attrs,
                    )
                candidates[i] = [Item(s.ref, s.text) for s in screened if s.status != "dropped"]
                quarantined += [
                    (f"documents:{source.collection}", s) for s in screened if s.status in ("fenced", "dropped")
                ]
            elif source.kind == "memory":
                scopes = _scopes(source.scopes, who) + ([memory] if memory else [])
                scopes = list(dict.fromkeys(s for scope in scopes for s in visible_scopes(scope)))
                with _span(trace, "memory.search", scopes=",".join(scopes)) as a:
                    memories = self.memory.search(prompt, scopes, source.k, touch=summaries) if scopes else []
                    a["found"] = len(memories)
                candidates[i] = [Item(m.id, m.text) for m in memories]
            elif source.kind == "history":
                candidates[i] = _turns(history, source.turns)
            else:
                candidates[i] = inline
        model = counting_model(route_name, route)

        def count(text: str) -> int:
            return count_text_tokens(model, text)

        def summarise(texts: list[str], cap: int) -> str:
            words = max(10, int(cap * 0.7))
            ask = "Summarise the following in at most {n} words, keeping names, numbers and decisions:\n\n{t}".format(
                n=words, t="\n\n".join(texts)
            )
            return self.ask(ask, model=route_name, max_tokens=cap, user=who.user, task="summary", agent=who.agent).text

        rendered = spec.render_system(user=who.user, task=who.task, agent=who.agent, session=who.session)
        system_text = "\n\n".join(p for p in (rendered, system or "") if p)
        # In replay mode the summary call is replayed like any other recorded call.
        plan = fit(
            spec,
            system_text,
            prompt,
            candidates,
            count,
            summarise if summaries else None,
            fixed=[] if has_tools else inline,
        )
        return _with_quarantine(plan, quarantined)

    def _call(
        self,
        trace: Trace,
        t0: float,
        route: Route,
        request: Request,
        prompt: str,
        session: str | None,
        user: str | None,
        task: str | None,
        call_id: str | None = None,
        request_json: str | None = None,
    ) -> _Call:
        request_json = request_json or request.to_json()
        return _Call(
            call_id or new_id(),
            trace,
            utcnow(),
            t0,
            request.route,
            route,
            request,
            request_json,
            Request.fingerprint_of(request_json),
            prompt,
            session,
            user,
            task,
        )

    def rerun(
        self,
        request: Request,
        prompt: str,
        replay_of: str,
        request_json: str | None = None,
        recorded: dict[str, Any] | None = None,
    ) -> Result:
        """The re-send behind :meth:`Workbench.rerun <workbench.runtime.Workbench.rerun>`."""
        _, route = self._router.resolve(request.route, check=self.mode == "live")
        request.blobs = self.stored_images(refs(request.messages))
        trace = Trace()
        trace.begin("llm.call", route=request.route, mode=self.mode, replay_of=replay_of)
        call = self._call(
            trace, time.perf_counter(), route, request, prompt, None, None, None, request_json=request_json
        )
        call.replay_of, call.recorded = replay_of, recorded
        return self._run(call, None, "markdown")

    def _replay(self, call: _Call, on_token: TokenSink | None) -> Completion:
        completion = self._replayer.complete(call.request, call.fingerprint, checked=call.recorded)
        call.replay_of = completion.replay_of
        if on_token and completion.text:
            on_token(completion.text)
        return completion

    def _served(self, call: _Call, completion: Completion, attrs: dict[str, Any]) -> None:
        attrs.update(model=completion.model, attempts=len(completion.attempts))
        for a in completion.attempts:
            call.trace.add(
                "serving.attempt",
                a.end_ns - int(a.latency_ms * 1e6),
                a.end_ns,
                "ok" if a.status == "ok" else "error",
                deployment=a.deployment,
                error_class=a.error_class,
            )

    def _deployment(self, route: Route, label: str) -> Deployment | None:
        return next((d for d in route.deployments if d.label == label), None)

    def _finish(self, call: _Call, completion: Completion, format: Format) -> Result:
        with call.trace.span("guardrails.check_output") as attrs:
            text = self.guard.check(
                "output",
                completion.text,
                call.id,
                call.session,
                agent=call.agent,
                system=call.system,
                sink=call.sink,
                conversation=_said(call.request),
                report=attrs,
            )
        if text != completion.text:
            completion = replace(completion, text=text)
        if completion.tool_calls:  # what the model asks a tool to do is stored too: never with a secret in it
            calls = [
                {
                    **tc,
                    "function": {
                        **tc["function"],
                        "arguments": self.guard.redact_secrets(
                            tc["function"].get("arguments") or "",
                            "output",
                            f"tool call {tc['function'].get('name')}",
                            session=call.session,
                            agent=call.agent,
                            call_id=call.id,
                        ),
                    },
                }
                for tc in completion.tool_calls
            ]
            completion = replace(completion, tool_calls=calls)
        result = self._settle(call, completion, format)
        self._record(call, completion, result)
        if call.reserved:  # the team's budgets (Redis) count it now; this store's did in the record's transaction
            self.budgets.settle(call.id, result.cost_usd or 0.0, completion.usage.get("total_tokens") or 0)
        if self.mode == "live":
            if call.budgeted & LOCAL:
                self.budgets.notify(call.who)
            self.alerts.check(call.route_name, call.id)
        return result

    def _settle(self, call: _Call, completion: Completion, format: Format) -> Result:
        if call.session and call.observe:
            with call.trace.span("memory.observe", session=call.session):
                self._sessions.observe(call.session, call.prompt, completion.text)
        extracting = self.settings.memory.extract == "rules" and not call.remember
        scope = call.memory or (f"user:{call.user}" if extracting and call.user else None)
        if scope and self.mode == "live":  # what to remember: --remember, else the configured extraction
            with call.trace.span("memory.write", scope=scope) as attrs:
                writes: list[tuple[MemoryKind, str]] = [("fact", _remembered(call.prompt))] if call.remember else []
                if extracting:
                    writes = extract_memories(call.prompt)
                actions = [self.memory.add(text, scope, kind, source_call=call.id).action for kind, text in writes]
                attrs.update(writes=len(actions), actions=",".join(actions))
        if call.plan is not None:
            cited = [
                b.text
                for b in call.plan.blocks
                if b.status != "dropped" and (b.source.startswith("documents:") or b.source in ("context", "tools"))
            ]
            call.grounding = grounding(completion.text, cited) if cited else None
        with call.trace.span("cost.settle") as attrs:
            cost = self._pricing.settle(self._deployment(call.route, completion.deployment), completion)
            attrs["cost_usd"] = cost
            if call.reserved and (
                (cost or 0.0) > call.reserved_usd + 1e-9
                or completion.usage.get("total_tokens", 0) > call.reserved_tokens
            ):
                attrs["overspend_usd"] = round((cost or 0.0) - call.reserved_usd, 9)
                self._overspent(call, completion, cost or 0.0)
        return Result(
            text=completion.text,
            model=completion.model,
            usage=completion.usage,
            cost_usd=cost,
            latency_ms=(time.perf_counter() - call.t0) * 1000,
            call_id=call.id,
            trace_id=call.trace.trace_id,
            route=call.route_name,
            session=call.session,
            mode=self.mode,
            tool_calls=completion.tool_calls,
            attempts=completion.attempts,
            format=format,
            cache_hit=completion.cached_from is not None,
            context=call.plan,
            grounding=call.grounding,
        )

    def _overspent(self, call: _Call, completion: Completion, cost: float) -> None:
        """A provider answered past what was reserved (it ignored max_tokens): recorded and alerted."""
        tokens = completion.usage.get("total_tokens", 0)
        self.alerts.notice(
            "budget_overspend",
            f"call {call.id} cost ${cost:.6f} ({tokens} tokens), over the "
            f"${call.reserved_usd:.6f} ({call.reserved_tokens} tokens) reserved for it: "
            f"{completion.deployment} answered past the requested max_tokens. Budgets count the real "
            "cost",
            ref=call.id,
        )

    def _row(self, call: _Call, **fields: Unpack[CallRow]) -> CallRow:
        row: CallRow = {
            "id": call.id,
            "trace_id": call.trace.trace_id,
            "session": call.session,
            "started_at": call.started_at,
            "mode": self.mode,
            "replay_of": call.replay_of,
            "route": call.route_name,
            "prompt": call.prompt,
            "request": call.request_json,
            "fingerprint": call.fingerprint,
            "stream": int(call.request.stream),
            "cache_hit": 0,
            "user": call.user,
            "task": call.task,
            "agent": call.agent,
            "context_spec": call.plan.spec if call.plan else None,
            "context_version": call.plan.version if call.plan else None,
            "context_plan": call.plan.to_json() if call.plan else None,
            "grounding": call.grounding,
        }
        row.update(fields)
        return row

    def _record(self, call: _Call, completion: Completion, result: Result) -> None:
        import json

        row = self._row(
            call,
            model=completion.model,
            deployment=completion.deployment,
            status="ok",
            text=completion.text,
            finish_reason=completion.finish_reason,
            tool_calls=json.dumps(completion.tool_calls) if completion.tool_calls else None,
            cost_usd=result.cost_usd,
            latency_ms=round(result.latency_ms, 3),
            ttft_ms=completion.ttft_ms,
            cache_hit=int(completion.cached_from is not None),
            routing=completion.routing,
            cached_from=completion.cached_from,
            saved_usd=completion.recorded_cost_usd if completion.cached_from else None,
            gateway_cost_usd=completion.gateway_cost_usd,
            prompt_tokens=completion.usage.get("prompt_tokens"),
            completion_tokens=completion.usage.get("completion_tokens"),
            total_tokens=completion.usage.get("total_tokens"),
        )
        call.trace.end()
        self.store.record_call(
            row,
            [a.row(call.id) for a in completion.attempts],
            call.trace.for_store(call.id),
            settle_reservation=call.reserved,
            audit_also=self._new_version(call),
            blobs=_blobs(call.request),
            team=self._team(call),
        )
        if call.meaning is not None and completion.cached_from is None:  # answered anew: future alike asks reuse it
            self.cache.remember(call.id, call.route_name, call.meaning[0], call.meaning[1], call.started_at)

    def _parts(
        self,
        parts: list[Any],
        blobs: dict[str, Image],
        where: str,
        session: str | None,
        agent: str | None,
        known: dict[str, Image] | None = None,
    ) -> list[Any]:
        """A message's content parts as stored and sent: each image (a ``data:`` URL, or one already stored)
        named by its hash, each text under the secrets policy.
        """
        out = []
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                text = self.guard.screen_secrets(str(part.get("text", "")), where, session=session, agent=agent)
                out.append({**part, "text": text})
            elif kind == "image_url":
                url = part_url(part)
                if url.startswith(BLOB_SCHEME):
                    sha = url.removeprefix(BLOB_SCHEME)
                    image = (known or {}).get(sha) or self.stored_images([sha])[sha]
                else:
                    image = from_data_url(url, f"the image in {where}")
                blobs[image.sha256] = image
                out.append(image.part())
            else:
                raise WorkbenchError(f"{where}: a content part must be text or image_url, not {kind!r}")
        return out

    def _filled(self, prompt: str, opts: AskOptions) -> tuple[str, Filled]:
        """The prompt with ``values`` placed in it (rendered within ``max_value_tokens``); unchanged without them."""
        if opts.values is None:
            return prompt, Filled(prompt)
        if isinstance(opts.values, Filled):  # filled already (the magic fills a cell before it shows anything)
            return prompt, opts.values
        if not isinstance(opts.values, Mapping):
            raise WorkbenchError(
                f"values must be a mapping of placeholder names to values, not {type(opts.values).__name__}"
            )
        budget = opts.max_value_tokens or self.settings.max_value_tokens
        if budget < 50:
            raise WorkbenchError("max_value_tokens must be at least 50")
        route_name, route = self._router.resolve(opts.model, check=False)
        model = counting_model(route_name, route)
        filled = fill_values(prompt, opts.values, budget, count=lambda text: count_text_tokens(model, text))
        return filled.text, filled

    def embed(
        self,
        texts: str | Sequence[str],
        *,
        model: str | None = None,
        user: str | None = None,
        task: str | None = None,
        session: str | None = None,
    ) -> Embeddings:
        """The embedding behind :meth:`Workbench.embed <workbench.runtime.Workbench.embed>`."""
        import hashlib

        import numpy as np

        if not isinstance(texts, str | Iterable) or isinstance(texts, bytes | bytearray | Mapping):
            raise WorkbenchError(f"embed() takes a text or a list of texts, not {type(texts).__name__}")
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts) or not all(t.strip() for t in texts):
            raise WorkbenchError("embed() takes a text or a list of texts, none of them empty")
        self._check_args(
            None, user=user, task=task, session=session, **{f"text {i}": t for i, t in enumerate(texts, 1)}
        )
        model = model or self.settings.embedding_model
        self.budgets.gate()  # the kill switch refuses embeddings too (they are billed)
        screened = [self.guard.screen_secrets(t, f"text {i} to embed", session=session) for i, t in enumerate(texts, 1)]
        route_name, route = self._router.resolve(model, check=self.mode == "live" and model != "local/minilm")
        t0 = time.perf_counter()
        trace = Trace()
        trace.begin("llm.embed", route=route_name, mode=self.mode, texts=len(texts))
        request = Request(route_name, [{"role": "user", "content": t} for t in screened], {"embedding": True})
        call = self._call(trace, t0, route, request, "\n".join(screened), session, user, task)
        if self.mode == "replay":
            return self._embedded_again(call)
        try:
            out = embed_route(route, screened)
        except ProviderError as exc:
            self._record_failure(call, exc)
            raise
        vectors = np.asarray(out.vectors, dtype=np.float32)
        data = vectors.tobytes()
        sha = hashlib.sha256(data).hexdigest()
        latency = (time.perf_counter() - t0) * 1000
        row = self._row(
            call,
            model=out.deployment.model,
            deployment=out.deployment.label,
            status="ok",
            text=f"[embeddings {vectors.shape[0]}x{vectors.shape[1]} float32 sha256:{sha}]",
            finish_reason="stop",
            cost_usd=out.cost_usd,
            latency_ms=round(latency, 3),
            prompt_tokens=out.usage["prompt_tokens"],
            completion_tokens=0,
            total_tokens=out.usage["total_tokens"],
        )
        call.trace.end()
        self.store.record_call(
            row,
            [a.row(call.id) for a in out.attempts],
            call.trace.for_store(call.id),
            blobs=[(sha, EMBEDDING_MIME, vectors.shape[1], vectors.shape[0], data)],
        )
        return Embeddings(
            vectors,
            out.deployment.model,
            route_name,
            call.id,
            out.usage["prompt_tokens"],
            out.cost_usd,
            latency,
            False,
            out.attempts,
        )

    def _embedded_again(self, call: _Call) -> Embeddings:
        """Replay: the vectors a recorded call with the same request got, from the store."""
        import numpy as np

        rows = self.store.query(
            "SELECT id, model, text, prompt_tokens FROM calls WHERE fingerprint = ? AND status = 'ok' "
            "AND text LIKE '[embeddings %' ORDER BY started_at DESC LIMIT 1",
            (call.fingerprint,),
        )
        if not rows:
            raise ReplayMiss(
                f"replay: no recorded embedding of these {len(call.request.messages)} texts with "
                f"{call.route_name}; run once with WORKBENCH_MODE=live to record it"
            )
        sha = rows[0]["text"].rsplit("sha256:", 1)[1].rstrip("]")
        blob = self.store.query("SELECT width, height, data FROM blobs WHERE sha256 = ?", (sha,))
        if not blob or blob[0]["data"] is None:
            raise ReplayMiss(f"replay: the vectors of call {rows[0]['id']} are no longer in the store (compacted)")
        vectors = np.frombuffer(bytes(blob[0]["data"]), dtype=np.float32).reshape(blob[0]["height"], blob[0]["width"])
        call.replay_of = rows[0]["id"]
        row = self._row(
            call,
            model=rows[0]["model"],
            status="ok",
            text=rows[0]["text"],
            latency_ms=round((time.perf_counter() - call.t0) * 1000, 3),
            prompt_tokens=rows[0]["prompt_tokens"],
            total_tokens=rows[0]["prompt_tokens"],
            cost_usd=0.0,
        )
        call.trace.end()
        self.store.record_call(row, [], call.trace.for_store(call.id))
        return Embeddings(
            vectors, rows[0]["model"], call.route_name, call.id, rows[0]["prompt_tokens"] or 0, replayed=True
        )

    def _check_vision(self, route: Route) -> None:
        """A one-line error, before anything is sent, when a deployment of the route cannot see images."""
        blind = [d.model for d in route.deployments if not self._sees(d.model)]
        if blind:
            raise ImageError(
                f"{', '.join(blind)} cannot see images (litellm's supports_vision; list a model in [images] "
                "vision if it can): use a vision model such as openai/gpt-4o-mini, or local/echo offline"
            )

    def _sees(self, model: str) -> bool:
        if model == "local/echo" or model in self.settings.images.vision:
            return True
        if model.startswith("local/"):
            return False
        try:
            return bool(litellm_module().supports_vision(model=model))
        except Exception:  # noqa: BLE001 - a model litellm does not know: not known to see
            return False

    def stored_images(self, shas: list[str]) -> dict[str, Image]:
        """The stored images with these hashes (a re-run sends the bytes the original sent)."""
        out: dict[str, Image] = {}
        for sha in dict.fromkeys(shas):
            rows = self.store.query("SELECT mime, width, height, data FROM blobs WHERE sha256 = ?", (sha,))
            if not rows or rows[0]["data"] is None:
                raise ImageError(f"image sha256:{sha[:12]} is not in the store (compacted, or never stored)")
            row = rows[0]
            out[sha] = Image(bytes(row["data"]), row["mime"], row["width"], row["height"], sha)
        return out

    def _new_version(self, call: _Call) -> list[tuple[str, str, dict[str, Any]]]:
        """A ``spec`` audit entry when this call is the first to use its context spec's version."""
        plan = call.plan
        if plan is None or not plan.spec or not plan.version or (plan.spec, plan.version) in self._versions_seen:
            return []
        self._versions_seen.add((plan.spec, plan.version))
        seen = self.store.query(
            "SELECT 1 FROM audit WHERE kind = 'spec' AND ref = ? AND json_extract(payload, '$.version') = ? LIMIT 1",
            (plan.spec, plan.version),
        )
        return [] if seen else [("spec", plan.spec, {"version": plan.version, "first_call": call.id})]

    def _team(self, call: _Call) -> str | None:
        """The team state a call's budgets were reserved in (named in its audit entry)."""
        team = self.budgets.team
        return team.where if team is not None and call.reserved and call.budgeted & TEAM else None

    def _record_failure(self, call: _Call, exc: WorkbenchError) -> None:
        attempts = getattr(exc, "attempts", [])
        status: CallStatus = (
            "refused" if isinstance(exc, (BudgetExceeded, KillSwitchActive, TeamStateDown)) else "error"
        )
        row = self._row(
            call,
            status=status,
            error=scrub(str(exc).splitlines()[0][:1000]),
            latency_ms=round((time.perf_counter() - call.t0) * 1000, 3),
        )
        call.trace.end(exc)
        self.store.record_call(
            row,
            [a.row(call.id) for a in attempts],
            call.trace.for_store(call.id),
            settle_reservation=call.reserved,
            blobs=_blobs(call.request),
            team=self._team(call),
        )
        if call.reserved:  # nothing spent: the team's hold is given back
            self.budgets.settle(call.id, 0.0, 0)
        if isinstance(exc, ProviderError):
            exc.call_id = call.id
        if self.mode == "live" and status == "error":
            self.alerts.check(call.route_name, call.id)


def _span(trace: Trace | None, name: str, **attributes: Any) -> AbstractContextManager[dict[str, Any]]:
    """``trace.span(...)``, or a stand-in that collects the attributes nowhere (no trace: a plan alone)."""
    return trace.span(name, **attributes) if trace else nullcontext({})


def _said(request: Request) -> str:
    """The text of every message the model was sent (what an exfiltrating URL would carry)."""
    out = []
    for m in request.messages:
        content = m.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [part.get("text", "") for part in content if isinstance(part, dict)]
    return "\n".join(out)


def _with_images(prompt: Any, opts: AskOptions) -> tuple[Any, AskOptions]:
    """A prompt given as a list of text and images: its text (each image as its marker) and the images."""
    if not isinstance(prompt, list | tuple):
        return prompt, opts
    texts, images = [], list(opts.images)
    for piece in prompt:
        if isinstance(piece, str):
            texts.append(piece)
        elif isinstance(piece, bytes | bytearray | Path) or is_image(piece):  # (bytes here can only be an image)
            image = as_image(piece)
            images.append(image)
            texts.append(image.marker)
        else:
            raise WorkbenchError(
                f"a prompt list holds text and images (bytes, paths as pathlib.Path, figures), not "
                f"{type(piece).__name__}"
            )
    return "\n".join(texts), replace(opts, images=tuple(images))


def _each_sent(system: str | None, context: ContextArg, fn: Callable[[str, str], str]) -> tuple[str | None, ContextArg]:
    """``fn(text, where)`` on the system prompt and on each inline context item (as text), each named as errors
    name it; what it returns, in the same shapes.
    """
    if system:
        system = fn(system, "the system prompt")
    if context is None:
        return system, None
    if isinstance(context, str):
        return system, fn(context, "the context")
    if isinstance(context, Mapping):
        return system, {str(k): fn(str(v), f"context item {k!r}") for k, v in context.items()}
    return system, [fn(str(v), f"context item {i}") for i, v in enumerate(context, 1)]


def _show(messages: list[dict[str, Any]], images: list[Image]) -> list[dict[str, Any]]:
    """The messages with the prompt's image markers as image parts (the last user message: the prompt)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last is None or not isinstance(messages[last].get("content"), str):
        return messages
    return [
        *messages[:last],
        {**messages[last], "content": with_parts(messages[last]["content"], images)},
        *messages[last + 1 :],
    ]


def _blobs(request: Request) -> list[tuple[str, str, int, int, bytes]]:
    """The images a request names, as the store keeps them."""
    return [(i.sha256, i.mime, i.width, i.height, i.data) for i in request.blobs.values()]


def _with_values(
    plan: ContextPlan | None, messages: list[dict[str, Any]], rendered: Filled, budget: int
) -> ContextPlan:
    """The call's context plan with a block per value placed in the prompt (``truncated`` when it was cut)."""
    blocks = [
        Block("value", name, r.tokens, "truncated" if r.cut else "included", r.cut or f"{r.kind}", r.text)
        for name, r in rendered.values
    ]
    if plan is None:
        return ContextPlan(None, None, budget * len(blocks), blocks, messages)
    plan.blocks.extend(blocks)
    return plan


def _sink(sink: str | None) -> str | None:
    if sink is not None and sink not in SINKS:
        raise WorkbenchError(
            f"sink must be one of {', '.join(SINKS)} (where the answer will be used), not {shown(sink)}"
        )
    return sink


def _with_quarantine(plan: ContextPlan, quarantined: list[tuple[str, Screened]]) -> ContextPlan:
    """Mark fenced chunks in the plan, and list dropped ones, with why the guardrails quarantined them."""
    reasons = {s.ref: s for _, s in quarantined}
    for block in plan.blocks:
        if block.ref in reasons and reasons[block.ref].status == "fenced":
            block.reason = "; ".join(r for r in (block.reason, f"fenced: {reasons[block.ref].reason}") if r)
    plan.blocks += [
        Block(source, s.ref, 0, "dropped", f"dropped: {s.reason}") for source, s in quarantined if s.status == "dropped"
    ]
    return plan


def _scopes(names: Sequence[str], who: Attribution) -> list[str]:
    """A spec's memory scopes for this call: ``user`` -> ``user:alice`` (skipped when the call has no user)."""
    mine = {"user": who.user, "agent": who.agent, "session": who.session}
    scopes = []
    for name in names:
        if name in mine:
            if mine[name]:
                scopes.append(f"{name}:{mine[name]}")
        else:
            scopes.append(check_scope(name))
    return scopes


def _turns(history: Sequence[dict[str, Any]], last: int) -> list[Item]:
    """A session's history as turns (user + assistant), newest first, at most ``last``."""
    turns = [list(history[i : i + 2]) for i in range(0, len(history), 2)]
    items = [
        Item(f"turn {n}", "\n".join(f"{m['role']}: {m['content']}" for m in turn), messages=turn)
        for n, turn in enumerate(turns, 1)
    ]
    return items[::-1][:last]


def _remembered(prompt: str) -> str:
    """What ``--remember`` stores: the text without a leading "remember that"."""
    text = re.sub(r"^\s*(please\s+)?remember\s+that\s+", "", prompt, flags=re.IGNORECASE).strip()
    return text[:1].upper() + text[1:] if text else prompt


def counting_model(route_name: str, route: Route) -> str:
    """The model whose tokenizer counts a route's text: its first deployment's."""
    return route.deployments[0].model if route.deployments else route_name


@lru_cache(maxsize=8192)
def count_text_tokens(model: str, text: str) -> int:
    """The token count litellm gives, remembered: chunks, memories and turns recur from call to call."""
    return tokens.count_text(model, text)
