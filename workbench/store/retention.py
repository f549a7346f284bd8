"""Retention: remove old call bodies, keep what the dashboards and the audit chain need.

``compact(store, "30d")`` blanks the prompt, request, answer and context plan of calls
older than the cutoff (tokens, cost, latency, model, status and the fingerprint stay, so
costs, budgets and metrics are unchanged), deletes their spans, blanks old tool-call
arguments and results, and removes audit entries older than the cutoff behind a
checkpoint holding the last removed hash, so ``verify()`` still walks an unbroken chain.
It refuses to run on a broken chain (that would erase the evidence), then VACUUMs and
reports the bytes freed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from workbench.errors import WorkbenchError
from workbench.store.chain import audit_key, row_digests, select_sql
from workbench.store.db import Store, cutoff, utcnow


@dataclass(frozen=True, slots=True)
class Compaction:
    """What ``compact`` removed (or, with ``dry_run``, would remove)."""

    before: str
    calls: int
    spans: int
    tool_calls: int
    audit_entries: int
    bytes_before: int
    bytes_after: int
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        """Bytes the store's files shrank by."""
        return self.bytes_before - self.bytes_after

    def __str__(self) -> str:
        verb = "would compact" if self.dry_run else "compacted"
        return (
            f"{verb} {self.calls} calls older than {self.before[:19]} (bodies and {self.spans} spans), "
            f"{self.tool_calls} tool calls, {self.audit_entries} audit entries behind a checkpoint; "
            f"{self.bytes_freed:,} bytes freed ({self.bytes_before:,} -> {self.bytes_after:,})"
        )


def _size(store: Store) -> int:
    return sum(os.path.getsize(p) for p in (store.path, f"{store.path}-wal") if os.path.exists(p))


def compact(store: Store, older_than: str, *, dry_run: bool = False) -> Compaction:
    """Remove call bodies, spans and audit entries older than ``older_than`` (``30d``, an ISO date)."""
    from workbench.audit import AuditLog

    before = cutoff(older_than)
    check = AuditLog(store).verify()
    if not check.ok:
        raise WorkbenchError(
            f"the audit chain is broken at entry {check.first_bad_id} ({check.reason}); compacting "
            "would erase the evidence. Export it (workbench audit export) and investigate "
            "first"
        )
    size = _size(store)
    if dry_run:
        with store.lock:
            counts = _counts(store, store.conn, before)
        return Compaction(before, *counts[:3], counts[4], size, size, dry_run=True)
    with store.transaction() as conn:
        calls, spans, tools, last_id, entries = _counts(store, conn, before)
        key = audit_key()
        carry = store.kept_carry(conn, key)  # (vouched for again below: refused if they were edited)
        if entries:  # the digests the removed entries hold are carried over, newest first
            for entry, payload in conn.execute(
                "SELECT id, payload FROM audit WHERE id <= ? AND payload LIKE '%\"bind\"%' ORDER BY id", (last_id,)
            ).fetchall():
                for b in json.loads(payload)["bind"]:
                    carry[(b["t"], b["k"])] = (entry, b)
        now = utcnow()
        call_ids = [r[0] for r in conn.execute(_OLD, (before,)).fetchall()]
        tool_ids = [r[0] for r in conn.execute(_OLD_TOOLS, (before,)).fetchall()]
        conn.execute(f"DELETE FROM spans WHERE call_id IN ({_OLD})", (before,))
        conn.execute(
            "UPDATE calls SET prompt = NULL, request = NULL, text = NULL, tool_calls = NULL, "
            "context_plan = NULL, compacted_at = ? WHERE started_at < ? AND compacted_at IS NULL",
            (now, before),
        )
        conn.execute(
            "UPDATE tool_calls SET arguments = NULL, result = NULL, compacted_at = ? WHERE started_at < ? "
            "AND compacted_at IS NULL",
            (now, before),
        )
        blob_ids = [r[0] for r in conn.execute(_UNNAMED).fetchall()]  # images no kept request names any more
        conn.execute(f"UPDATE blobs SET data = NULL, compacted_at = ? WHERE sha256 IN ({_UNNAMED})", (now,))
        if entries:
            last_hash = conn.execute("SELECT hash FROM audit WHERE id = ?", (last_id,)).fetchone()[0]
            conn.execute(
                "INSERT INTO audit_checkpoints (at, before, last_id, last_hash, entries) VALUES (?, ?, ?, ?, ?)",
                (utcnow(), before, last_id, last_hash, entries),
            )
            conn.execute("DELETE FROM audit WHERE id <= ?", (last_id,))
        entry = store.next_entry(conn, key)
        for table, ids in (("calls", call_ids), ("tool_calls", tool_ids), ("blobs", blob_ids)):
            for row_id in ids:  # what the row is now, with its bodies' original digest kept beside it
                now_row = row_digests(key, table, conn.execute(select_sql(table), (row_id,)).fetchone())
                old = carry.get((table, str(row_id)))
                now_row["ob"] = old[1].get("b") if old else None
                carry[(table, str(row_id))] = (entry, now_row)
        vouch = store.write_carry(conn, key, carry)
        store.audit(
            conn,
            "compact",
            before,
            {
                "calls": calls,
                "spans": spans,
                "tool_calls": tools,
                "images": len(blob_ids),
                "audit_entries": entries,
                "carry": vouch,
            },
        )
    with store.lock:
        store.conn.execute("VACUUM")  # in WAL mode this writes the new file to the log: checkpoint after
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Compaction(before, calls, spans, tools, entries, size, _size(store))


_OLD = "SELECT id FROM calls WHERE started_at < ? AND compacted_at IS NULL"
_OLD_TOOLS = "SELECT id FROM tool_calls WHERE started_at < ? AND compacted_at IS NULL"
_UNNAMED = (
    "SELECT sha256 FROM blobs WHERE data IS NOT NULL AND NOT EXISTS "
    "(SELECT 1 FROM calls WHERE calls.request LIKE '%' || blobs.sha256 || '%')"
)


def _counts(store: Store, conn: Any, before: str) -> tuple[int, int, int, int | None, int]:
    """(calls, spans, tool calls, last audit id, audit entries) older than ``before`` (the entries before the first
    written at or after it: the log's times rise with its ids, see ``Store.first_entry_at``).
    """
    calls = conn.execute(f"SELECT COUNT(*) FROM ({_OLD})", (before,)).fetchone()[0]
    spans = conn.execute(f"SELECT COUNT(*) FROM spans WHERE call_id IN ({_OLD})", (before,)).fetchone()[0]
    tools = conn.execute(f"SELECT COUNT(*) FROM ({_OLD_TOOLS})", (before,)).fetchone()[0]
    first = store.first_entry_at(conn, before)
    last_id, entries = conn.execute("SELECT MAX(id), COUNT(*) FROM audit WHERE id < ?", (first or 0,)).fetchone()
    return calls, spans, tools, last_id, entries
