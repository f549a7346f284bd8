"""The rows one call writes, as typed records: a misspelled key is a type error, and a runtime error.

The column lists of ``calls`` and ``attempts`` are these records' keys, so the schema the code
writes is stated once (the migrations create the same columns).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, TypedDict

CallStatus = Literal["ok", "error", "refused", "interrupted"]
AttemptStatus = Literal["ok", "error", "skipped", "interrupted"]


def spent(alias: str = "") -> str:
    """SQL true for a call whose cost counts (in budgets, costs, spend totals): a live one that was answered, or
    stopped by its caller while the answer streamed (what streamed was billed). ``alias``: ``"c."``, ``"NEW."``.
    """
    return f"{alias}status IN ('ok', 'interrupted') AND {alias}mode = 'live'"


class CallRow(TypedDict, total=False):
    """One row of ``calls``: what was asked, how it was served, what it cost."""

    id: str
    trace_id: str
    session: str | None
    started_at: str
    mode: str
    replay_of: str | None
    route: str
    model: str | None
    deployment: str | None
    status: CallStatus
    error: str | None
    prompt: str
    request: str
    fingerprint: str
    text: str | None
    tool_calls: str | None  # JSON list, when the model asked for tools
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    cost_usd: float | None
    latency_ms: float
    ttft_ms: float | None
    stream: int
    cache_hit: int
    user: str | None
    task: str | None
    agent: str | None
    cached_from: str | None
    saved_usd: float | None
    gateway_cost_usd: float | None  # what a LiteLLM Proxy gateway reported it cost (x-litellm-response-cost)
    routing: str | None  # JSON: why this deployment (rate-limit waits, breakers, fallbacks)
    context_spec: str | None
    context_version: str | None
    context_plan: str | None  # JSON: the budgeted context plan
    grounding: float | None


class AttemptRow(TypedDict, total=False):
    """One row of ``attempts``: one try of one deployment for a call."""

    call_id: str
    n: int
    deployment: str
    model: str
    status: AttemptStatus
    error_class: str | None
    error: str | None
    status_code: int | None
    retry_after: float | None
    started_at: str
    latency_ms: float
    endpoint: str | None
    response_model: str | None
    system_fingerprint: str | None
    request_id: str | None


CALL_COLUMNS: tuple[str, ...] = tuple(CallRow.__annotations__)
ATTEMPT_COLUMNS: tuple[str, ...] = tuple(AttemptRow.__annotations__)
_CALL_KEYS, _ATTEMPT_KEYS = frozenset(CALL_COLUMNS), frozenset(ATTEMPT_COLUMNS)


def check_keys(table: str, keys: Iterable[str]) -> None:
    """Refuse a row with a key that is not a column (a typo would otherwise be dropped silently)."""
    known = _CALL_KEYS if table == "calls" else _ATTEMPT_KEYS
    unknown = sorted(set(keys) - known)
    if unknown:
        raise KeyError(f"{table} has no column {unknown[0]!r}: the columns are workbench.store.records' {table} record")
