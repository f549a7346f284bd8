"""The SQLite store: opened with WAL and a busy timeout, migrated on open.

A call is written with its attempts, spans, audit entry and session row in one
``BEGIN IMMEDIATE`` transaction, committed before ``ask()`` returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
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
_INSERT_AUDIT = _insert_sql("audit", ("ts", "kind", "ref", "payload", "prev_hash", "hash"))
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
        with self.lock:
            migrate(self.db)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any error), thread-safe."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def record_call(
        self,
        call: dict[str, Any],
        attempts: Sequence[dict[str, Any]],
        spans: Sequence[tuple[Any, ...]],
        settle_reservation: bool = False,
    ) -> None:
        """Write a call, its attempts, spans, session row and audit entry atomically.

        ``settle_reservation`` deletes the call's budget reservation in the same
        transaction, so its worst case is replaced by its real cost at one instant.
        """
        call_row = tuple(call.get(c) for c in CALL_COLUMNS)
        attempt_rows = [tuple(a.get(c) for c in ATTEMPT_COLUMNS) for a in attempts]
        payload = json.dumps(
            {
                "call": call["id"],
                "route": call.get("route"),
                "model": call.get("model"),
                "status": call.get("status"),
                "fingerprint": call.get("fingerprint"),
                "text_sha256": hashlib.sha256((call.get("text") or "").encode()).hexdigest(),
                "cost_usd": call.get("cost_usd"),
            },
            sort_keys=True,
        )
        with self.transaction() as conn:
            if call.get("session"):
                conn.execute(_TOUCH_SESSION, (call["session"], call["started_at"]))
            conn.execute(_INSERT_CALL, call_row)
            if attempt_rows:
                conn.executemany(_INSERT_ATTEMPT, attempt_rows)
            if spans:
                conn.executemany(_INSERT_SPAN, spans)
            if settle_reservation:
                conn.execute("DELETE FROM reservations WHERE call_id = ?", (call["id"],))
            self._append_audit(conn, "call", call["id"], payload)

    def append_audit(self, kind: str, ref: str, payload: dict[str, Any]) -> None:
        """Add one entry to the hash-chained audit log in its own transaction."""
        with self.transaction() as conn:
            self._append_audit(conn, kind, ref, json.dumps(payload, sort_keys=True))

    def _append_audit(self, conn: sqlite3.Connection, kind: str, ref: str, payload: str) -> None:
        # Inside BEGIN IMMEDIATE, so no other writer can extend the chain between read and insert.
        row = conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        prev = row[0] if row else GENESIS
        ts = utcnow()
        conn.execute(_INSERT_AUDIT, (ts, kind, ref, payload, prev, audit_hash(prev, ts, kind, ref, payload)))

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
