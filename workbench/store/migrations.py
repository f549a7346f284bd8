"""Named, append-only schema migrations (applied names are kept in ``_migrations``).

Never edit a migration that has shipped: add a new ``@migration`` function ``mNNN_what``
at the end instead (the decorator refuses a number out of sequence).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from workbench.store.records import spent

if TYPE_CHECKING:  # sqlite-utils imports pandas and numpy (~0.35 s): loaded only when a store needs migrating
    import sqlite_utils

Migration = Callable[["sqlite_utils.Database"], None]

MIGRATIONS: list[Migration] = []


def migration(func: Migration) -> Migration:
    """Register ``func`` as the next migration; its name must be ``mNNN_...`` with NNN one more than the last."""
    number = len(MIGRATIONS) + 1
    if not func.__name__.startswith(f"m{number:03d}_"):
        raise RuntimeError(f"migration {func.__name__} is out of sequence: the next one is m{number:03d}_...")
    MIGRATIONS.append(func)
    return func


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    """Sessions, calls with their attempts and spans, and the hash-chained audit log."""
    db.table("sessions").create(
        {
            "name": str,
            "created_at": str,
            "history_from": str,  # calls before this instant are not part of the history
            "state": str,  # JSON object: small key-value state
        },
        pk="name",
    )
    db.table("calls").create(
        {
            "id": str,
            "trace_id": str,
            "session": str,
            "started_at": str,
            "mode": str,  # live | replay
            "replay_of": str,  # in replay mode (or a re-run), the recorded call it reproduces
            "route": str,
            "model": str,  # the model that actually answered
            "deployment": str,
            "status": str,  # ok | error
            "error": str,
            "prompt": str,
            "request": str,  # JSON: final messages + output-affecting params
            "fingerprint": str,
            "text": str,
            "tool_calls": str,  # JSON list, when the model asked for tools
            "finish_reason": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "total_tokens": int,
            "cost_usd": float,
            "latency_ms": float,
            "ttft_ms": float,
            "stream": int,
            "cache_hit": int,
            "user": str,
            "task": str,
        },
        pk="id",
    )
    db.table("calls").create_index(["fingerprint"])
    db.table("calls").create_index(["session", "started_at"])
    db.table("calls").create_index(["started_at"])
    db.table("attempts").create(
        {
            "id": int,
            "call_id": str,
            "n": int,
            "deployment": str,
            "model": str,
            "status": str,  # ok | error | skipped
            "error_class": str,
            "error": str,
            "status_code": int,
            "retry_after": float,
            "started_at": str,
            "latency_ms": float,
        },
        pk="id",
    )
    db.table("attempts").create_index(["call_id"])
    db.table("attempts").create_index(["deployment", "id"])
    db.table("spans").create(
        {
            "span_id": str,
            "trace_id": str,
            "parent_id": str,
            "call_id": str,
            "name": str,
            "start_ns": int,
            "end_ns": int,
            "status": str,
            "attributes": str,
        },
        pk="span_id",
    )
    db.table("spans").create_index(["trace_id"])
    db.table("audit").create(
        {
            "id": int,
            "ts": str,
            "kind": str,
            "ref": str,
            "payload": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="id",
    )


@migration
def m002_replay_lookup_index(db: sqlite_utils.Database) -> None:
    """Replay picks the newest recorded call per fingerprint: index both, not only the fingerprint.

    A notebook run live many times records many calls with one fingerprint; without
    ``started_at`` in the index every replayed call sorted all of them.
    """
    db.execute("DROP INDEX IF EXISTS idx_calls_fingerprint")
    db.table("calls").create_index(["fingerprint", "started_at"])


@migration
def m003_cost_control(db: sqlite_utils.Database) -> None:
    """Cost control: agent attribution, cache provenance, budgets, reservations, switches.

    A reservation holds a call's worst-case cost against every budget that covers it
    from before the call is sent until its real cost is recorded (then it is deleted).
    """
    db.table("calls").add_column("agent", str)
    db.table("calls").add_column("cached_from", str)  # the recorded call a cache hit reused
    db.table("calls").add_column("saved_usd", float)  # what a cache hit did not spend
    db.table("budgets").create(
        {
            "id": int,
            "scope": str,
            "key": str,
            "period": str,
            "limit_usd": float,
            "limit_tokens": int,
            "thresholds": str,
            "created_at": str,
        },
        pk="id",
    )
    db.table("budgets").create_index(["scope", "key", "period"], unique=True)
    db.table("reservations").create(
        {
            "call_id": str,
            "user": str,
            "task": str,
            "agent": str,
            "session": str,
            "usd": float,
            "tokens": int,
            "created_at": str,
        },
        pk="call_id",
    )
    db.table("budget_events").create(
        {
            "id": int,
            "budget_id": int,
            "threshold": float,
            "period_start": str,
            "spent_usd": float,
            "spent_tokens": int,
            "at": str,
        },
        pk="id",
    )
    db.table("budget_events").create_index(["budget_id", "threshold", "period_start"], unique=True)
    db.table("switches").create({"name": str, "active": int, "reason": str, "at": str}, pk="name")


@migration
def m004_routing_decision(db: sqlite_utils.Database) -> None:
    """Record which order a routing policy chose for a call, and why."""
    db.table("calls").add_column("routing", str)


@migration
def m005_rate_limits(db: sqlite_utils.Database) -> None:
    """Per-deployment rate-limit slots (GCRA theoretical arrival times), shared by every process."""
    db.table("rate_state").create({"deployment": str, "tat_req": float, "tat_tok": float}, pk="deployment")


@migration
def m006_rate_queue(db: sqlite_utils.Database) -> None:
    """The shared queue of calls waiting for a deployment (by priority), and leases of requests in flight."""
    db.table("rate_waiters").create(
        {"id": int, "deployment": str, "priority": int, "enqueued": float, "expires": float}, pk="id"
    )
    db.table("rate_waiters").create_index(["deployment", "priority", "id"])
    db.table("rate_leases").create({"id": int, "deployment": str, "expires": float}, pk="id")
    db.table("rate_leases").create_index(["deployment"])


@migration
def m007_alerts(db: sqlite_utils.Database) -> None:
    """Alerts that fired or resolved, and whether their webhook took them."""
    db.table("alerts").create(
        {
            "id": int,
            "rule": str,
            "event": str,
            "metric": str,
            "value": float,
            "above": float,
            "window_s": float,
            "route": str,
            "at": str,
            "call_id": str,
            "delivery": str,
        },
        pk="id",
    )
    db.table("alerts").create_index(["rule", "id"])


@migration
def m008_context_and_memory(db: sqlite_utils.Database) -> None:
    """Document chunks and long-term memories (each with FTS5), and what context each call was given."""
    db.table("documents").create(
        {"id": str, "collection": str, "source": str, "n": int, "text": str, "tokens": int, "added_at": str}, pk="id"
    )
    db.table("documents").create_index(["collection", "source"])
    db.table("documents").enable_fts(["text"], create_triggers=True, tokenize="porter")
    db.table("memories").create(
        {
            "id": str,
            "scope": str,
            "kind": str,
            "text": str,
            "importance": float,
            "created_at": str,
            "updated_at": str,
            "accessed_at": str,
            "access_count": int,
            "expires_at": str,
            "status": str,
            "supersedes": str,
            "superseded_by": str,
            "source_call": str,
        },
        pk="id",
    )
    db.table("memories").create_index(["scope", "status"])
    db.table("memories").enable_fts(["text"], create_triggers=True, tokenize="porter")
    for column in ("context_spec", "context_version", "context_plan"):
        db.table("calls").add_column(column, str)
    db.table("calls").add_column("grounding", float)


@migration
def m009_embeddings(db: sqlite_utils.Database) -> None:
    """Sentence embeddings (float32 bytes) of chunks and memories, for hybrid retrieval."""
    db.table("documents").add_column("vector", bytes)
    db.table("memories").add_column("vector", bytes)


@migration
def m010_guard_events(db: sqlite_utils.Database) -> None:
    """What the guardrails found (kinds and spans, never the text), by call and session."""
    db.table("guard_events").create(
        {
            "id": int,
            "at": str,
            "call_id": str,
            "session": str,
            "stage": str,
            "scanner": str,
            "action": str,
            "findings": str,
        },
        pk="id",
    )
    db.table("guard_events").create_index(["session", "id"])
    db.table("guard_events").create_index(["call_id"])


@migration
def m011_guardrails(db: sqlite_utils.Database) -> None:
    """Guard events by agent, with a score, the item screened and a decision; circuit-breaker locks."""
    for column, kind in (("agent", str), ("score", float), ("ref", str), ("detail", str)):
        db.table("guard_events").add_column(column, kind)
    db.table("guard_events").create_index(["agent", "id"])
    db.table("guard_locks").create(
        {"key": str, "locked_at": str, "violations": int, "reset_at": str, "reset_by": str}, pk="key"
    )


@migration
def m012_agents_and_approvals(db: sqlite_utils.Database) -> None:
    """Agent runs (their messages, so a parked run resumes), their tool calls, and approvals."""
    db.table("agent_runs").create(
        {
            "id": str,
            "agent": str,
            "task": str,
            "status": str,
            "model": str,
            "session": str,
            "user": str,
            "messages": str,
            "tools": str,
            "steps": int,
            "cost_usd": float,
            "answer": str,
            "stop_reason": str,
            "waiting_on": str,
            "started_at": str,
            "finished_at": str,
            "max_steps": int,
            "budget": float,
            "system": str,
        },
        pk="id",
    )
    db.table("tool_calls").create(
        {
            "id": str,
            "run_id": str,
            "step": int,
            "call_id": str,
            "tool": str,
            "risk": str,
            "arguments": str,
            "status": str,
            "result": str,
            "error": str,
            "started_at": str,
            "latency_ms": float,
        },
        pk="id",
    )
    db.table("tool_calls").create_index(["run_id", "step"])
    db.table("approvals").create(
        {
            "id": str,
            "created_at": str,
            "expires_at": str,
            "status": str,
            "tool": str,
            "risk": str,
            "arguments": str,
            "reason": str,
            "session": str,
            "agent": str,
            "run_id": str,
            "tool_call_id": str,
            "decided_by": str,
            "decided_at": str,
            "decision_reason": str,
            "final_arguments": str,
        },
        pk="id",
    )
    db.table("approvals").create_index(["status", "created_at"])
    db.table("mcp_pins").create(
        {
            "name": str,
            "server": str,
            "hash": str,
            "definition": str,
            "first_seen": str,
            "status": str,
            "changed_hash": str,
            "changed_definition": str,
            "changed_at": str,
            "approved_by": str,
        },
        pk="name",
    )


@migration
def m013_workflows(db: sqlite_utils.Database) -> None:
    """Workflow runs and every step's (and branch's) checkpointed result."""
    db.table("workflow_runs").create(
        {"id": str, "workflow": str, "status": str, "inputs": str, "error": str, "started_at": str, "finished_at": str},
        pk="id",
    )
    db.table("workflow_steps").create(
        {
            "run_id": str,
            "step": str,
            "status": str,
            "result": str,
            "attempts": int,
            "latency_ms": float,
            "error": str,
            "started_at": str,
            "finished_at": str,
        },
        pk=("run_id", "step"),
    )


@migration
def m014_audit_and_evals(db: sqlite_utils.Database) -> None:
    """The audit chain's head and compaction checkpoints; eval runs and their per-case results."""
    db.table("audit_head").create({"k": int, "id": int, "hash": str}, pk="k")
    last = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    if last:
        db.execute("INSERT INTO audit_head (k, id, hash) VALUES (1, ?, ?)", last)
    db.table("audit_checkpoints").create(
        {"id": int, "at": str, "before": str, "last_id": int, "last_hash": str, "entries": int}, pk="id"
    )
    db.table("audit").create_index(["ts"])
    db.table("eval_runs").create(
        {
            "id": str,
            "suite": str,
            "suite_hash": str,
            "model": str,
            "context": str,
            "repeats": int,
            "cases": int,
            "status": str,
            "started_at": str,
            "finished_at": str,
            "summary": str,
            "cost_usd": float,
        },
        pk="id",
    )
    db.table("eval_runs").create_index(["suite", "started_at"])
    db.table("eval_results").create(
        {
            "run_id": str,
            "case_id": str,
            "repeat": int,
            "scorer": str,
            "score": float,
            "passed": int,
            "detail": str,
            "output": str,
            "call_id": str,
            "latency_ms": float,
            "cost_usd": float,
        },
        pk=("run_id", "case_id", "repeat", "scorer"),
    )
    db.execute("ALTER TABLE calls ADD COLUMN compacted_at TEXT")


@migration
def m015_agent_remember(db: sqlite_utils.Database) -> None:
    """Whether a parked agent run writes what it learned to memory when it is resumed and finishes;
    audit entries by kind (the last config entry, a spec version, is found without a scan).
    """
    db.execute("ALTER TABLE agent_runs ADD COLUMN remember INTEGER")
    db.execute("CREATE INDEX IF NOT EXISTS audit_kind ON audit (kind, ref, id)")


@migration
def m016_feedback(db: sqlite_utils.Database) -> None:
    """Ratings of answers (up / down and a note), by call."""
    db.table("feedback").create({"id": int, "call_id": str, "rating": int, "note": str, "by": str, "at": str}, pk="id")
    db.table("feedback").create_index(["call_id"])


@migration
def m017_guarantees(db: sqlite_utils.Database) -> None:
    """Exactly-once tool calls and runs, escalation, an audit log that binds the rows it audits.

    A run (agent or workflow) is continued by one owner at a time and a tool call is claimed
    (``running``) before it runs, so concurrent resumes execute it once. ``audit_carry`` keeps
    the row digests of audit entries that compaction removed (their entry is the latest
    ``carry`` one); ``audit_head.mac`` is keyed, so a cut-off tail can't be hidden by
    rewriting the head. ``audit_state`` says whether rows written before binding existed
    still need adopting into the log.
    """
    for column in ("escalated_to", "execution", "executed_by", "executed_at"):
        db.execute(f"ALTER TABLE approvals ADD COLUMN {column} TEXT")
    db.execute("ALTER TABLE tool_calls ADD COLUMN claimed_by TEXT")
    db.execute("ALTER TABLE tool_calls ADD COLUMN compacted_at TEXT")
    db.execute("ALTER TABLE agent_runs ADD COLUMN owner TEXT")
    db.execute("ALTER TABLE workflow_runs ADD COLUMN owner TEXT")
    db.execute("ALTER TABLE audit_head ADD COLUMN mac TEXT")
    db.execute("ALTER TABLE audit_head ADD COLUMN key_id TEXT")
    db.execute(
        "CREATE TABLE audit_carry (tbl TEXT NOT NULL, key TEXT NOT NULL, entry INTEGER, digest TEXT, "
        "PRIMARY KEY (tbl, key))"
    )
    db.execute("CREATE TABLE audit_state (k TEXT PRIMARY KEY, v TEXT)")
    has_rows = db.execute("SELECT EXISTS (SELECT 1 FROM audit)").fetchone()[0]
    if has_rows:
        db.execute("INSERT INTO audit_state (k, v) VALUES ('adopt', 'pending')")
    for column in ("response_model", "system_fingerprint", "request_id", "endpoint"):
        db.execute(f"ALTER TABLE attempts ADD COLUMN {column} TEXT")
    db.execute("ALTER TABLE eval_runs ADD COLUMN served TEXT")  # the model versions that answered, as providers said


@migration
def m018_budget_since(db: sqlite_utils.Database) -> None:
    """A budget may count spend from an instant (``since``) instead of from its period's start; the response
    cache can be cleared (for a route, or ``*`` for all): calls recorded before the clear no longer answer.
    """
    db.execute("ALTER TABLE budgets ADD COLUMN since TEXT")
    db.table("cache_clears").create({"route": str, "at": str}, pk="route")


@migration
def m019_tool_call_approval(db: sqlite_utils.Database) -> None:
    """The approval a tool call waits on (or ran under) gets its own column; older versions kept it as JSON in
    ``error``. Rows written before stay as they are (their audit digests bind them), and are read both ways.
    """
    db.execute("ALTER TABLE tool_calls ADD COLUMN approval_id TEXT")


@migration
def m020_blobs(db: sqlite_utils.Database) -> None:
    """Images a call sent, stored once each by their content's sha256 (a request names them by it)."""
    db.execute(
        "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, mime TEXT NOT NULL, width INTEGER, height INTEGER, "
        "bytes INTEGER NOT NULL, data BLOB, first_call TEXT, created_at TEXT NOT NULL, compacted_at TEXT)"
    )


@migration
def m021_prompt_vectors(db: sqlite_utils.Database) -> None:
    """What the semantic cache compares: each answered call's last user message as a vector, keyed by what
    else the request held (route, parameters, earlier messages).
    """
    db.execute(
        "CREATE TABLE prompt_vectors (call_id TEXT PRIMARY KEY, route TEXT NOT NULL, context TEXT NOT NULL, "
        "vector BLOB NOT NULL, at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX prompt_vectors_context ON prompt_vectors (context, at)")


@migration
def m022_gateway_cost(db: sqlite_utils.Database) -> None:
    """What a LiteLLM Proxy gateway reported a call cost, beside the workbench's own estimate (``cost_usd``)."""
    db.execute("ALTER TABLE calls ADD COLUMN gateway_cost_usd REAL")


# The scopes a budget can have, and the column of ``calls`` that keys each ('' for global).
_SCOPE_KEYS = (("global", "''"), ("user", '"user"'), ("task", "task"), ("agent", "agent"), ("session", "session"))
# The rows a call (``NEW`` or ``OLD`` in a trigger) adds to the hourly totals or takes back: one per scope
# it is attributed to, the cost and tokens of each live call whose cost counts (``spent``) added to its hour.
_SCOPES_OF = " UNION ALL ".join(
    f"SELECT '{scope}' AS scope, {key if scope == 'global' else '{c}.' + key} AS key" for scope, key in _SCOPE_KEYS
)
_ADD = (
    "INSERT INTO spend (scope, key, hour, usd, tokens, calls) SELECT scope, key, substr(NEW.started_at, 1, 13), "
    "COALESCE(NEW.cost_usd, 0), COALESCE(NEW.total_tokens, 0), 1 FROM ({scopes}) "
    f"WHERE key IS NOT NULL AND {spent('NEW.')} "
    "ON CONFLICT (scope, key, hour) DO UPDATE SET usd = usd + excluded.usd, tokens = tokens + excluded.tokens, "
    "calls = calls + 1;"
).format(scopes=_SCOPES_OF.format(c="NEW"))
_TAKE_BACK = (
    "UPDATE spend SET usd = usd - COALESCE(OLD.cost_usd, 0), tokens = tokens - COALESCE(OLD.total_tokens, 0), "
    f"calls = calls - 1 WHERE {spent('OLD.')} AND hour = substr(OLD.started_at, 1, 13) "
    "AND (scope, key) IN ({scopes});"
).format(scopes=_SCOPES_OF.format(c="OLD"))
_TOTALS_OF = (  # one scope's share of every live call whose cost counts: what the totals must add up to
    "SELECT '{scope}' AS scope, {key} AS key, substr(started_at, 1, 13) AS hour, COALESCE(cost_usd, 0) AS usd, "
    f"COALESCE(total_tokens, 0) AS tokens, 1 AS calls FROM calls WHERE {spent()} "
    "AND {key} IS NOT NULL"
)


@migration
def m023_spend_totals(db: sqlite_utils.Database) -> None:
    """Spend per scope and hour, kept by triggers on ``calls``, so a budget's check reads a few dozen rows
    instead of summing every call of its period (a day of heavy use made each budgeted call seconds slower).

    The totals always equal the sum over the live ``ok`` calls: an inserted call adds to them, a deleted
    one (retention) takes back, an edit to what is summed does both, in the writer's own transaction.
    """
    db.execute(
        "CREATE TABLE spend (scope TEXT NOT NULL, key TEXT NOT NULL, hour TEXT NOT NULL, usd REAL NOT NULL, "
        "tokens INTEGER NOT NULL, calls INTEGER NOT NULL, PRIMARY KEY (scope, key, hour)) WITHOUT ROWID"
    )
    each = " UNION ALL ".join(_TOTALS_OF.format(scope=scope, key=key) for scope, key in _SCOPE_KEYS)
    db.execute(
        "INSERT INTO spend (scope, key, hour, usd, tokens, calls) "
        f"SELECT scope, key, hour, SUM(usd), SUM(tokens), SUM(calls) FROM ({each}) GROUP BY 1, 2, 3"
    )
    _spend_triggers(db)


@migration
def m024_call_window_index(db: sqlite_utils.Database) -> None:
    """The index on ``calls.started_at`` also holds what an alert rule sums over its window (mode, status,
    route, cost, latency), so a check reads the index alone: with 15,000 calls in a rule's 300 s window,
    three rules cost a call 60 ms reading the rows, 23 ms reading the index.
    """
    db.execute("DROP INDEX IF EXISTS idx_calls_started_at")
    db.execute("CREATE INDEX idx_calls_started_at ON calls (started_at, mode, status, route, cost_usd, latency_ms)")


@migration
def m025_bind_eval_runs(db: sqlite_utils.Database) -> None:
    """Audit entries bind eval runs and their scores too (what a regression gate compares with): in a store
    that already has a log, the rows written before are adopted into it by the next write (``adopt_tables``).
    """
    _adopt_later(db, "eval_runs", "eval_results")


@migration
def m026_interrupted_calls_spend(db: sqlite_utils.Database) -> None:
    """A call its caller stopped while the answer streamed (``interrupted``) cost what streamed: the spend totals
    count it as they count an answered one (the triggers again, with that in what they sum).
    """
    for name in SPEND_TRIGGERS:
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    _spend_triggers(db)


@migration
def m027_bind_attempts(db: sqlite_utils.Database) -> None:
    """Audit entries bind a call's attempts too (which deployment answered, and the model version the provider
    reported): in a store that already has a log, the attempts written before are adopted by the next write.
    """
    _adopt_later(db, "attempts")


@migration
def m028_bind_memories(db: sqlite_utils.Database) -> None:
    """Audit entries bind long-term memories too (what a model is given as what the user said or prefers): in a
    store that already has a log, the memories written before are adopted by the next write.
    """
    _adopt_later(db, "memories")


@migration
def m029_audit_call_session_index(db: sqlite_utils.Database) -> None:
    """The calls the audit log recorded for a session, by an index: a session's history and its replay check
    that none of them was deleted from ``calls`` (an entry names its call and session in its payload).
    """
    db.execute(
        "CREATE INDEX IF NOT EXISTS audit_call_session ON audit (json_extract(payload, '$.session'), ts) "
        "WHERE kind = 'call'"
    )


@migration
def m030_fewer_indexes_per_call(db: sqlite_utils.Database) -> None:
    """Fewer index pages a recorded call writes: ``attempts (deployment, id)`` goes (no query reads attempts by
    deployment), and a call without a session (most calls) no longer has an entry in the two indexes that find a
    session's calls and the audit entries recording them; every query of those asks for one session by name.
    """
    db.execute("DROP INDEX IF EXISTS idx_attempts_deployment_id")
    db.execute("DROP INDEX IF EXISTS idx_calls_session_started_at")
    db.execute(
        'CREATE INDEX idx_calls_session_started_at ON calls ("session", "started_at") WHERE "session" IS NOT NULL'
    )
    db.execute("DROP INDEX IF EXISTS audit_call_session")
    db.execute(
        "CREATE INDEX audit_call_session ON audit (json_extract(payload, '$.session'), ts) "
        "WHERE kind = 'call' AND json_extract(payload, '$.session') IS NOT NULL"
    )


@migration
def m031_spans_by_trace(db: sqlite_utils.Database) -> None:
    """Spans are kept in their trace's order: ``spans`` is keyed by ``(trace_id, span_id)`` (``WITHOUT ROWID``), one
    B-tree where there were three (the rows, the index making ``span_id`` unique, and the one on ``trace_id``). A
    recorded call writes its spans into one tree, ~14 us a call less, and a trace's spans are read side by side.
    A span is named by its trace and its id (ids are random: two traces never share one).
    """
    db.execute(
        'CREATE TABLE spans_by_trace ("span_id" TEXT NOT NULL, "trace_id" TEXT NOT NULL, "parent_id" TEXT, '
        '"call_id" TEXT, "name" TEXT, "start_ns" INTEGER, "end_ns" INTEGER, "status" TEXT, "attributes" TEXT, '
        "PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID"
    )
    db.execute(
        "INSERT OR IGNORE INTO spans_by_trace SELECT span_id, trace_id, parent_id, call_id, name, start_ns, end_ns, "
        "status, attributes FROM spans WHERE span_id IS NOT NULL AND trace_id IS NOT NULL"
    )
    db.execute("DROP TABLE spans")  # (and its index on trace_id)
    db.execute("ALTER TABLE spans_by_trace RENAME TO spans")


@migration
def m032_audit_found_by_id_not_time(db: sqlite_utils.Database) -> None:
    """The audit log's index on ``ts`` goes: entries are appended as they happen, so the first entry since a time
    is found by a binary search over the ids (``Store.first_entry_at``), and the ~13 us a call its index cost is
    not paid by every entry written.
    """
    db.execute("DROP INDEX IF EXISTS idx_audit_ts")


def _adopt_later(db: sqlite_utils.Database, *tables: str) -> None:
    """Mark ``tables``, which audit entries begin to bind in this version, for adoption by the next write
    (``adopt_tables``), in a store that already has a log; joined to tables an earlier migration marked and no
    write adopted yet. Not needed where every table waits for adoption (``adopt``) or there is no log yet.
    """
    has_rows = db.execute("SELECT EXISTS (SELECT 1 FROM audit)").fetchone()[0]
    pending = db.execute("SELECT 1 FROM audit_state WHERE k = 'adopt'").fetchone()  # adopts every table anyway
    if has_rows and not pending:
        later = db.execute("SELECT v FROM audit_state WHERE k = 'adopt_tables'").fetchone()
        marked = ",".join([*(later[0].split(",") if later else []), *tables])
        db.execute(
            "INSERT INTO audit_state (k, v) VALUES ('adopt_tables', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            (marked,),
        )


def _spend_triggers(db: sqlite_utils.Database) -> None:
    """The triggers that keep ``spend`` equal to the sum over the calls whose cost counts."""
    db.execute(f"CREATE TRIGGER calls_spend_insert AFTER INSERT ON calls BEGIN {_ADD} END")
    db.execute(f"CREATE TRIGGER calls_spend_delete AFTER DELETE ON calls BEGIN {_TAKE_BACK} END")
    db.execute(
        "CREATE TRIGGER calls_spend_update AFTER UPDATE OF status, mode, cost_usd, total_tokens, started_at, "
        f'"user", task, agent, session ON calls BEGIN {_TAKE_BACK} {_ADD} END'
    )


SPEND_TRIGGERS = ("calls_spend_insert", "calls_spend_delete", "calls_spend_update")


def spend_problems(conn: sqlite3.Connection) -> list[str]:
    """Where the hourly spend totals budgets read disagree with the calls they sum (an edit to ``spend``,
    a dropped trigger); empty when they agree. Reads every live call once: for ``verify``, not per call.
    """
    problems = [
        f"the trigger {name} that keeps the spend totals is missing"
        for name in SPEND_TRIGGERS
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)).fetchone() is None
    ]
    each = " UNION ALL ".join(_TOTALS_OF.format(scope=scope, key=key) for scope, key in _SCOPE_KEYS)
    rows = conn.execute(
        f"SELECT scope, key, hour, SUM(usd), SUM(tokens), SUM(calls) FROM (SELECT scope, key, hour, usd, tokens, "
        f"calls FROM spend UNION ALL SELECT scope, key, hour, -usd, -tokens, -1 FROM ({each})) "
        "GROUP BY 1, 2, 3 HAVING abs(SUM(usd)) > 1e-9 * (1 + SUM(abs(usd))) OR SUM(tokens) != 0 OR SUM(calls) != 0 "
        "ORDER BY 3, 1, 2 LIMIT 5"
    ).fetchall()
    for scope, key, hour, usd, tokens, calls in rows:
        name = scope if scope == "global" else f"{scope}:{key}"
        problems.append(
            f"the spend totals of {name} at {hour}h differ from its calls by ${usd:+.6f}, {tokens:+} tokens, "
            f"{calls:+} calls (the spend table was edited; budgets read it)"
        )
    return problems


def pending(conn: sqlite3.Connection) -> bool:
    """Whether a migration is not yet recorded in this store (a new store: yes). Read without a transaction:
    applied migrations are never removed, so "none pending" stays true; "some" is decided again by :func:`migrate`.
    """
    try:
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    except sqlite3.OperationalError:  # no _migrations table: a new store
        return True
    return any(m.__name__ not in done for m in MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now.

    The check and the changes run in one ``BEGIN IMMEDIATE`` transaction, so several
    processes opening a new store at once apply each migration exactly once.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
        done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
        applied = []
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (migration.__name__, datetime.now(UTC).isoformat()),
            )
            applied.append(migration.__name__)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return applied
