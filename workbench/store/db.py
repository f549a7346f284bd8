"""The SQLite store: opened with WAL and a busy timeout, migrated on open.

A call is written with its attempts, spans, audit entry and session row in one
``BEGIN IMMEDIATE`` transaction, committed before ``ask()`` returns.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from workbench.errors import WorkbenchError
from workbench.store.migrations import migrate

CALL_COLUMNS = (
    "id", "trace_id", "session", "started_at", "mode", "replay_of", "route", "model",
    "deployment", "status", "error", "prompt", "request", "fingerprint", "text", "tool_calls",
    "finish_reason", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
    "latency_ms", "ttft_ms", "stream", "cache_hit", "user", "task", "agent", "cached_from", "saved_usd",
    "routing", "context_spec", "context_version", "context_plan", "grounding",
)  # fmt: skip
ATTEMPT_COLUMNS = (
    "call_id", "n", "deployment", "model", "status", "error_class", "error", "status_code",
    "retry_after", "started_at", "latency_ms",
)  # fmt: skip
SPAN_COLUMNS = (
    "span_id", "trace_id", "parent_id", "call_id", "name", "start_ns", "end_ns", "status",
    "attributes",
)  # fmt: skip


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({marks})'


_INSERT_CALL = _insert_sql("calls", CALL_COLUMNS)
_INSERT_ATTEMPT = _insert_sql("attempts", ATTEMPT_COLUMNS)
_INSERT_SPAN = _insert_sql("spans", SPAN_COLUMNS)
_INSERT_AUDIT = _insert_sql("audit", ("id", "ts", "kind", "ref", "payload", "prev_hash", "hash"))
_TOUCH_SESSION = (
    "INSERT INTO sessions (name, created_at, history_from, state) VALUES (?, ?, '', '{}') "
    "ON CONFLICT(name) DO NOTHING"
)
GENESIS = "sha256:" + "0" * 64


def new_id(nbytes: int = 8) -> str:
    """A random lowercase hex id (16 hex digits by default, 32 for trace ids)."""
    return os.urandom(nbytes).hex()


def utcnow() -> str:
    """An ISO-8601 UTC timestamp with microseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def cutoff(when: str) -> str:
    """An ISO timestamp from ``30d`` / ``12h`` / ``90m`` (that long ago) or an ISO date or time as given."""
    import re
    from datetime import timedelta

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", when or "")
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        return (datetime.now(UTC) - timedelta(**{unit: float(match.group(1))})).isoformat(timespec="microseconds")
    try:
        parsed = datetime.fromisoformat(when)
    except (TypeError, ValueError):
        raise WorkbenchError(f"{when!r} is not a time: write an age such as 30d, 12h or 90m, "
                             "or an ISO date such as 2026-11-01") from None  # fmt: skip
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat(timespec="microseconds")


def audit_hash(prev_hash: str, ts: str, kind: str, ref: str, payload: str) -> str:
    """The chained digest of one audit entry, prefixed with the digest's name."""
    digest = hashlib.sha256("\x1f".join((prev_hash, ts, kind, ref, payload)).encode()).hexdigest()
    return "sha256:" + digest


class Store:
    """One SQLite file shared by every part of the runtime (and by several kernels)."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=30
            )
        except (OSError, sqlite3.Error) as exc:
            raise WorkbenchError(
                f"cannot open the store at {self.path} ({exc}); set `store` in workbench.toml "
                "or WORKBENCH_STORE to a writable path"
            ) from None
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        self.lock = threading.RLock()
        self._depth = 0  # > 0 inside batch(): transactions become savepoints
        self.on_spans: Callable[[list[str]], None] | None = None  # told the ids of spans just written (OTel)
        with self.lock:
            migrate(self.db)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any error), thread-safe.

        Inside :meth:`batch` it is a savepoint instead: still all or nothing, committed with the batch.
        """
        with self.lock:
            if self._depth:
                name = f"wb{self._depth}"
                self.conn.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                    raise
                finally:
                    self._depth -= 1
                self.conn.execute(f"RELEASE {name}")
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many records in one commit (replays).

        Each inner transaction stays atomic, and what completed is committed even when the
        block raises, so nothing recorded is lost. For its length the page cache is larger
        (64 MB) and the WAL is checkpointed less often (every 40 MB), then both are put back.
        """
        with self.lock:
            cache = self.conn.execute("PRAGMA cache_size").fetchone()[0]
            checkpoint = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            self.conn.execute("PRAGMA cache_size = -65536")
            self.conn.execute("PRAGMA wal_autocheckpoint = 10000")
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                self.conn.execute("COMMIT")
                self.conn.execute(f"PRAGMA cache_size = {int(cache)}")
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint)}")

    def record_call(
        self,
        call: dict[str, Any],
        attempts: Sequence[dict[str, Any]],
        spans: Sequence[tuple[Any, ...]],
        settle_reservation: bool = False,
        audit_also: Sequence[tuple[str, str, dict[str, Any]]] = (),
    ) -> None:
        """Write a call, its attempts, spans, session row and audit entry atomically.

        ``settle_reservation`` deletes the call's budget reservation in the same
        transaction, so its worst case is replaced by its real cost at one instant;
        ``audit_also`` chains more entries (``kind, ref, payload``) in it, e.g. a new spec version.
        """
        call_row = tuple(call.get(c) for c in CALL_COLUMNS)
        attempt_rows = [tuple(a.get(c) for c in ATTEMPT_COLUMNS) for a in attempts]
        payload = {
            "call": call["id"], "route": call.get("route"), "model": call.get("model"),
            "status": call.get("status"), "mode": call.get("mode"), "fingerprint": call.get("fingerprint"),
            "text_sha256": hashlib.sha256((call.get("text") or "").encode()).hexdigest(),
            "cost_usd": call.get("cost_usd"), "tokens": call.get("total_tokens"), "replay_of": call.get("replay_of"),
            "context_spec": call.get("context_spec"), "context_version": call.get("context_version"),
            "session": call.get("session"), "task": call.get("task"), "agent": call.get("agent"),
        }  # fmt: skip
        with self.transaction() as conn:
            if call.get("session"):
                conn.execute(_TOUCH_SESSION, (call["session"], call["started_at"]))
            conn.execute(_INSERT_CALL, call_row)
            if attempt_rows:
                conn.executemany(_INSERT_ATTEMPT, attempt_rows)
            if spans:
                conn.executemany(_INSERT_SPAN, spans)
                if self.on_spans is not None:
                    self.on_spans([s[0] for s in spans])
            if settle_reservation:
                conn.execute("DELETE FROM reservations WHERE call_id = ?", (call["id"],))
            self.audit(conn, "call", call["id"], payload, who={"user": call.get("user")})
            for kind, ref, extra in audit_also:
                self.audit(conn, kind, ref, extra)

    def add_spans(self, conn: sqlite3.Connection, spans: Sequence[tuple[Any, ...]]) -> None:
        """Write finished spans (``observability.span_row``) inside the caller's transaction.

        A span written again with the same id (a run's root, as it grows) replaces the old one.
        """
        conn.executemany(_INSERT_SPAN.replace("INSERT", "INSERT OR REPLACE", 1), spans)
        if self.on_spans is not None and spans:
            self.on_spans([s[0] for s in spans])

    def append_audit(self, kind: str, ref: str, payload: dict[str, Any]) -> None:
        """Add one entry to the hash-chained audit log in its own transaction."""
        with self.transaction() as conn:
            self.audit(conn, kind, ref, payload)

    def audit(self, conn: sqlite3.Connection, kind: str, ref: str, payload: dict[str, Any],
              who: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Chain an entry for an event, inside the transaction (``conn``) that writes the event.

        The payload is scrubbed of secrets and stamped with who wrote it (see audit/entry.py).
        Inside ``BEGIN IMMEDIATE`` no other writer can extend the chain between read and insert;
        ``audit_head`` keeps the newest hash, so cutting entries off the end is detected too.
        """
        from workbench.audit.entry import entry_payload

        text = entry_payload(payload, who)
        last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        last_id, prev = last or self._audit_base(conn)
        ts = utcnow()
        digest = audit_hash(prev, ts, kind, ref, text)
        entry = last_id + 1
        conn.execute(_INSERT_AUDIT, (entry, ts, kind, ref, text, prev, digest))
        conn.execute("INSERT INTO audit_head (k, id, hash) VALUES (1, ?, ?) "
                     "ON CONFLICT(k) DO UPDATE SET id = excluded.id, hash = excluded.hash",
                     (entry, digest))  # fmt: skip

    @staticmethod
    def _audit_base(conn: sqlite3.Connection) -> tuple[int, str]:
        """What an entry chains to in an empty log: the last compaction checkpoint, or genesis."""
        row = conn.execute("SELECT last_id, last_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read query as dicts."""
        with self.lock:
            cursor = self.conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one write statement in its own transaction."""
        with self.transaction() as conn:
            conn.execute(sql, params)

    def close(self) -> None:
        """Close the connection (the file stays)."""
        with self.lock:
            self.conn.close()
