"""The hash-chained audit log: ``verify()`` walks it, ``export()`` writes it with its proof.

Each entry holds ``sha256(prev_hash, ts, kind, ref, payload)`` (joined by U+001F) and the
hash of the entry before it, so editing, deleting, inserting or reordering a row breaks
the chain at that row. ``audit_head`` keeps the newest entry's id and hash, so cutting
entries off the end is caught as well. Compaction (``workbench store compact``) may remove
old entries; it leaves a checkpoint with the last removed hash, and the chain goes on from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.store import GENESIS, Store, audit_hash, cutoff

if TYPE_CHECKING:
    import pandas as pd

ALGORITHM = "sha256 of prev_hash, ts, kind, ref, payload joined by U+001F, hex, prefixed 'sha256:'"


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of walking the chain: ``ok``, how many entries, and the first bad one with why."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""
    head: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.entries} entries, head {self.head}"
        return f"audit chain BROKEN at entry {self.first_bad_id}: {self.reason}"


def walk(rows: Iterable[dict[str, Any]], base: str = GENESIS, base_id: int = 0) -> Verification:
    """Check rows (in id order) against each other, starting from ``base`` after entry ``base_id``."""
    prev, prev_id, n = base, base_id, 0
    for row in rows:
        n += 1
        if prev_id is not None and row["id"] != prev_id + 1:
            gap = f"entry {prev_id + 1}" if row["id"] == prev_id + 2 else f"entries {prev_id + 1}-{row['id'] - 1}"
            what = f"{gap} missing before it (deleted)" if row["id"] > prev_id else "out of order (moved)"
            return Verification(False, n, row["id"], what)
        if row["prev_hash"] != prev:
            return Verification(False, n, row["id"], "it does not chain to the entry before it "
                                "(an entry was deleted, inserted or moved)")  # fmt: skip
        if audit_hash(prev, row["ts"], row["kind"], row["ref"], row["payload"]) != row["hash"]:
            return Verification(False, n, row["id"], "its content does not match its hash (edited)")
        prev, prev_id = row["hash"], row["id"]
    return Verification(True, n, head=prev)


class AuditLog:
    """``wb.audit``: verify the chain, read it as a DataFrame, export it with its proof."""

    def __init__(self, store: Store):
        self.store = store

    def verify(self) -> Verification:
        """Recompute every hash from the last checkpoint on; the first entry that does not chain is named."""
        base, base_id = GENESIS, 0
        checkpoint = self.store.query("SELECT last_id, last_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        if checkpoint:
            base, base_id = checkpoint[0]["last_hash"], checkpoint[0]["last_id"]
        with self.store.lock:
            cursor = self.store.conn.execute("SELECT id, ts, kind, ref, payload, prev_hash, hash FROM audit "
                                             "ORDER BY id")  # fmt: skip
            names = [d[0] for d in cursor.description]
            result = walk((dict(zip(names, r, strict=True)) for r in cursor), base, base_id)
        if not result.ok:
            return result
        head = self.store.query("SELECT id, hash FROM audit_head WHERE k = 1")
        last_id = base_id + result.entries
        if head and (head[0]["id"] != last_id or head[0]["hash"] != result.head):
            if head[0]["id"] > last_id:
                return Verification(False, result.entries, last_id + 1,
                                    f"entries {last_id + 1}-{head[0]['id']} were removed from the end")  # fmt: skip
            return Verification(False, result.entries, head[0]["id"], "the newest entry is not the recorded head")
        return result

    def df(self, kind: str | None = None, since: str | None = None) -> pd.DataFrame:
        """Entries (oldest first) with who, when, what: ``kind`` (call, tool_call, approval, ...) and ``since``."""
        import pandas as pd

        rows = self._rows(kind, since)
        out = []
        for row in rows:
            payload = json.loads(row["payload"])
            who = payload.pop("who", {})
            out.append({"id": row["id"], "ts": row["ts"], "kind": row["kind"], "ref": row["ref"],
                        "user": who.get("user") or who.get("os_user"), "host": who.get("host"),
                        "notebook": who.get("notebook"), "what": payload, "hash": row["hash"]})  # fmt: skip
        return pd.DataFrame(out, columns=["id", "ts", "kind", "ref", "user", "host", "notebook", "what", "hash"])

    def export(self, path: str | Path | None = None, *, since: str | None = None, format: str = "jsonl") -> str:
        """Entries since ``since`` (``30d``, an ISO date) as JSON lines, then one ``proof`` line.

        The proof holds the hash the first exported entry chains to, the last hash and the
        store's head, so the file can be checked on its own (:func:`verify_export`).
        Returns the text; with ``path``, also writes it there.
        """
        if format != "jsonl":
            raise WorkbenchError(f"audit export writes jsonl only, not {format!r}")
        rows = self._rows(None, since)
        head = self.store.query("SELECT id, hash FROM audit_head WHERE k = 1")
        lines = [json.dumps({**row, "payload": json.loads(row["payload"]), "payload_text": row["payload"]},
                            sort_keys=True) for row in rows]  # fmt: skip
        proof = {"algorithm": ALGORITHM, "entries": len(rows), "first_id": rows[0]["id"] if rows else None,
                 "last_id": rows[-1]["id"] if rows else None, "base": rows[0]["prev_hash"] if rows else None,
                 "last_hash": rows[-1]["hash"] if rows else None,
                 "store_head": head[0] if head else None, "since": since}  # fmt: skip
        text = "\n".join([*lines, json.dumps({"proof": proof}, sort_keys=True)]) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def _rows(self, kind: str | None, since: str | None) -> list[dict[str, Any]]:
        where, params = [], []
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if since:
            where.append("ts >= ?")
            params.append(cutoff(since))
        sql = "SELECT id, ts, kind, ref, payload, prev_hash, hash FROM audit"
        return self.store.query(sql + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id", params)


def verify_export(path: str | Path) -> Verification:
    """Check an exported file by itself: every entry chains from the proof's base to its last hash."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or "proof" not in lines[-1]:
        raise WorkbenchError(f"{path} is not an audit export (its last line must be the proof)")
    proof, rows = lines[-1]["proof"], lines[:-1]
    if len(rows) != proof["entries"]:
        return Verification(False, len(rows), None, f"the proof counts {proof['entries']} entries, the file has "
                            f"{len(rows)}")  # fmt: skip
    rows = [{**r, "payload": r["payload_text"]} for r in rows]
    result = walk(rows, proof["base"] or GENESIS, rows[0]["id"] - 1 if rows else 0)
    if result.ok and result.head != proof["last_hash"]:
        return Verification(False, len(rows), proof["last_id"], "the last entry is not the proof's last hash")
    return result
