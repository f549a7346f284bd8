"""The audit chain's key, its entry hash, and the rows an entry binds.

**Keyed.** Each entry's hash is an HMAC-SHA256 (``hmac-sha256:``) of the previous hash,
its time, kind, ref and payload, keyed by a secret kept *outside* the store: the
``WORKBENCH_AUDIT_KEY`` environment variable, else a key file (``audit.key``, mode 0600)
in the user's config folder (``$XDG_CONFIG_HOME/workbench`` or ``~/.config/workbench``),
made on first use. Someone with the database file alone can't recompute the chain.
Entries written before keys existed (``sha256:``) still verify: the first keyed entry
after them pins their last hash.

**Binding.** An entry also carries, for each row it stands for, two keyed digests of
that row as it was written: ``d`` over its core columns and ``b`` over its bodies
(prompts, answers, tool arguments: what compaction may remove later). ``verify()``
recomputes them from the live rows, so editing a call's cost, deleting a guard event or
raising a budget's limit is named, not only an edit of the log itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.store.jsontext import encoder

KEY_ENV = "WORKBENCH_AUDIT_KEY"
GENESIS = "sha256:" + "0" * 64
KEYED = "hmac-sha256:"
DIGEST_HEX = 16  # 64-bit keyed digests of bound rows


class AuditKeyMissing(WorkbenchError):
    """No audit key is available to check or extend the chain."""


class AuditKeyUnsafe(AuditKeyMissing):
    """The key is short enough to guess, or its file can be read by others or belongs to someone else: not used."""


class AuditChainBroken(WorkbenchError):
    """The chain's tail does not match its head: nothing more is appended until a human looks."""


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The secret the chain is keyed with, where it came from, and a short id that names it."""

    secret: bytes = field(repr=False)  # (never shown: a traceback or a log line would carry it)
    source: str
    id: str = field(init=False)  # a fingerprint of the key (safe to show and store: it does not reveal the key)

    def __post_init__(self) -> None:
        digest = hmac.new(self.secret, b"workbench-audit-key-id", hashlib.sha256).hexdigest()
        object.__setattr__(self, "id", digest[:12])  # (once: entries and checks ask for it on every call)

    def describe(self) -> str:
        """Which key, for messages: ``key a1b2c3d4e5f6 from WORKBENCH_AUDIT_KEY``."""
        return f"key {self.id} from {self.source}"


def key_file() -> Path:
    """Where the key file lives (never inside the project or the store's folder)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "workbench" / "audit.key"


_cache: dict[tuple[str, str, str], AuditKey] = {}


def audit_key(create: bool = True) -> AuditKey:
    """The audit key: ``$WORKBENCH_AUDIT_KEY``, else the key file (made, 0600, when ``create``)."""
    env = os.environ.get(KEY_ENV)
    where = (env or "", os.environ.get("XDG_CONFIG_HOME") or "", os.environ.get("HOME") or "")  # what decides it
    cached = _cache.get(where)
    if cached is not None:
        return cached
    if env:
        key = AuditKey(env.encode(), KEY_ENV)
    else:
        key = AuditKey(_read_or_make(key_file(), create), str(key_file()))
    if len(key.secret) < MIN_KEY_CHARS:
        raise AuditKeyUnsafe(
            f"the audit key from {key.source} is {len(key.secret)} characters: short enough to guess, and whoever "
            f"guesses it can forge the log. Use at least {MIN_KEY_CHARS} random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    _cache[where] = key
    return key


MIN_KEY_CHARS = 16  # the shortest audit key accepted (a made key file holds 64 hex characters)


def _read_or_make(path: Path, create: bool) -> bytes:
    try:
        return _read(path)
    except FileNotFoundError:
        if not create:
            raise AuditKeyMissing(
                f"no audit key: set {KEY_ENV} or restore the key file {path} (the key the log was written with)"
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return _read(path)


def _read(path: Path) -> bytes:
    _check_private(path)
    text = path.read_text().strip()
    if not text:
        raise AuditKeyMissing(f"the audit key file {path} is empty; restore it or set {KEY_ENV}")
    return text.encode()


def _check_private(path: Path) -> None:
    """Refuse a key file someone else can read or owns (as ssh refuses such a private key): whoever can read the
    key can rewrite the log and its hashes so that ``verify()`` says intact.
    """
    if os.name != "posix":
        return
    info = path.stat()
    if info.st_uid != os.getuid():
        raise AuditKeyUnsafe(
            f"the audit key file {path} belongs to another user (uid {info.st_uid}), who could forge the log: make a "
            f"key of your own (move that file away, and workbench makes one) or set {KEY_ENV}"
        )
    if info.st_mode & 0o077:
        raise AuditKeyUnsafe(
            f"the audit key file {path} can be read or changed by others (mode {stat.S_IMODE(info.st_mode):04o}), "
            f"who could forge the log: chmod 600 {path} (or set {KEY_ENV})"
        )


def entry_hash(key: AuditKey | None, prev_hash: str, ts: str, kind: str, ref: str, payload: str) -> str:
    """The chained digest of one entry: keyed (``hmac-sha256:``), or the legacy unkeyed ``sha256:``."""
    data = "\x1f".join((prev_hash, ts, kind, ref, payload)).encode()
    if key is None:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return KEYED + hmac.digest(key.secret, data, "sha256").hex()


def head_mac(key: AuditKey, entry_id: int, digest: str) -> str:
    """The keyed mark of the chain's head: rewriting the head after cutting the tail shows."""
    return hmac.digest(key.secret, f"head\x1f{entry_id}\x1f{digest}".encode(), "sha256").hex()


def check_entry(key: AuditKey | None, row: dict[str, Any]) -> bool:
    """Whether an entry's hash is right for its content (with the key its prefix calls for)."""
    use = key if str(row["hash"]).startswith(KEYED) else None
    if use is None and not str(row["hash"]).startswith("sha256:"):
        return False
    return hmac.compare_digest(
        entry_hash(use, row["prev_hash"], row["ts"], row["kind"], row["ref"], row["payload"]), str(row["hash"])
    )


# ---- the rows an entry stands for ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bound:
    """A table whose rows audit entries bind: how a row is named, its core and its body columns."""

    key: str  # an SQL expression naming a row
    core: tuple[str, ...]
    body: tuple[str, ...] = ()
    compacted: str | None = None  # a column set when compaction removed the bodies
    optional: tuple[str, ...] = ()  # core columns added later: part of the digest only when set (old rows verify)


BOUND: dict[str, Bound] = {
    "calls": Bound(
        "id",
        (
            "session",
            "started_at",
            "mode",
            "replay_of",
            "route",
            "model",
            "deployment",
            "status",
            "error",
            "fingerprint",
            "finish_reason",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cost_usd",
            "stream",
            "cache_hit",
            "user",
            "task",
            "agent",
            "cached_from",
            "saved_usd",
            "context_spec",
            "context_version",
        ),
        ("prompt", "request", "text", "tool_calls", "context_plan"),
        "compacted_at",
        optional=("gateway_cost_usd",),
    ),
    # Each try of a deployment for a call: failover as it happened, and which model version the provider said
    # answered (what a replay's served_changed compares), bound by the call's entry.
    "attempts": Bound(
        "id",
        (
            "call_id",
            "n",
            "deployment",
            "model",
            "status",
            "error_class",
            "error",
            "status_code",
            "retry_after",
            "started_at",
            "latency_ms",
            "endpoint",
            "response_model",
            "system_fingerprint",
            "request_id",
        ),
    ),
    "tool_calls": Bound(
        "id",
        ("run_id", "step", "call_id", "tool", "risk", "status", "error", "claimed_by"),
        ("arguments", "result"),
        "compacted_at",
        optional=("approval_id",),
    ),
    "approvals": Bound(
        "id",
        (
            "created_at",
            "expires_at",
            "status",
            "tool",
            "risk",
            "arguments",
            "reason",
            "session",
            "agent",
            "run_id",
            "tool_call_id",
            "decided_by",
            "decided_at",
            "decision_reason",
            "final_arguments",
            "escalated_to",
            "execution",
            "executed_by",
            "executed_at",
        ),
    ),
    "blobs": Bound("sha256", ("mime", "width", "height", "bytes", "first_call"), ("data",), "compacted_at"),
    "budgets": Bound("id", ("scope", "key", "period", "limit_usd", "limit_tokens", "thresholds"), optional=("since",)),
    "budget_events": Bound("id", ("budget_id", "threshold", "period_start", "spent_usd", "spent_tokens", "at")),
    "switches": Bound("name", ("active", "reason")),
    "guard_events": Bound(
        "id", ("at", "call_id", "session", "agent", "stage", "scanner", "action", "score", "ref", "findings", "detail")
    ),
    "guard_locks": Bound("key", ("locked_at", "violations", "reset_at", "reset_by")),
    "workflow_steps": Bound("run_id || ':' || step", ("status", "result", "attempts", "error")),
    "feedback": Bound("id", ("call_id", "rating", "note", "by", "at")),
    # An eval run and each of its scores: what the regression gate compares against (a baseline).
    "eval_runs": Bound(
        "id",
        ("suite", "suite_hash", "model", "context", "repeats", "cases", "status", "started_at", "finished_at"),
        ("summary",),
        optional=("cost_usd", "served"),
    ),
    "eval_results": Bound(  # named by rowid (its key is four columns): written once per run, never replaced
        "rowid",
        ("run_id", "case_id", "repeat", "scorer", "score", "passed", "call_id", "latency_ms", "cost_usd"),
        ("detail", "output"),
    ),
    "mcp_pins": Bound("name", ("server", "hash", "definition", "status", "changed_hash", "approved_by")),
    # Long-term memories, as a model is given them (not when they were last read: a search touches those). Each
    # write binds its row in an entry of its own (kind ``memory``, ref its id), which a search checks it against.
    "memories": Bound(
        "id",
        tuple("scope kind text importance created_at expires_at status supersedes superseded_by source_call".split()),
    ),
}


def _columns(spec: Bound) -> str:
    return ", ".join(f'"{c}"' for c in (*spec.core, *spec.optional, *spec.body))


@cache
def select_sql(table: str, where_key: bool = True) -> str:
    """The query reading a bound table's rows (one by key, or all): key, core columns, body columns."""
    spec = BOUND[table]
    compacted = f', "{spec.compacted}"' if spec.compacted else ", NULL"
    sql = f"SELECT {spec.key} AS k, {_columns(spec)}{compacted} FROM {table}"
    return sql + (f" WHERE {spec.key} = ?" if where_key else "")


def _digest(key: AuditKey, table: str, part: str, values: tuple[Any, ...]) -> str:
    text = _encode_row([table, part, *values])
    return hmac.digest(key.secret, text.encode(), "sha256").hex()[:DIGEST_HEX]


def _plain(value: Any) -> Any:
    return value.hex() if isinstance(value, bytes | bytearray | memoryview) else str(value)


# json.dumps(..., separators=(",", ":"), ensure_ascii=False, default=_plain), its encoder built once
_encode_row = encoder(separators=(",", ":"), ensure_ascii=False, default=_plain)


def row_digests(key: AuditKey, table: str, row: tuple[Any, ...]) -> dict[str, Any]:
    """``{"t", "k", "d", "b"}`` for a row read with :func:`select_sql` (``b`` only where there are bodies)."""
    spec = BOUND[table]
    n, m = len(spec.core), len(spec.optional)
    core = row[1 : 1 + n] + tuple(
        f"{c}={v}" for c, v in zip(spec.optional, row[1 + n : 1 + n + m], strict=True) if v is not None
    )
    out: dict[str, Any] = {"t": table, "k": str(row[0]), "d": _digest(key, table, "core", core)}
    if spec.body:
        out["b"] = _digest(key, table, "body", row[1 + n + m : 1 + n + m + len(spec.body)])
    return out


def bind_rows(conn: Any, key: AuditKey, rows: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Digests of the named rows as they are now, inside the writer's transaction (``d: None``: deleted)."""
    out = []
    for table, row_key in rows:
        found = conn.execute(select_sql(table), (row_key,)).fetchone()
        out.append(row_digests(key, table, found) if found else {"t": table, "k": str(row_key), "d": None})
    return out


def carry_mac(key: AuditKey, rows: list[tuple[str, str, int, str]]) -> str:
    """The keyed digest of every carried binding (``audit_carry``), in a stable order."""
    text = json.dumps(sorted(rows), separators=(",", ":"))
    return hmac.new(key.secret, text.encode(), hashlib.sha256).hexdigest()
