"""Routes -> deployments -> litellm, with ordered failover and Retry-After-aware retries.

We drive litellm per attempt (``num_retries=0``, ``max_retries=0``) instead of using
``litellm.Router`` because every attempt must be recorded with its deployment,
error class and latency, and replay must be able to stand in for the whole layer.

The failover policy is :class:`FailoverPlan`, free of I/O, so the sync and async
drivers share it:

- transient errors (429, 5xx, timeouts, connection errors) are retried on the same
  deployment up to ``route.retries`` times, waiting ``Retry-After`` when the
  provider sends one (if it is at most ``route.max_retry_after``), else an
  exponential backoff with full jitter; then the next deployment is tried;
- context-window-exceeded, auth and other provider errors fail over at once;
- a deployment whose ``api_key_env`` is not set is skipped (recorded, never sent);
- a deployment whose circuit breaker is open is skipped too; when every one is open,
  the call waits for the earliest half-open probe if it comes within ``deadline_s``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workbench.config import Deployment, Route, Settings, shown_url
from workbench.errors import BudgetExceeded, ProviderError, UnknownModel, shown
from workbench.guardrails.scanners import check_name
from workbench.plugins import REGISTRY
from workbench.serving import catalog, offline, openai_http, tokens
from workbench.serving.breaker import Breakers
from workbench.serving.failures import Failure, LocalModelFault, StreamFault, classify
from workbench.serving.policies import DEFAULT_ANSWER_TOKENS, LatencyTracker, order
from workbench.serving.types import LOCAL_MODELS, Attempt, Completion, Request, local_models
from workbench.store import utcnow
from workbench.store.records import AttemptStatus

TokenSink = Callable[[str | None], None]  # a text delta, or None: "discard what was streamed"
PLACEHOLDER_KEY = "sk-no-key-needed"  # for key-less OpenAI-compatible servers (vLLM, Ollama, chaos)

_litellm: Any = None


def litellm_module() -> Any:
    """Import litellm once, quietly, with the local models registered (a second thread waits for the first)."""
    global _litellm
    if _litellm is not None:
        return _litellm
    with _LITELLM_LOCK:
        if _litellm is None:
            _litellm = _load_litellm()
    return _litellm


_LITELLM_LOCK = threading.RLock()  # re-entrant: the warm-up call must not wait on itself


class _Lazy:
    """litellm, imported the first time one of its names is read: an offline call never reads one."""

    def __getattr__(self, name: str) -> Any:
        return getattr(litellm_module(), name)


LITELLM: Any = _Lazy()
VIA_LITELLM = "WORKBENCH_VIA_LITELLM"  # set: local models and OpenAI-compatible servers go through litellm too


def needs_litellm(route: Route, settings: Settings | None = None) -> bool:
    """Whether a call down ``route`` may reach litellm: a deployment other than a local model answered here, or
    an OpenAI-compatible server called directly unless ``settings`` configure its price or litellm's map could
    not price it (:func:`catalog.may_price`; the server's answer is asked again when the call is priced).
    """
    return not all(
        _direct(d)
        or (
            _over_http(d)
            and settings is not None
            and (settings.price_for(d) is not None or not catalog.may_price(d.model))
        )
        for d in route.deployments
    )


def prepare(route: Route, settings: Settings | None = None) -> None:
    """Load what a call down ``route`` needs once per process (seconds: never part of a call's latency):
    litellm when the route may reach it (see :func:`needs_litellm`), else only the tokenizer files it counts with;
    and the HTTP clients of the OpenAI-compatible servers it calls directly. Once per route object: asked before
    every live call, the checks cost ~6 us each time. (What a call needs later, e.g. litellm once a callback is
    set on it, is loaded by the call itself.)
    """
    held = _PREPARED.get(id(route))
    if held is not None and held() is route:
        return
    if needs_litellm(route, settings):
        litellm_module()
    else:
        tokens.load(d.model for d in route.deployments)
    servers = [d.api_base for d in route.deployments if d.api_base and _over_http(d)]
    if servers:
        openai_http.prepare(servers)
    if len(_PREPARED) > 1024:  # (routes made and dropped one after another: forget the dropped ones)
        for gone in [k for k, ref in _PREPARED.items() if ref() is None]:
            del _PREPARED[gone]
    _PREPARED[id(route)] = weakref.ref(route)


_PREPARED: dict[int, weakref.ReferenceType[Route]] = {}  # the routes prepare() has loaded for (by identity)


def _direct(deployment: Deployment) -> bool:
    """A local model, answered in this process without litellm (the same answer and usage; see offline.py),
    unless someone listens to litellm's calls (a callback set on it sees every call, local ones included).
    """
    return offline.knows(deployment.model) and not deployment.api_base and not deployment.gateway and _unheard()


def _over_http(deployment: Deployment, kwargs: dict[str, Any] | None = None) -> bool:
    """An OpenAI-compatible server called over HTTP without litellm (see openai_http.py), for a call whose
    keywords (if given) litellm would send unchanged, and unless someone listens to litellm's calls.
    """
    return openai_http.serves(deployment) and (kwargs is None or openai_http.takes(kwargs)) and _unheard()


def _unheard() -> bool:
    """Neither ``WORKBENCH_VIA_LITELLM`` nor a litellm callback, cache or budget asks for every call to reach it."""
    return not os.environ.get(VIA_LITELLM) and not _listened(sys.modules.get("litellm"))


def _listened(litellm: Any) -> bool:
    """Whether a user of ``litellm`` (if imported) set a callback, a cache or a budget on it."""
    if litellm is None:
        return False
    return (
        any(getattr(litellm, name, None) for name in _LISTENERS)
        or getattr(litellm, "cache", None) is not None
        or bool(getattr(litellm, "max_budget", None))
    )


def _load_litellm() -> Any:
    """One import, one registration of the local models, one warm-up call (see litellm_module)."""
    import litellm

    litellm.suppress_debug_info = True  # drop_params is passed per call (endpoint_kwargs), never set globally
    from workbench.serving import local

    local.register()
    try:  # litellm sets itself up on its first completion (~1 s): do it here, outside every call's latency
        with _unlogged(litellm):
            litellm.completion(model="local/echo", messages=[{"role": "user", "content": "warm-up"}])
    except Exception:  # noqa: BLE001 - a warm-up: the real call reports its own errors
        pass
    return litellm


def endpoint_kwargs(deployment: Deployment) -> dict[str, Any]:
    """What litellm needs to reach a deployment, for any kind of call: its params, model, timeout, base URL, key."""
    kwargs: dict[str, Any] = {**deployment.params, "model": deployment.model, "timeout": deployment.timeout}
    # A parameter a provider does not take is dropped, not an error. Not for a gateway: the proxy takes what its
    # models take, and with drop_params litellm gives back None instead of the proxy's refusal (its reason lost).
    kwargs.setdefault("drop_params", not deployment.gateway)
    if deployment.gateway:  # a LiteLLM Proxy: its own model names, over its OpenAI-compatible API
        prefixed = deployment.model.startswith("litellm_proxy/")
        kwargs["model"] = deployment.model if prefixed else f"litellm_proxy/{deployment.model}"
    if deployment.api_base or deployment.gateway:
        kwargs["api_base"] = deployment.api_base or deployment.gateway
    if deployment.api_key_env:
        kwargs["api_key"] = os.environ[deployment.api_key_env]
    elif deployment.api_base or deployment.gateway:
        kwargs["api_key"] = PLACEHOLDER_KEY
    return kwargs


def gateway_kwargs(request: Request) -> dict[str, Any]:
    """Who is calling, for a LiteLLM Proxy to log and bill: ``user``, and session/task/agent as its tags."""
    who = request.who
    kwargs: dict[str, Any] = {"user": who["user"]} if who.get("user") else {}
    tags = [f"{k}:{who[k]}" for k in ("session", "task", "agent") if who.get(k)]
    if tags:
        kwargs["extra_headers"] = {"x-litellm-tags": ",".join(t.replace(",", " ") for t in tags)}
        kwargs["metadata"] = {"tags": tags}  # litellm_proxy sends it in the body, where the proxy reads tags too
    return kwargs


def gateway_cost(response: Any) -> float | None:
    """The cost a LiteLLM Proxy reported for a response (``x-litellm-response-cost``), if it did."""
    headers = (getattr(response, "_hidden_params", None) or {}).get("additional_headers") or {}
    value = headers.get("llm_provider-x-litellm-response-cost")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def key_values(deployment: Deployment) -> tuple[str, ...]:
    """The deployment's key, to keep out of error messages."""
    return (os.environ.get(deployment.api_key_env, ""),) if deployment.api_key_env else ()


def backoff(retry: int, base: float = 0.25, cap: float = 4.0) -> float:
    """Exponential backoff with full jitter for the ``retry``-th retry (0-based)."""
    return random.uniform(0, min(cap, base * 2**retry))


PARTIAL = "workbench_partial"  # the attribute of an exception that stopped a stream: the completion so far


class FailoverPlan:
    """Which deployment to try next and how long to wait first (no I/O)."""

    def __init__(
        self,
        route: Route,
        breakers: Breakers | None = None,
        clock: Callable[[], float] = time.monotonic,
        deployments: list[Deployment] | None = None,
        routing: str = "ordered",
        latency: LatencyTracker | None = None,
    ):
        self.route, self.breakers, self._clock = route, breakers, clock
        self.routing, self.latency = routing, latency  # the policy's decision; where latencies are learned
        self.attempts: list[Attempt] = []
        self._queue = list(deployments if deployments is not None else route.deployments)  # not tried yet, in order
        self._open: list[Deployment] = []  # skipped for an open circuit: may be probed before the deadline
        self._retry: tuple[Deployment, float] | None = None
        self._retries = 0
        self._started = clock()

    def next(self) -> tuple[Deployment | None, float] | None:
        """The next deployment to call and the seconds to sleep first.

        ``(None, seconds)`` means: every deployment left is behind an open circuit;
        sleep, then ask again. ``None`` means the plan is exhausted.
        """
        if self._retry is not None:
            step, self._retry = self._retry, None
            return step
        while self._queue:
            deployment = self._queue.pop(0)
            self._retries = 0
            if deployment.api_key_env and not os.environ.get(deployment.api_key_env):
                self._record(
                    deployment, "skipped", 0.0, error_class="MissingKey", error=f"{deployment.api_key_env} is not set"
                )
                continue
            if self.breakers is not None and not self.breakers.allow(deployment.endpoint):
                probe_in = self.breakers.retry_at(deployment.endpoint)
                self._record(
                    deployment,
                    "skipped",
                    0.0,
                    error_class="CircuitOpen",
                    error=f"circuit open; next probe in {probe_in:.1f}s",
                )
                self._open.append(deployment)
                continue
            return deployment, 0.0
        if self._open and self.breakers is not None:
            for deployment in list(self._open):
                if self.breakers.allow(deployment.endpoint):
                    self._open.remove(deployment)
                    self._retries = self.route.retries  # a half-open probe is never retried
                    return deployment, 0.0
            wait = max(0.05, min(self.breakers.retry_at(d.endpoint) for d in self._open))
            if self._clock() - self._started + wait <= self.route.deadline_s:
                return None, wait
        return None

    def remaining_s(self) -> float:
        """How much of the route's deadline is left."""
        return max(0.0, self.route.deadline_s - (self._clock() - self._started))

    def skip(self, deployment: Deployment, error_class: str, error: str) -> None:
        """Record that a deployment the plan offered was not tried after all."""
        self._record(deployment, "skipped", 0.0, error_class=error_class, error=error)

    def succeeded(self, deployment: Deployment, started_at: str, latency_ms: float) -> None:
        """Record a successful attempt (and tell the breaker and the latency tracker)."""
        self._record(deployment, "ok", latency_ms, started_at=started_at)
        if self.breakers is not None:
            self.breakers.succeeded(deployment.endpoint)
        if self.latency is not None:
            self.latency.observe(deployment.endpoint, latency_ms)

    def interrupted(self, deployment: Deployment, started_at: str, latency_ms: float, why: str) -> None:
        """Record an attempt its caller stopped mid-stream (no word on the deployment's health)."""
        self._record(deployment, "interrupted", latency_ms, started_at=started_at, error_class="Interrupted", error=why)

    def failed(self, deployment: Deployment, failure: Failure, started_at: str, latency_ms: float) -> None:
        """Record a failed attempt and decide: retry here (after a wait) or move on."""
        self._record(
            deployment,
            "error",
            latency_ms,
            started_at=started_at,
            error_class=failure.error_class,
            error=failure.message,
            status_code=failure.status_code,
            retry_after=failure.retry_after,
        )
        if self.breakers is not None:
            self.breakers.failed(deployment.endpoint, failure.error_class)
            if self.breakers.state(deployment.endpoint) != "closed":
                return  # this failure opened the circuit: do not retry into it
        if not failure.transient or self._retries >= self.route.retries:
            return
        if failure.retry_after is None:
            wait = backoff(self._retries)
        elif failure.retry_after <= self.route.max_retry_after:
            wait = failure.retry_after
        else:
            return  # the provider asks for longer than this route waits: fail over now
        self._retries += 1
        self._retry = (deployment, wait)

    def _record(
        self,
        deployment: Deployment,
        status: AttemptStatus,
        latency_ms: float,
        started_at: str | None = None,
        **error: Any,
    ) -> None:
        self.attempts.append(
            Attempt(
                n=len(self.attempts) + 1,
                deployment=deployment.label,
                model=deployment.model,
                endpoint=deployment.endpoint,
                status=status,
                started_at=started_at or utcnow(),
                latency_ms=latency_ms,
                end_ns=time.time_ns(),
                **error,
            )
        )

    def error(self, route_name: str) -> ProviderError:
        """The error raised when the plan runs out of deployments."""
        tried = [a for a in self.attempts if a.status != "skipped"]
        if not tried:
            reasons = ", ".join(f"{a.deployment}: {a.error}" for a in self.attempts)
            return ProviderError(
                f"route {route_name!r}: no deployment could be tried ({reasons}); export the missing key, "
                "wait for the circuit to close, raise the route's deadline_s, or add a fallback deployment",
                self.attempts,
            )
        last = tried[-1]
        return ProviderError(
            f"route {route_name!r}: all {len(tried)} attempts failed, last on "
            f"{last.deployment}: {last.error_class}: {last.error}; "
            "see wb.calls.attempts() and add or fix a deployment",
            self.attempts,
        )


def check_route(name: str, route: Route) -> None:
    """Refuse (one-line :class:`~workbench.errors.WorkbenchError`, the value shown redacted) a route whose name, or
    a deployment's model, name, key variable or URL, holds a key: each is recorded with every call (its route,
    deployment, attempts, endpoint) and shown as written, so it must never hold one.
    """
    check_name("route", name)
    for d in route.deployments:
        check_name("deployment model", d.model)
        check_name("deployment name", d.name)
        check_name("api_key_env", d.api_key_env)  # (the name of the variable that holds the key)
        for what, url in (("api_base", d.api_base), ("gateway", d.gateway)):
            check_name(what, shown_url(url) if url else None)  # (a password or key parameter is shown as ***)


class Router:
    """Resolves names to routes and completes requests over litellm with failover."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.extra_routes: dict[str, Route] = {}
        self.breakers = Breakers(settings.breaker.failures, settings.breaker.cooldown_s)
        self.latency = LatencyTracker()
        self.limiter: Any = None  # a RateLimiter, wired in by the runtime (limits sits above serving)
        self._model_routes: dict[str, Route] = {}  # bare model names already checked
        for name, route in settings.routes.items():
            check_route(name, route)

    def _ticket(self, plan: FailoverPlan, deployment: Deployment, request: Request) -> Any:
        """The request's place in the deployment's queue, or ``None`` if the deployment sets no limits."""
        if self.limiter is None or not (deployment.rpm or deployment.tpm or deployment.max_parallel):
            return None
        tokens = 0
        if deployment.tpm:
            answer = request.params.get("max_tokens") or DEFAULT_ANSWER_TOKENS
            tokens = request.prompt_tokens(deployment.model) + answer
        max_wait = plan.remaining_s()
        if request.max_wait_s is not None:
            max_wait = min(max_wait, request.max_wait_s)
        return self.limiter.ticket(
            deployment.endpoint,
            rpm=deployment.rpm,
            tpm=deployment.tpm,
            max_parallel=deployment.max_parallel,
            tokens=tokens,
            priority=request.priority,
            max_wait_s=max_wait,
            lease_s=deployment.timeout,
        )

    @staticmethod
    def _not_admitted(plan: FailoverPlan, deployment: Deployment, request: Request) -> None:
        limits = ", ".join(
            f"{v} {k}"
            for k, v in (("rpm", deployment.rpm), ("tpm", deployment.tpm), ("max_parallel", deployment.max_parallel))
            if v
        )
        within = "the call's deadline" if request.max_wait_s is None else f"max_wait={request.max_wait_s:g}s"
        plan.skip(deployment, "RateLimited", f"no {limits} slot within {within}")

    def plan(self, route: Route, request: Request) -> FailoverPlan:
        """The failover plan for a request, in the order the route's policy chose (and why)."""
        deployments, reason = order(route, request, self.settings, self.latency, LITELLM)
        return FailoverPlan(route, self.breakers, deployments=deployments, routing=reason, latency=self.latency)

    def route_names(self) -> list[str]:
        """Every configured route name."""
        return [*self.settings.routes, *self.extra_routes]

    def resolve(self, name: str | None, check: bool = True) -> tuple[str, Route]:
        """The route for a route name or a bare litellm model name."""
        if name is not None and not isinstance(name, str):
            raise UnknownModel(f"model must be a route or model name (text), not {type(name).__name__} {name!r}")
        if name is not None and not name.strip():
            raise UnknownModel(
                f"model is empty: name a route or a model, or leave it out for the default route "
                f"({self.settings.default_route})"
            )
        name = (name or self.settings.default_route).strip()
        route = self.extra_routes.get(name) or self.settings.routes.get(name)
        if route is not None:
            return name, route
        route = self._model_routes.get(name)
        if route is None:
            check_name("model", name)  # (a key pasted as a model name: never sent, recorded or shown as written)
            if check:
                self._check_model(name)
            route = Route(deployments=[Deployment(model=name)])
            if check:
                self._model_routes[name] = route
        return name, route

    def _check_model(self, name: str) -> None:
        if name in LOCAL_MODELS or (name.startswith("local/") and REGISTRY.get("model", name) is not None):
            return
        routes = ", ".join(self.route_names()) or "none configured"
        hint = (
            f"use a route ({routes}), a local model ({', '.join(local_models())}) or a "
            "provider-prefixed litellm name such as 'openai/gpt-4o-mini'; %llm_models lists them"
        )
        if name.startswith("local/"):
            raise UnknownModel(f"unknown model {shown(name)}: {hint}")
        known = catalog.knows_bare_name(name)  # a typo is named at once, not after seconds of importing litellm
        if known is not None:
            if known:
                return
            raise UnknownModel(f"unknown model or route {shown(name)}: {hint}")
        litellm = litellm_module()
        provider = name.split("/", 1)[0] if "/" in name else None
        if provider in litellm.provider_list or name in litellm.model_cost:
            return
        raise UnknownModel(f"unknown model or route {shown(name)}: {hint}")

    def _kwargs(self, deployment: Deployment, request: Request) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            **endpoint_kwargs(deployment),
            "messages": request.wire_messages(),
            "num_retries": 0,
            "max_retries": 0,
            **{k: v for k, v in request.params.items() if v is not None},
        }
        if deployment.gateway:
            kwargs.update(gateway_kwargs(request))
        if deployment.model == "local/scripted":
            kwargs["local_scripted"] = self.settings.scripted
        if request.stream:
            kwargs["stream"] = True
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    @staticmethod
    def _secrets(deployment: Deployment) -> tuple[str, ...]:
        return key_values(deployment)

    def complete(
        self, route_name: str, route: Route, request: Request, on_token: TokenSink | None = None
    ) -> Completion:
        """Send ``request`` down the route, failing over as the plan says."""
        plan = self.plan(route, request)
        while (step := plan.next()) is not None:
            deployment, wait = step
            if wait:
                time.sleep(wait)
            if deployment is None:
                continue
            ticket = self._ticket(plan, deployment, request)
            if ticket is not None and self.limiter.acquire(ticket) is None:
                self._not_admitted(plan, deployment, request)
                continue
            attempt = _AttemptRun(deployment, on_token, request.answer_cap)
            try:
                kwargs = self._kwargs(deployment, request)
                reply = attempt.offline(kwargs, request.stream) if _direct(deployment) else None
                if reply is None and _over_http(deployment, kwargs):
                    reply = attempt.over_http(kwargs, request)
                if reply is None:
                    reply = attempt.through_litellm(kwargs, request)
            except Exception as exc:
                if not attempt.failed(plan, exc, self._secrets(deployment)):
                    attempt.interrupted(plan, request, exc)  # the caller's own error (its on_token raised)
                    raise
                continue
            except BaseException as exc:  # KeyboardInterrupt (a notebook's stop button), a cancelled task
                attempt.interrupted(plan, request, exc)
                raise
            finally:
                if ticket is not None:
                    self.limiter.release(ticket)
            return attempt.succeeded(plan, reply)
        raise plan.error(route_name)

    async def acomplete(
        self, route_name: str, route: Route, request: Request, on_token: TokenSink | None = None
    ) -> Completion:
        """Async twin of :meth:`complete` (same plan, ``litellm.acompletion``)."""
        plan = self.plan(route, request)
        while (step := plan.next()) is not None:
            deployment, wait = step
            if wait:
                await asyncio.sleep(wait)
            if deployment is None:
                continue
            ticket = self._ticket(plan, deployment, request)
            if ticket is not None and await self.limiter.aacquire(ticket) is None:
                self._not_admitted(plan, deployment, request)
                continue
            attempt = _AttemptRun(deployment, on_token, request.answer_cap)
            try:
                kwargs = self._kwargs(deployment, request)
                reply = attempt.offline(kwargs, request.stream) if _direct(deployment) else None
                if reply is None and _over_http(deployment, kwargs):
                    reply = await attempt.aover_http(kwargs, request)
                if reply is None:
                    reply = await attempt.athrough_litellm(kwargs, request)
            except Exception as exc:
                if not attempt.failed(plan, exc, self._secrets(deployment)):
                    attempt.interrupted(plan, request, exc)
                    raise
                continue
            except BaseException as exc:
                attempt.interrupted(plan, request, exc)
                raise
            finally:
                if ticket is not None:
                    self.limiter.release(ticket)
            return attempt.succeeded(plan, reply)
        raise plan.error(route_name)


class _AttemptRun:
    """One attempt in flight: its timing, streamed chunks, and how it ends in the plan.

    ``cap`` is the most answer tokens the call reserved (``max_tokens``, or what a budget
    reservation assumed): a provider that ignores it is not read past it, so a stream can't
    overspend a budget.
    """

    def __init__(self, deployment: Deployment, on_token: TokenSink | None, cap: int | None = None):
        self.deployment, self.on_token, self.cap = deployment, on_token, cap
        self.started_at, self.t0 = utcnow(), time.perf_counter()
        self.chunks: list[Any] = []
        self.ttft_ms: float | None = None
        self.tokens = 0  # answer tokens read so far (counted only under a cap)
        self.texts: list[str] = []  # the streamed text kept, piece by piece
        self.answered = False  # some text or a tool call arrived
        self.capped = False

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    def add(self, chunk: Any) -> bool:
        """Keep a streamed chunk and pass its text on; ``False`` (the chunk not kept) once its text would take
        the answer past its cap.
        """
        delta = chunk.choices[0].delta if chunk.choices else None
        text = delta.content if delta is not None else None
        kept = len(self.texts)
        more = self.text(text) if text else True
        if not text or len(self.texts) > kept:
            self.chunks.append(chunk)
            if delta is not None and getattr(delta, "tool_calls", None):
                self.answered = True
        return more

    def text(self, text: str) -> bool:
        """Pass a streamed piece of text on; ``False`` (not passed on) if it would take the answer past its cap,
        or ``False`` after passing it on if the first piece alone is over the cap (so an answer is never empty).
        """
        if not self._keep(text):
            return False
        self._show(text)
        return not self.capped

    def _keep(self, text: str) -> bool:
        """Count a piece against the cap and keep it, unless it would take the answer past the cap (then
        ``capped``); the first piece is kept even alone over the cap (an answer, not an empty stream).
        """
        if self.cap is not None:
            within = _within_cap(self.deployment.model, self.texts, self.tokens, text, self.cap)
            if within is None:
                self.capped = True
                if self.texts:
                    return False
            self.tokens = within if within is not None else self.cap
        self.texts.append(text)
        return True

    def _show(self, text: str) -> None:
        """A kept piece: the answer has begun (its first token's time), and the caller sees it."""
        self.answered = True
        if self.ttft_ms is None:
            self.ttft_ms = self._elapsed_ms()
        if self.on_token:
            self.on_token(text)

    def through_litellm(self, kwargs: dict[str, Any], request: Request) -> _Reply:
        """The attempt over ``litellm.completion``: streamed (read up to the cap) or whole."""
        litellm = litellm_module()
        if not request.stream:
            with _unlogged(litellm):
                return _Reply.of(_answered(litellm.completion(**kwargs)))
        for chunk in litellm.completion(**kwargs):
            if not self.add(chunk):
                break  # the answer reached what was reserved for it: read no more
        return _Reply.of(self.built(litellm, request.text_messages()[0]))

    async def athrough_litellm(self, kwargs: dict[str, Any], request: Request) -> _Reply:
        """Async twin of :meth:`through_litellm` (``litellm.acompletion``)."""
        litellm = litellm_module()
        if not request.stream:
            with _unlogged(litellm):
                return _Reply.of(_answered(await litellm.acompletion(**kwargs)))
        async for chunk in await litellm.acompletion(**kwargs):
            if not self.add(chunk):
                break
        return _Reply.of(self.built(litellm, request.text_messages()[0]))

    def over_http(self, kwargs: dict[str, Any], request: Request) -> _Reply:
        """The attempt sent straight to an OpenAI-compatible server: streamed (read up to the cap) or whole."""
        if not request.stream:
            return _Reply.of_json(openai_http.complete(kwargs))
        built = openai_http.StreamedReply()
        chunks = openai_http.stream(kwargs)
        try:
            for chunk in chunks:
                if not self.add_json(built, chunk):
                    break  # the answer reached what was reserved for it: read no more
        finally:
            chunks.close()
        return self.streamed(built, request)

    async def aover_http(self, kwargs: dict[str, Any], request: Request) -> _Reply:
        """Async twin of :meth:`over_http`."""
        if not request.stream:
            return _Reply.of_json(await openai_http.acomplete(kwargs))
        built = openai_http.StreamedReply()
        chunks = openai_http.astream(kwargs)
        try:
            async for chunk in chunks:
                if not self.add_json(built, chunk):
                    break
        finally:
            await chunks.aclose()
        return self.streamed(built, request)

    def add_json(self, built: openai_http.StreamedReply, chunk: dict[str, Any]) -> bool:
        """A streamed chunk's JSON: its text passed on (``False`` once the answer would pass its cap)."""
        text = built.add(chunk)
        if built.calls:
            self.answered = True
        return self.text(text) if text else True

    def streamed(self, built: openai_http.StreamedReply, request: Request) -> _Reply:
        """The whole answer of a direct stream, as litellm's stream builder makes it (usage counted as it counts
        it when the server sent none, or the stream was cut at its cap before the usage chunk).
        """
        if not self.answered:
            raise StreamFault("EmptyStream", "the stream carried no answer (a malformed or empty body)")
        text = "".join(self.texts)
        tool_calls = built.tool_calls()
        usage = built.usage
        if usage is None:
            model = built.model or self.deployment.model
            prompt = tokens.count_messages(model, request.text_messages()[0])
            answer = tokens.count_text(model, text) if text else 0
            usage = {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer}
        raw = {
            "id": built.request_id,
            "model": built.model,
            "system_fingerprint": built.fingerprint,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text or None, "tool_calls": tool_calls},
                    "finish_reason": "length" if self.capped else built.finish_reason or "stop",
                }
            ],
            "usage": usage,
        }
        return _Reply.of_json(raw)

    def offline(self, kwargs: dict[str, Any], stream: bool) -> _Reply | None:
        """A local model's answer, given here as litellm's custom provider gives it (same params, usage, finish
        reason, streamed pieces); ``None`` to leave to litellm a stream its cap would cut (litellm's stream
        builder decides what a cut stream holds; the model then answers again there). A local model cuts its
        own answer at ``max_tokens`` with the tokenizer the cap counts with, so that is rare.
        """
        model, messages = self.deployment.model, kwargs["messages"]
        params = _provider_params(kwargs)
        try:
            turn = offline.respond(model, messages, params)
        except Exception as exc:
            raise LocalModelFault(exc) from exc
        if turn is None:
            return None
        pieces = [p for p in offline.pieces(turn.text) if p] if stream and not turn.tool else []
        if not all(self._keep(p) and not self.capped for p in pieces):  # counted once, before any is shown
            self.texts, self.tokens, self.capped = [], 0, False  # litellm's stream is read from its start
            return None  # cut before its end: litellm's stream builder decides what a cut stream holds
        if stream:
            self.answered = bool(turn.tool)
            for piece in pieces:
                self._show(piece)
            if not self.answered:
                raise StreamFault("EmptyStream", "the stream carried no answer (a malformed or empty body)")
        tool = bool(turn.tool)
        return _Reply(
            text="" if tool else turn.text,
            tool_calls=[
                {"function": dict(sorted(c["function"].items())), "id": c["id"], "type": c["type"]}
                for c in turn.tool_calls()
            ]
            if tool
            else None,
            finish_reason="tool_calls" if tool else "length" if turn.truncated or self.capped else "stop",
            usage=offline.usage(messages, turn),
            model=model.removeprefix(f"{offline.PROVIDER}/"),
            request_id=f"chatcmpl-{uuid.uuid4()}",
        )

    def built(self, litellm: Any, messages: list[dict[str, Any]]) -> Any:
        """The whole response from the chunks (usage counted by litellm if the provider sent none).

        A stream that carried no text and no tool call is a failed attempt (a malformed or
        empty body), not an empty answer to bill.
        """
        if not self.answered:
            raise StreamFault("EmptyStream", "the stream carried no answer (a malformed or empty body)")
        response = litellm.stream_chunk_builder(self.chunks, messages=messages)
        if self.capped:
            response.choices[0].finish_reason = "length"
        return response

    def failed(self, plan: FailoverPlan, exc: Exception, secrets: tuple[str, ...]) -> bool:
        """Record a provider failure in the plan; ``False`` if ``exc`` is not one (re-raise it)."""
        failure = classify(exc, secrets, _host(self.deployment))
        if failure is None:
            return False
        if self.ttft_ms is not None and self.on_token:
            self.on_token(None)  # discard the partial stream: another attempt follows
        plan.failed(self.deployment, failure, self.started_at, self._elapsed_ms())
        if failure.error_class == "BudgetExceeded" and self.deployment.gateway:
            refused = BudgetExceeded(  # the team's gateway said no: failing over elsewhere would go around it
                f"the gateway at {_host(self.deployment)} refused the call: {failure.message}; no other deployment "
                "was tried. Ask whoever runs the gateway to raise the budget, or wait for it to renew"
            )
            refused.attempts = plan.attempts  # type: ignore[attr-defined]
            raise refused from None
        return True

    def interrupted(self, plan: FailoverPlan, request: Request, exc: BaseException) -> None:
        """The caller stopped a stream that had begun (an exception out of its ``on_token``, a KeyboardInterrupt):
        what streamed was billed, so the completion of that much goes with the exception (``PARTIAL``), for the
        call to be recorded as ``interrupted`` with its cost. Nothing streamed: nothing to record.
        """
        if not request.stream or not self.texts:
            return
        try:  # (called while the caller's exception is handled: nothing here may replace it)
            text = "".join(self.texts)
            prompt = tokens.count_messages(self.deployment.model, request.text_messages()[0])
            answer = tokens.count_text(self.deployment.model, text)
        except Exception:  # noqa: BLE001 - no count, no record: the call is given back as before
            return
        why = f"stopped by the caller while the answer streamed ({type(exc).__name__})"
        plan.interrupted(self.deployment, self.started_at, self._elapsed_ms(), why)
        partial = Completion(
            text=text,
            model=self.deployment.model,
            deployment=self.deployment.label,
            usage={"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer},
            attempts=plan.attempts,
            finish_reason="interrupted",
            ttft_ms=self.ttft_ms,
            routing=plan.routing,
        )
        try:
            setattr(exc, PARTIAL, partial)
        except AttributeError:  # (an exception type that takes no attributes: the call is given back unrecorded)
            pass

    def succeeded(self, plan: FailoverPlan, reply: _Reply) -> Completion:
        """Record the success (with what the provider says served it) and build the completion."""
        plan.succeeded(self.deployment, self.started_at, self._elapsed_ms())
        served = plan.attempts[-1]
        served.response_model = _text(reply.model)
        served.system_fingerprint = _text(reply.fingerprint)
        served.request_id = _text(reply.request_id)
        return Completion(
            text=reply.text,
            model=self.deployment.model,
            deployment=self.deployment.label,
            usage=reply.usage,
            attempts=plan.attempts,
            finish_reason=reply.finish_reason,
            tool_calls=reply.tool_calls,
            ttft_ms=self.ttft_ms,
            raw=reply.raw,
            gateway_cost_usd=gateway_cost(reply.raw) if self.deployment.gateway else None,
            routing=plan.routing,
        )


def _within_cap(model: str, texts: list[str], counted: int, piece: str, cap: int) -> int | None:
    """The answer's tokens with ``piece`` added to ``texts`` (``counted`` so far), or ``None`` if that passes
    ``cap``. Pieces counted apart add up to more than the text counted whole (a trailing space is a token
    until the next word takes it in), so an estimate over the cap is checked by counting the whole text.
    """
    estimate = counted + tokens.count_text(model, piece)
    if estimate > cap:
        estimate = tokens.count_text(model, "".join([*texts, piece]))
    return estimate if estimate <= cap else None


def _provider_params(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What litellm hands a custom provider as ``optional_params``, in its order: stream options, the
    request's parameters, ``max_retries``, then keywords of the workbench's own (``local_scripted``).
    """
    given = {k: v for k, v in kwargs.items() if v is not None and k not in _NOT_PARAMS}
    head: dict[str, Any] = {k: given.pop(k) for k in ("stream", "stream_options") if k in given}
    tail: dict[str, Any] = {k: given.pop(k) for k in ("max_retries", "local_scripted") if k in given}
    return {**head, **given, **tail}


_NOT_PARAMS = frozenset(  # what litellm keeps for itself: the rest reaches a custom provider's optional_params
    {"model", "messages", "timeout", "drop_params", "num_retries", "api_base", "api_key", "user", "metadata"}
)


_LISTENERS = (  # litellm's own post-call work happens for these: with any set, it is never skipped
    "callbacks",
    "success_callback",
    "_async_success_callback",
    "input_callback",
    "service_callback",
    "failure_callback",
    "_async_failure_callback",
)


@contextmanager
def _unlogged(litellm: Any) -> Iterator[None]:
    """Skip litellm's post-call success logging when nothing listens to it.

    After each completion litellm hands a success handler to a background thread (~0.4 ms of CPU:
    logging payloads, cost, callbacks). With no litellm callback, cache or budget configured nobody
    reads what it builds, yet it holds the GIL while this thread records the call (measured: the
    store's BEGIN went from 0.04 to 0.5 ms). The workbench records and prices every call itself.
    litellm's switch for this is private (``_internal_context.is_internal_call``, what it uses for its
    own nested calls), so it is used only when found, and only when no user of litellm in this
    process has set a callback, ``litellm.cache`` or ``litellm.max_budget``.
    """
    switch = getattr(getattr(litellm, "_internal_context", None), "is_internal_call", None)
    if switch is None or _listened(litellm):
        yield
        return
    token = switch.set(True)
    try:
        yield
    finally:
        switch.reset(token)


def _answered(response: Any) -> Any:
    """``response``, if it holds an answer; a failed attempt (never a raw AttributeError) if it holds none."""
    if not getattr(response, "choices", None):
        raise StreamFault("EmptyResponse", "the provider gave back no answer (an empty or malformed response)")
    return response


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _host(deployment: Deployment) -> str:
    """Where a deployment's calls go, for error messages: its base URL's host, or the provider's own."""
    base = deployment.api_base or deployment.gateway
    if base:
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        return parts.netloc.rpartition("@")[2] or shown_url(base)  # host[:port]: never the credentials before "@"
    provider = deployment.model.split("/", 1)[0] if "/" in deployment.model else deployment.model
    return f"{provider}'s API"


@dataclass(slots=True)
class _Reply:
    """What one successful attempt answered, from litellm's response or from a local model given here."""

    text: str
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str | None
    usage: dict[str, int]
    model: str | None = None  # what the provider says served it
    fingerprint: str | None = None
    request_id: str | None = None
    raw: Any = None  # litellm's response, or a server's JSON (pricing reads it); None for a local model

    @classmethod
    def of_json(cls, response: dict[str, Any]) -> _Reply:
        """The same parts of an OpenAI-compatible server's JSON answer (kept whole as ``raw``, for pricing)."""
        choice = response["choices"][0]
        message = choice.get("message") or {}
        given = response.get("usage") or {}
        usage = {k: openai_http.count(given.get(k)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        calls = message.get("tool_calls")
        return cls(
            text=message.get("content") or "",
            tool_calls=[openai_http.tool_call(c) for c in calls] if calls else None,
            finish_reason=openai_http.string(choice.get("finish_reason")),
            usage=usage,
            model=response.get("model"),
            fingerprint=response.get("system_fingerprint"),
            request_id=response.get("id"),
            raw={**response, "usage": {**given, **usage}},  # priced on the counts kept (a server's junk is 0)
        )

    @classmethod
    def of(cls, response: Any) -> _Reply:
        """The parts of a litellm ``ModelResponse`` the workbench keeps."""
        choice = response.choices[0]
        message = choice.message
        usage = getattr(response, "usage", None)
        return cls(
            text=message.content or "",
            tool_calls=[tc.model_dump() for tc in message.tool_calls] if message.tool_calls else None,
            finish_reason=choice.finish_reason,
            usage={
                "prompt_tokens": int(getattr(usage, "prompt_tokens", 0) or 0),
                "completion_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
                "total_tokens": int(getattr(usage, "total_tokens", 0) or 0),
            },
            model=getattr(response, "model", None),
            fingerprint=getattr(response, "system_fingerprint", None),
            request_id=getattr(response, "id", None),
            raw=response,
        )
