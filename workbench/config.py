"""Settings from ``workbench.toml``, ``[tool.workbench]`` in pyproject.toml, and ``WORKBENCH_*``.

Lookup order for the file: an explicit path, ``$WORKBENCH_CONFIG``, then the first
``workbench.toml`` (or ``pyproject.toml`` with a ``[tool.workbench]`` table) in the
current folder or its parents. Relative paths in the file are relative to the
file's folder. Environment variables override the file:

``WORKBENCH_STORE`` (store path), ``WORKBENCH_MODE`` (live|replay),
``WORKBENCH_DEFAULT_ROUTE``.

API keys never appear in the config: a deployment names the environment variable
that holds its key (``api_key_env``).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.errors import ConfigError

Mode = Literal["live", "replay"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """Per-token prices in USD (what litellm's price map calls them)."""

    input_cost_per_token: float = Field(0.0, ge=0)
    output_cost_per_token: float = Field(0.0, ge=0)


_KEYISH = re.compile(r"(?i)key|token|secret|sig|pass|auth|credential")


def shown_url(url: str) -> str:
    """``url`` as it may be shown and stored: a password in it (``https://user:pass@host``) and the values of
    key-like query parameters (``?api-key=...``, ``&sig=...``) as ``***``. Endpoint names and ``%llm_config``
    use it, so a base URL's credentials never reach the store or the screen.
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"{userinfo}@{host}"
    query = parts.query
    if query and _KEYISH.search(query):
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _KEYISH.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class Deployment(_Strict):
    """One place a route can send a request: a litellm model name plus how to reach it."""

    model: str
    name: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    gateway: str | None = None  # a LiteLLM Proxy (http://proxy:4000): model is its model name, api_key_env its key
    timeout: float = Field(60.0, gt=0)
    input_cost_per_token: float | None = Field(None, ge=0)
    output_cost_per_token: float | None = Field(None, ge=0)
    rpm: int | None = Field(None, gt=0)  # requests per minute this deployment allows (enforced before sending)
    tpm: int | None = Field(None, gt=0)  # tokens per minute (prompt + answer budget)
    max_parallel: int | None = Field(None, gt=0)  # requests in flight at once, across every process
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_way_in(self) -> Deployment:
        if self.gateway is not None:
            if self.api_base is not None:
                raise ValueError("a deployment names a gateway or an api_base, not both")
            if not self.gateway.startswith(("http://", "https://")):
                raise ValueError(f"gateway must be an http:// or https:// URL (got {self.gateway!r})")
        return self

    @property
    def label(self) -> str:
        """The name attempts and health tables show."""
        return self.name or self.model

    @property
    def endpoint(self) -> str:
        """Where calls really go: model, base URL and key variable (breakers and health are kept per endpoint).

        Two routes using ``openai/llama`` at different servers, or two replicas of one model in a
        route, are different endpoints: a dead one never makes a healthy one look dead.
        """
        parts = [self.model]
        if self.api_base or self.gateway:
            parts.append(f"@ {shown_url(self.api_base or self.gateway or '')}")
        if self.api_key_env:
            parts.append(f"[{self.api_key_env}]")
        return " ".join(parts)

    @property
    def price(self) -> Price | None:
        """The deployment's own price override, if it sets one."""
        if self.input_cost_per_token is None and self.output_cost_per_token is None:
            return None
        return Price(
            input_cost_per_token=self.input_cost_per_token or 0.0,
            output_cost_per_token=self.output_cost_per_token or 0.0,
        )


class Route(_Strict):
    """An ordered list of deployments tried in turn (failover)."""

    deployments: list[Deployment] = Field(min_length=1)
    retries: int = Field(1, ge=0, le=10)
    max_retry_after: float = Field(10.0, ge=0)
    deadline_s: float = Field(30.0, gt=0)  # how long a call may wait for an open circuit's probe
    cache: bool | None = None  # None: follow [cache].enabled
    policy: Literal["ordered", "cheapest", "fastest", "complexity"] = "ordered"


class Breaker(_Strict):
    """Per-deployment circuit breakers: open after ``failures`` in a row, probe after ``cooldown_s``."""

    failures: int = Field(5, ge=1)
    cooldown_s: float = Field(30.0, gt=0)


class Cache(_Strict):
    """The exact response cache: a repeated request (same fingerprint) within ``ttl_s`` is answered from the store."""

    enabled: bool = False
    ttl_s: float = Field(3600.0, gt=0)
    # with the cache on: also answer a request whose last user message means the same as a recorded one's
    # (cosine similarity at least this, by local/minilm; same route, parameters and earlier messages)
    semantic: float | None = Field(None, gt=0, le=1)


def _regex(value: str) -> str:
    """``value`` if it compiles as a regular expression; else a validation error saying why."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    return value


class ScriptedRule(_Strict):
    """``local/scripted``: a regex on the last message and the reply or tool call it triggers."""

    pattern: str
    reply: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    calls: list[dict[str, Any]] = Field(default_factory=list)  # several tool calls at once: [{tool, arguments}]
    role: Literal["user", "tool"] = "user"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        return _regex(value)

    @model_validator(mode="after")
    def _one_action(self) -> ScriptedRule:
        if sum((self.reply is not None, self.tool is not None, bool(self.calls))) != 1:
            raise ValueError("a rule needs exactly one of 'reply', 'tool' or 'calls'")
        if any("tool" not in c for c in self.calls):
            raise ValueError("each of 'calls' needs a 'tool' (and may have 'arguments')")
        return self


class Scripted(_Strict):
    """Rules for ``local/scripted``: inline, or in a separate TOML file (``file``)."""

    file: Path | None = None
    default: str = "I have no scripted rule for that."
    rules: list[ScriptedRule] = Field(default_factory=list)


class AlertRule(_Strict):
    """A threshold on a recent metric: fires once when crossed, resolves when back under."""

    name: str = Field(min_length=1)
    metric: Literal["error_rate", "p50_latency_ms", "p95_latency_ms", "spend_usd"]
    above: float = Field(ge=0)
    window_s: float = Field(300.0, gt=0)  # the metric is computed over live calls this recent
    min_calls: int = Field(5, ge=1)  # error rate and latency need this many calls in the window
    route: str | None = None  # only calls of this route (default: every call)


class Alerts(_Strict):
    """``[alerts]``: rules, and where to POST a fired or resolved alert."""

    rules: list[AlertRule] = Field(default_factory=list)
    webhook: str | None = None  # a URL; prefer webhook_env when the URL carries a token
    webhook_env: str | None = None  # the environment variable holding the webhook URL


class MemoryWeights(_Strict):
    """How long-term memory ranks: BM25 match, recency (half-life decay) and importance."""

    bm25: float = Field(1.0, ge=0)
    recency: float = Field(0.3, ge=0)
    importance: float = Field(0.3, ge=0)


MemoryKind = Literal["fact", "preference", "episode"]


def _memory_ttls() -> dict[MemoryKind, float]:
    return {"episode": 90.0}


class MemorySettings(_Strict):
    """``[memory]``: ranking, forgetting, deduplication, and what is remembered from a conversation."""

    weights: MemoryWeights = Field(default_factory=MemoryWeights)
    half_life_days: float = Field(30.0, gt=0)  # recency halves every this many days since last use
    ttl_days: dict[MemoryKind, Annotated[float, Field(ge=0, le=36_500)]] = Field(default_factory=_memory_ttls)
    duplicate: float = Field(0.8, gt=0, le=1)  # word overlap at or above: the same memory (updated, not re-added)
    related: float = Field(0.5, gt=0, le=1)  # at or above (under duplicate): same subject, new value (supersedes)
    extract: Literal["none", "rules"] = "none"  # what a conversation writes without --remember
    k: int = Field(5, ge=1)  # memories given to a call that reads a scope
    history_tokens: int | None = Field(None, gt=0)  # a session's history budget (None: unlimited)
    history_overflow: Literal["trim", "summarise"] = "trim"


GuardAction = Literal["block", "redact", "flag", "ask", "quarantine", "off"]
GUARD_STAGES = ("input", "output", "document", "tool_call", "tool_result")
# What each stage can do with a finding (output "block" withholds the answer; it was paid for and is recorded).
GUARD_STAGE_ACTIONS: dict[str, tuple[str, ...]] = {
    "input": ("block", "redact", "flag", "ask", "off"),
    "output": ("block", "redact", "flag", "off"),
    "document": ("quarantine", "redact", "flag", "off"),
    "tool_call": ("block", "ask", "flag", "off"),
    "tool_result": ("block", "quarantine", "redact", "flag", "off"),
}
GUARD_DEFAULTS: dict[str, dict[str, GuardAction]] = {
    "input": {"secrets": "block", "pii": "flag", "max_length": "block", "injection": "block"},
    "output": {"secrets": "redact", "pii": "flag", "leakage": "redact", "sinks": "redact", "exfiltration": "redact"},
    "document": {"injection": "quarantine"},
    "tool_call": {"boundaries": "block", "secrets": "block"},
    "tool_result": {"injection": "quarantine", "secrets": "redact"},
}


class MCPServerConfig(_Strict):
    """``[mcp.servers.NAME]``: a stdio command (``command`` + ``args``) or a streamable-HTTP ``url``."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)  # literal values for the server's environment
    env_pass: list[str] = Field(default_factory=list)  # variables passed through from ours (keys stay out of config)
    url: str | None = None
    timeout_s: float = Field(30.0, gt=0)  # per tool call: a hung server is an error after this long
    connect_timeout_s: float = Field(60.0, gt=0)
    risk: dict[str, Literal["read", "write", "destructive"]] = Field(default_factory=dict)  # per tool; else hints

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        return self


class MCPSettings(_Strict):
    """``[mcp]``: the servers, and how many tools an agent is given at most (a tool search picks them)."""

    servers: dict[str, MCPServerConfig] = Field(default_factory=dict)
    max_tools: int = Field(20, ge=1)


Risk = Literal["read", "write", "destructive"]
ApprovalAction = Literal["approve", "ask", "reject"]


def _approval_defaults() -> dict[Risk, ApprovalAction]:
    return {"read": "approve", "write": "approve", "destructive": "ask"}


class ApprovalRule(_Strict):
    """``[[approvals.rules]]``: tool calls matching all the given conditions get this decision."""

    tool: str = "*"  # glob over tool names: "db.*"
    risk: Literal["read", "write", "destructive"] | None = None
    min_cost_usd: float | None = Field(None, ge=0)  # the run's spend so far at or above this
    flagged: bool | None = None  # true: only calls whose arguments a guardrail flagged (e.g. personal data)
    decision: Literal["approve", "ask", "reject"]


class ApprovalSettings(_Strict):
    """``[approvals]``: which tool calls need a human; pending approvals expire after ``expire_s``."""

    rules: list[ApprovalRule] = Field(default_factory=list)  # first match wins
    default: dict[Risk, ApprovalAction] = Field(default_factory=_approval_defaults)
    expire_s: float = Field(86_400.0, gt=0)
    approvers: list[str] = Field(default_factory=list)  # when set, only these people may decide (and be escalated to)

    @field_validator("default", mode="before")
    @classmethod
    def _merge_default(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {"read": "approve", "write": "approve", "destructive": "ask", **value}
        return value


class GuardRule(_Strict):
    """``[[guardrails.rules]]``: a regex or keyword list checked at a stage, with its own action."""

    name: str = Field(min_length=1)
    stage: Literal["input", "output"] = "output"
    regex: str | None = None
    keywords: list[str] = Field(default_factory=list)  # whole words or phrases, any case
    min_hits: int = Field(1, ge=1)  # a topic: this many of the keywords must appear
    action: Literal["block", "redact", "flag"] = "flag"

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return value if value is None else _regex(value)

    @model_validator(mode="after")
    def _one_matcher(self) -> GuardRule:
        if (self.regex is None) == (not self.keywords):
            raise ValueError("a rule needs exactly one of 'regex' or 'keywords'")
        return self


class ArgumentRule(_Strict):
    """``[[guardrails.tools.arguments]]``: check one argument of the tools matching a glob."""

    tool: str = Field(min_length=1)  # glob: "db.*"
    argument: str = Field(min_length=1)
    check: str = Field(min_length=1)  # read_only_sql | path | url | a registered check


class ToolBoundaries(_Strict):
    """``[guardrails.tools]``: allowlists (globs), argument checks, and a cap on destructive calls."""

    allow: list[str] = Field(default_factory=lambda: ["*"])
    agents: dict[str, list[str]] = Field(default_factory=dict)  # agent name -> its allowlist
    sessions: dict[str, list[str]] = Field(default_factory=dict)  # session name -> its allowlist
    arguments: list[ArgumentRule] = Field(default_factory=list)
    paths: list[Path] = Field(default_factory=list)  # roots for check = "path" (relative to the project)
    urls: list[str] = Field(default_factory=list)  # patterns for check = "url": "https://api.example.com/*"
    max_destructive: int | None = Field(None, ge=0)  # destructive tool calls allowed per session


class GuardBreaker(_Strict):
    """``[guardrails.breaker]``: this many violations within the window lock a session or agent."""

    violations: int = Field(3, ge=0)  # 0: never lock
    window_s: float = Field(600.0, gt=0)


class GuardrailSettings(_Strict):
    """``[guardrails]``: what each scanner does at each stage, and the guardrails' own settings.

    A stage table names scanners and actions; it is merged over the defaults, so
    ``[guardrails.input] pii = "redact"`` changes only that scanner (``"off"`` turns one off).
    """

    input: dict[str, GuardAction] = Field(default_factory=lambda: dict(GUARD_DEFAULTS["input"]))
    output: dict[str, GuardAction] = Field(default_factory=lambda: dict(GUARD_DEFAULTS["output"]))
    document: dict[str, GuardAction] = Field(default_factory=lambda: dict(GUARD_DEFAULTS["document"]))
    tool_call: dict[str, GuardAction] = Field(default_factory=lambda: dict(GUARD_DEFAULTS["tool_call"]))
    tool_result: dict[str, GuardAction] = Field(default_factory=lambda: dict(GUARD_DEFAULTS["tool_result"]))
    quarantine: Literal["fence", "drop"] = "fence"  # what quarantining a document chunk or tool result does
    injection_threshold: float = Field(0.5, gt=0, le=1)
    semantic_threshold: float = Field(0.5, gt=0, le=1)
    canary: bool = True  # put a canary token in system prompts, so a leaked one is recognised
    max_input_chars: int = Field(100_000, gt=0)
    max_tool_result_chars: int = Field(100_000, gt=0)  # a longer tool result is cut (and says so) before anything
    rules: list[GuardRule] = Field(default_factory=list)
    tools: ToolBoundaries = Field(default_factory=ToolBoundaries)
    breaker: GuardBreaker = Field(default_factory=GuardBreaker)

    @model_validator(mode="before")
    @classmethod
    def _merge_stages(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for stage in GUARD_STAGES:
                if isinstance(data.get(stage), dict):
                    data[stage] = {**GUARD_DEFAULTS[stage], **data[stage]}
        return data

    @model_validator(mode="after")
    def _actions_fit_stages(self) -> GuardrailSettings:
        for stage in GUARD_STAGES:
            for scanner, action in getattr(self, stage).items():
                if action not in GUARD_STAGE_ACTIONS[stage]:
                    raise ValueError(
                        f"{stage}.{scanner}: the {stage} stage can't {action!r}; "
                        f"use one of {', '.join(GUARD_STAGE_ACTIONS[stage])}"
                    )
        return self


class Retention(_Strict):
    """``[retention]``: how long call bodies are kept (``workbench store compact`` uses it by default)."""

    older_than: str = "30d"  # prompts, requests, answers and spans of calls older than this are removed


class OTelSettings(_Strict):
    """``[otel]``: stream spans to an OTLP/HTTP collector as they are written (the ``otel`` extra)."""

    endpoint: str | None = None  # e.g. http://127.0.0.1:4318 (Phoenix: http://127.0.0.1:6006)
    headers_env: str | None = None  # a variable holding "key=value,key2=value2" headers (tokens stay out of files)
    capture_content: bool = False  # also send prompts and answers (scrubbed of secrets)
    service_name: str = "workbench"


class ImageSettings(_Strict):
    """Limits on the images a call sends (``[images]``)."""

    max_mb: float = Field(20.0, gt=0)  # one image
    max_call_mb: float = Field(50.0, gt=0)  # all of one call's images together
    vision: list[str] = Field(default_factory=list)  # models to treat as seeing images, beyond what litellm knows


class TeamSettings(_Strict):
    """``[team]``: limits shared with a team through Redis (budgets, rate limits, the kill switch, breakers).

    Without ``redis_url`` nothing is shared and every limit lives in this store, as before.
    """

    redis_url: str | None = None  # redis://host:6379/0 (a password: put it in password_env, not here)
    name: str = Field("team", pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # keys are prefixed wb:NAME: on the server
    password_env: str | None = None  # a variable holding the Redis password
    budgets_when_down: Literal["closed", "local"] = "closed"  # closed: refuse calls; local: this store's budgets
    limits_when_down: Literal["local", "closed"] = "local"  # rate limits and breakers: this process's state
    timeout_s: float = Field(2.0, gt=0)  # each Redis command, before the server counts as down


class Settings(_Strict):
    """Everything the runtime needs to know, validated."""

    store: Path = Path(".workbench/workbench.db")
    mode: Mode = "live"
    default_route: str = "local/echo"
    embedding_model: str = "local/minilm"  # what wb.embed uses without model= (a route or a litellm embedding model)
    routes: dict[str, Route] = Field(default_factory=dict)
    prices: dict[str, Price] = Field(default_factory=dict)
    scripted: Scripted = Field(default_factory=Scripted)
    cache: Cache = Field(default_factory=Cache)
    breaker: Breaker = Field(default_factory=Breaker)
    alerts: Alerts = Field(default_factory=Alerts)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    guardrails: GuardrailSettings = Field(default_factory=GuardrailSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    mcp: MCPSettings = Field(default_factory=MCPSettings)
    retention: Retention = Field(default_factory=Retention)
    otel: OTelSettings = Field(default_factory=OTelSettings)
    contexts: Path = Path("contexts")  # where context specs (NAME.yaml / NAME.toml) live
    retrieval: Literal["bm25", "hybrid"] = "bm25"  # hybrid: + sentence embeddings (the embeddings extra)
    max_value_tokens: int = Field(2000, ge=50)  # each {value} in a %%llm cell (a DataFrame, Out[n]) at most this
    images: ImageSettings = Field(default_factory=ImageSettings)
    team: TeamSettings = Field(default_factory=TeamSettings)
    source: Path | None = None
    root: Path = Field(default_factory=Path.cwd)

    def price_for(self, deployment: Deployment) -> Price | None:
        """A deployment's configured price: its own override, else ``[prices]`` for its model."""
        return deployment.price or self.prices.get(deployment.model)


_ENV = {
    "WORKBENCH_STORE": "store",
    "WORKBENCH_MODE": "mode",
    "WORKBENCH_DEFAULT_ROUTE": "default_route",
}


def find_config(start: Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """Locate the config file and return it with its workbench table (empty if none)."""
    env_path = os.environ.get("WORKBENCH_CONFIG")
    if env_path:
        path = Path(env_path)
        if not path.is_file():
            raise ConfigError(f"WORKBENCH_CONFIG={env_path}: no such file; point it at a workbench.toml")
        return path, _read_table(path)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "workbench.toml"
        if candidate.is_file():
            return candidate, _read_table(candidate)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _read_toml(pyproject).get("tool", {}).get("workbench")
            if table is not None:
                return pyproject, table
    return None, {}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix the syntax there") from None
    except UnicodeDecodeError:
        head = path.read_bytes()[:4]
        utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head
        raise ConfigError(
            f"{path} is not UTF-8 text{' (it looks like UTF-16)' if utf16 else ''}: save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _read_table(path: Path) -> dict[str, Any]:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        return data.get("tool", {}).get("workbench", {})
    return data


def load_settings(
    path: str | os.PathLike[str] | None = None, *, start: Path | None = None, **overrides: Any
) -> Settings:
    """Read, merge (file < environment < keyword overrides) and validate the settings.

    Without ``path``, the config is looked for from ``start`` (default: the current folder) up.
    """
    source: Path | None
    if path is not None:
        given = Path(path)
        if not given.is_file():
            raise ConfigError(f"{path}: no such config file; pass the path of a workbench.toml")
        source, table = given, _read_table(given)
    else:
        source, table = find_config(start)
    data = dict(table)
    origin = {key: str(source) for key in data}
    for env_name, key in _ENV.items():
        if os.environ.get(env_name):
            data[key] = os.environ[env_name]
            origin[key] = env_name
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
            origin[key] = "arguments"
    root = source.parent.resolve() if source else (start or Path.cwd()).resolve()
    data["source"], data["root"] = source, root
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, origin, source)) from None
    updates: dict[str, Any] = {}
    if not settings.store.is_absolute():
        updates["store"] = root / settings.store
    if not settings.contexts.is_absolute():
        updates["contexts"] = root / settings.contexts
    scripted = settings.scripted
    if scripted.file is not None:
        rules_path = scripted.file if scripted.file.is_absolute() else root / scripted.file
        updates["scripted"] = _load_scripted(rules_path, scripted)
    return settings.model_copy(update=updates) if updates else settings


def _load_scripted(path: Path, inline: Scripted) -> Scripted:
    if not path.is_file():
        raise ConfigError(f"scripted.file: {path} does not exist; create it or drop the key")
    table = _read_toml(path)
    try:
        from_file = Scripted.model_validate({**table, "file": path})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, {}, path)) from None
    return Scripted(
        file=path,
        default=table.get("default", inline.default),
        rules=[*inline.rules, *from_file.rules],
    )


def _one_line(exc: ValidationError, origin: dict[str, str], source: Path | None) -> str:
    err = exc.errors()[0]
    loc = err["loc"]
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    where = origin.get(str(loc[0]) if loc else "", str(source) if source else "settings")
    got = err.get("input")
    got_text = "" if err["type"] == "missing" or isinstance(got, dict) else f" (got {got!r})"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {key}: {message}{got_text}"
