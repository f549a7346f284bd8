"""The hash-chained audit log: every recorded call appends an entry; ``verify()`` walks it."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.store import GENESIS, Store, audit_hash


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of walking the chain."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


class AuditLog:
    """``wb.audit``."""

    def __init__(self, store: Store):
        self.store = store

    def verify(self) -> Verification:
        """Recompute every hash; the first entry that does not chain is reported."""
        prev = GENESIS
        rows = self.store.query("SELECT id, ts, kind, ref, payload, prev_hash, hash FROM audit ORDER BY id")
        for row in rows:
            if row["prev_hash"] != prev:
                return Verification(False, len(rows), row["id"], "prev_hash does not match the entry before")
            if audit_hash(prev, row["ts"], row["kind"], row["ref"], row["payload"]) != row["hash"]:
                return Verification(False, len(rows), row["id"], "content does not match its hash")
            prev = row["hash"]
        return Verification(True, len(rows))
