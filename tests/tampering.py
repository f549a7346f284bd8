"""Edits to a store's SQLite file made as someone holding the file (but not the audit key) would make them."""

import sqlite3
from pathlib import Path

from workbench.runtime import Workbench
from workbench.store.chain import audit_key, entry_hash, head_mac


def tamper(wb: Workbench, *statements: str) -> None:
    """Run ``statements`` on ``wb``'s store file through a connection of its own, in one transaction."""
    conn = sqlite3.connect(wb.store.path)
    with conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


def rechain(path: Path) -> None:
    """Hash every audit entry of the store at ``path`` again with the key, and its head, as a version that wrote
    them so would have (after ``tamper`` rewrote their payloads to look like that version's)."""
    conn = sqlite3.connect(path)
    key, prev = audit_key(), "sha256:" + "0" * 64
    for entry_id, ts, kind, ref, payload in conn.execute("SELECT id, ts, kind, ref, payload FROM audit ORDER BY id"):
        prev_hash, prev = prev, entry_hash(key, prev, ts, kind, ref, payload)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev_hash, prev, entry_id))
    conn.execute("UPDATE audit_head SET hash = ?, mac = ?", (prev, head_mac(key, entry_id, prev)))
    conn.commit()
    conn.close()


def forged_copy(where: str, text: str) -> tuple[str, ...]:
    """Statements for ``tamper`` that insert a copy of the call ``where`` selects, newer than any (``started_at``
    9999) and under a new id, answering ``text``: a call no audit entry recorded.
    """
    return (
        f"CREATE TEMP TABLE forged AS SELECT * FROM calls WHERE {where}",
        f"UPDATE forged SET id = 'f0f0f0f0f0f0f0f0', started_at = '9999', text = '{text}'",
        "INSERT INTO calls SELECT * FROM forged",
    )
