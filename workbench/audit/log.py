"""The audit log: ``verify()`` checks the chain *and the rows it audits*; ``export()`` writes it with its proof.

Each entry holds a keyed hash (HMAC-SHA256, see store/chain.py) of the hash before it,
its time, kind, ref and payload, so editing, deleting, inserting or reordering an entry
breaks the chain at that entry, and nobody without the key can write a consistent one.
``audit_head`` keeps the newest entry's id and hash with a keyed mark, so cutting entries
off the end is caught, before the next write (which refuses to extend the log) and by
``verify()``.

Entries also bind rows: a call's prompt, request, answer, model, tokens, cost, user,
task and session; a budget's limits; a guard event; an approval and its decision; a
tool call and its result; a workflow step. ``verify()`` recomputes each bound row's
digests from the live table and names the first row that differs, is missing, or has
no entry at all. Compaction removes old entries and call bodies; the digests those
entries held are carried over (``audit_carry``, vouched for by the compaction's own
entry), with the bodies' original digests kept, so old rows still verify.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.files import write_output
from workbench.store import GENESIS, Store, cutoff, spend_problems
from workbench.store.chain import (
    BOUND,
    KEY_ENV,
    KEYED,
    AuditKey,
    AuditKeyMissing,
    AuditKeyUnsafe,
    audit_key,
    carry_mac,
    check_entry,
    head_mac,
    row_digests,
    select_sql,
)

if TYPE_CHECKING:
    import pandas as pd

ALGORITHM = (
    "hmac-sha256 (keyed; legacy entries sha256) of prev_hash, ts, kind, ref, payload joined by U+001F, "
    "hex, prefixed with the algorithm's name"
)
CARRIERS = ("compact", "adopt")  # entries that vouch for the carried digests


@dataclass(frozen=True, slots=True)
class Verification:
    """Result of a check: ``ok``, how many entries and rows, and the first problem with why."""

    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str = ""
    head: str | None = None
    key: str = ""  # which key checked it
    rows: int = 0  # bound rows checked against their entries
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    acknowledged: int = 0  # breaks a human acknowledged (entries of kind "acknowledge")

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        using = f" ({self.key})" if self.key else ""
        if self.ok:
            rows = f", {self.rows} rows match" if self.rows else ""
            acked = (
                f"; {self.acknowledged} acknowledged break(s): wb.audit.df(kind='acknowledge')"
                if self.acknowledged
                else ""
            )
            return f"audit chain intact: {self.entries} entries{rows}, head {self.head}{using}{acked}"
        where = f"entry {self.first_bad_id}" if self.first_bad_id is not None else "a row with no entry"
        more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        return f"audit chain BROKEN at {where}: {self.reason}{more}{using}"


@dataclass
class _Walk:
    entries: int = 0
    last_id: int = 0
    last_hash: str = GENESIS
    expected: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    carrier: tuple[int, dict[str, Any]] | None = None
    keyed: bool = False
    acknowledged: int = 0


def walk(
    rows: Iterable[dict[str, Any]],
    base: str = GENESIS,
    base_id: int = 0,
    key: AuditKey | None = None,
    collect: _Walk | None = None,
) -> Verification:
    """Check entries (in id order) against each other and their hashes, from ``base`` after ``base_id``."""
    state = collect or _Walk()
    prev, prev_id, n = base, base_id, 0
    for row in rows:
        n += 1
        if row["id"] != prev_id + 1:
            gap = f"entry {prev_id + 1}" if row["id"] == prev_id + 2 else f"entries {prev_id + 1}-{row['id'] - 1}"
            what = f"{gap} missing before it (deleted)" if row["id"] > prev_id else "out of order (moved)"
            return Verification(False, n, row["id"], what)
        if row["prev_hash"] != prev:
            return Verification(
                False,
                n,
                row["id"],
                "it does not chain to the entry before it (an entry was deleted, inserted or moved)",
            )
        keyed = str(row["hash"]).startswith(KEYED)
        if keyed and key is None:
            raise AuditKeyMissing(f"entry {row['id']} is keyed: set {KEY_ENV} (or restore the key file) to verify")
        if state.keyed and not keyed:
            return Verification(False, n, row["id"], "an unkeyed entry after keyed ones (the chain was rewritten)")
        if not check_entry(key, row):
            return Verification(False, n, row["id"], "its content does not match its hash (edited)")
        state.keyed = state.keyed or keyed
        state.acknowledged += row["kind"] == "acknowledge"
        if '"bind"' in row["payload"] or row["kind"] in CARRIERS:
            payload = json.loads(row["payload"])
            for b in payload.get("bind", ()):
                state.expected[(b["t"], b["k"])] = (row["id"], b)
            if row["kind"] in CARRIERS and "carry" in payload:
                state.carrier = (row["id"], payload["carry"])
        prev, prev_id = row["hash"], row["id"]
    state.entries, state.last_id, state.last_hash = n, prev_id, prev
    return Verification(True, n, head=prev)


class AuditLog:
    """``wb.audit``: verify the chain and the rows it binds, read it as a DataFrame, export it with its proof."""

    def __init__(self, store: Store):
        self.store = store

    def verify(self) -> Verification:
        """Recompute every hash, then every bound row's digests; the first problem is named.

        The hourly spend totals budgets read are checked against the calls they sum as well
        (they are derived from rows the log binds, so they are not entries of their own).

        Needs the key the log was written with (``WORKBENCH_AUDIT_KEY`` or the key file);
        without it, or with another one, it raises a :class:`WorkbenchError` saying so.
        """
        heads = self.store.query("SELECT id, hash, mac, key_id FROM audit_head WHERE k = 1")
        head = heads[0] if heads else None
        key = self._key(head)
        base, base_id = GENESIS, 0
        checkpoint = self.store.query("SELECT last_id, last_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        if checkpoint:
            base, base_id = checkpoint[0]["last_hash"], checkpoint[0]["last_id"]
        state = _Walk(last_id=base_id, last_hash=base)
        using = key.describe() if key else "no key: legacy entries only"
        with self.store.lock:
            cursor = self.store.conn.execute(
                "SELECT id, ts, kind, ref, payload, prev_hash, hash FROM audit ORDER BY id"
            )
            names = [d[0] for d in cursor.description]
            result = walk((dict(zip(names, r, strict=True)) for r in cursor), base, base_id, key, state)
            if not result.ok:
                return _with(result, key=using, problems=[(result.first_bad_id, result.reason)])
            problem = _head_problem(head, state, key)
            if problem is not None:
                return Verification(False, state.entries, problem[0], problem[1], key=using, problems=[problem])
            problems, rows = self._rows(state, key)
            problems += [(None, problem) for problem in spend_problems(self.store.conn)]
        if problems:
            problems.sort(key=lambda p: math.inf if p[0] is None else p[0])
            first = problems[0]
            return Verification(False, state.entries, first[0], first[1], key=using, rows=rows, problems=problems)
        return Verification(
            True, state.entries, head=state.last_hash, key=using, rows=rows, acknowledged=state.acknowledged
        )

    def _key(self, head: dict[str, Any] | None) -> AuditKey | None:
        """The key to check with: ours, if the log was written with it (legacy logs need none)."""
        try:
            key = audit_key(create=False)
        except AuditKeyUnsafe:
            raise  # (a key others can read is not used, even for a legacy log)
        except AuditKeyMissing:
            if head is None or not head["key_id"]:
                return None
            raise AuditKeyMissing(
                f"no audit key: the log was written with key {head['key_id']}; set {KEY_ENV} or "
                "restore the key file it was written with"
            ) from None
        if head is not None and head["key_id"] and head["key_id"] != key.id:
            raise AuditKeyMissing(
                f"the log was written with key {head['key_id']}, not with {key.describe()}; set "
                f"{KEY_ENV} to the key it was written with"
            )
        return key

    def _rows(self, state: _Walk, key: AuditKey | None) -> tuple[list[tuple[int | None, str]], int]:
        """Each bound row against the newest digest the log (or the carried digests) holds for it."""
        conn = self.store.conn
        problems: list[tuple[int | None, str]] = []
        carried = conn.execute("SELECT tbl, key, entry, digest FROM audit_carry").fetchall()
        if carried or state.carrier is not None:
            if state.carrier is None or key is None:
                problems.append((None, f"{len(carried)} carried row digests have no entry vouching for them"))
            elif carry_mac(key, [tuple(r) for r in carried]) != state.carrier[1].get("mac"):
                problems.append((state.carrier[0], "the row digests kept by compaction were edited"))
            for tbl, row_key, entry, digest in carried:
                newest = state.expected.get((tbl, row_key))
                if newest is None or newest[0] < entry:
                    state.expected[(tbl, row_key)] = (entry, json.loads(digest))
        if key is None:
            return problems, 0
        # rows from before entries bound rows are adopted by the first keyed write: once the log is keyed, none is left
        adopting = not state.keyed and conn.execute("SELECT 1 FROM audit_state WHERE k = 'adopt'").fetchone()
        # and those of a table a later version began to bind, by the first write after the upgrade
        later = conn.execute("SELECT v FROM audit_state WHERE k = 'adopt_tables'").fetchone()
        adopted_later = set(later[0].split(",")) if later else set()
        checked = 0
        for table, spec in BOUND.items():
            for row in conn.execute(select_sql(table, where_key=False)):
                checked += 1
                name = f"{table} row {row[0]}"
                entry, want = state.expected.pop((table, str(row[0])), (None, None))
                if want is None:
                    if not adopting and table not in adopted_later:  # rows from before binding: the next write
                        problems.append((None, f"{name} has no audit entry (written outside workbench)"))
                    continue
                if want["d"] is None:
                    problems.append((entry, f"{name} was deleted at entry {entry} but is there again"))
                    continue
                got = row_digests(key, table, row)
                if got["d"] != want["d"] or (spec.body and got.get("b") != want.get("b")):
                    what = "its " + ("body (prompt, answer or arguments)" if got["d"] == want["d"] else "content")
                    problems.append((entry, f"{name}: {what} differs from what entry {entry} recorded (edited)"))
        for (table, row_key), (entry, want) in state.expected.items():
            if want["d"] is not None and table in BOUND:
                problems.append((entry, f"{table} row {row_key}, recorded at entry {entry}, is missing (deleted)"))
        return problems, checked

    def acknowledge(self, by: str, reason: str) -> str:
        """Let a log whose end was cut off (or whose head was edited) grow again, with the break on record.

        Writes an ``acknowledge`` entry chained to the last entry that is there, naming who
        acknowledged, why, and what the old head said. ``verify()`` keeps reporting any
        damage inside the log; only appending resumes.
        """
        if not by or not reason:
            raise WorkbenchError("acknowledging a broken audit log needs who (--by) and why (--reason)")
        key = audit_key()
        with self.store.transaction() as conn:
            head = conn.execute("SELECT id, hash FROM audit_head WHERE k = 1").fetchone()
            last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
            if last is None:
                last = conn.execute(
                    "SELECT last_id, last_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1"
                ).fetchone() or (0, GENESIS)
            mac = head_mac(key, last[0], last[1])
            conn.execute(
                "INSERT INTO audit_head (k, id, hash, mac, key_id) VALUES (1, ?, ?, ?, ?) ON CONFLICT(k) "
                "DO UPDATE SET id = excluded.id, hash = excluded.hash, mac = excluded.mac, "
                "key_id = excluded.key_id",
                (last[0], last[1], mac, key.id),
            )
            entry = self.store.audit(
                conn,
                "acknowledge",
                "chain",
                {
                    "by": by,
                    "reason": reason,
                    "old_head": {"id": head[0], "hash": head[1]} if head else None,
                    "last_entry": last[0],
                },
                who={"user": by},
            )
        return f"audit log acknowledged at entry {entry} by {by}; writing resumes"

    def df(self, kind: str | None = None, since: str | None = None) -> pd.DataFrame:
        """Entries (oldest first) with who, when, what: ``kind`` (call, tool_call, approval, ...) and ``since``."""
        import pandas as pd

        rows = self._rows_of(kind, since)
        out = []
        for row in rows:
            payload = json.loads(row["payload"])
            who = payload.pop("who", {})
            payload.pop("bind", None)
            out.append(
                {
                    "id": row["id"],
                    "ts": row["ts"],
                    "kind": row["kind"],
                    "ref": row["ref"],
                    "user": who.get("user") or who.get("os_user"),
                    "host": who.get("host"),
                    "notebook": who.get("notebook"),
                    "what": payload,
                    "hash": row["hash"],
                }
            )
        return pd.DataFrame(out, columns=["id", "ts", "kind", "ref", "user", "host", "notebook", "what", "hash"])

    def export(
        self,
        path: str | Path | None = None,
        *,
        since: str | None = None,
        format: str = "jsonl",
        overwrite: bool = False,
    ) -> str:
        """Entries since ``since`` (``30d``, an ISO date) as JSON lines, then one ``proof`` line.

        The proof holds the hash the first exported entry chains to, the last hash and the
        store's head, so the file can be checked on its own (:func:`verify_export`, with the key).
        Returns the text; with ``path``, also writes it there (a file there that is not an earlier export is
        replaced only with ``overwrite``).
        """
        if format != "jsonl":
            raise WorkbenchError(f"audit export writes jsonl only, not {format!r}")
        rows = self._rows_of(None, since)
        head = self.store.query("SELECT id, hash FROM audit_head WHERE k = 1")
        lines = [
            json.dumps({**row, "payload": json.loads(row["payload"]), "payload_text": row["payload"]}, sort_keys=True)
            for row in rows
        ]
        proof = {
            "algorithm": ALGORITHM,
            "entries": len(rows),
            "first_id": rows[0]["id"] if rows else None,
            "last_id": rows[-1]["id"] if rows else None,
            "base": rows[0]["prev_hash"] if rows else None,
            "last_hash": rows[-1]["hash"] if rows else None,
            "store_head": head[0] if head else None,
            "since": since,
        }
        text = "\n".join([*lines, json.dumps({"proof": proof}, sort_keys=True)]) + "\n"
        if path is not None:
            write_output(path, text, "the audit export", signatures=('{"hash": ', '{"proof": '), overwrite=overwrite)
        return text

    def _rows_of(self, kind: str | None, since: str | None) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[str | int] = []
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if since:  # from the first entry written since (Store.first_entry_at): an export is one unbroken stretch
            with self.store.lock:
                first = self.store.first_entry_at(self.store.conn, cutoff(since))
            where.append("id >= ?")
            params.append(first or 0)
        sql = "SELECT id, ts, kind, ref, payload, prev_hash, hash FROM audit"
        return self.store.query(sql + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id", params)


def _head_problem(head: dict[str, Any] | None, state: _Walk, key: AuditKey | None) -> tuple[int, str] | None:
    if head is None:
        return (state.last_id, "the chain's head is missing") if state.entries else None
    if head["id"] != state.last_id or head["hash"] != state.last_hash:
        if head["id"] > state.last_id:
            return state.last_id + 1, f"entries {state.last_id + 1}-{head['id']} were removed from the end"
        return head["id"], "the newest entry is not the recorded head"
    if (
        key is not None
        and state.keyed
        and (head["mac"] is None or head["mac"] != head_mac(key, head["id"], head["hash"]))
    ):
        return head["id"], "the head's keyed mark does not match (the head was rewritten)"
    return None


def _with(result: Verification, **changes: Any) -> Verification:
    from dataclasses import replace

    return replace(result, **changes)


_READABLE = ("id", "ts", "kind", "ref", "prev_hash", "hash")


def verify_export(path: str | Path) -> Verification:
    """Check an exported file by itself (with the key): the chain from the proof's base to its last hash.

    Every readable field of a line must agree with the text that was hashed: an edited
    ``payload`` beside an untouched ``payload_text`` is caught.
    """
    try:
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"{path} is not an audit export ({exc})") from None
    if not lines or not isinstance(lines[-1], dict) or "proof" not in lines[-1]:
        raise WorkbenchError(f"{path} is not an audit export (its last line must be the proof)")
    proof, rows = lines[-1]["proof"], lines[:-1]
    if len(rows) != proof.get("entries"):
        return Verification(
            False, len(rows), None, f"the proof counts {proof.get('entries')} entries, the file has {len(rows)}"
        )
    for row in rows:
        missing = [f for f in (*_READABLE, "payload", "payload_text") if f not in row]
        if missing:
            return Verification(False, len(rows), row.get("id"), f"the line lacks {', '.join(missing)}")
        if row["payload"] != json.loads(row["payload_text"]):
            return Verification(
                False, len(rows), row["id"], "its readable payload differs from the hashed text (edited)"
            )
    keyed = any(str(r["hash"]).startswith(KEYED) for r in rows)
    key = audit_key(create=False) if keyed else None
    plain = [{**{f: r[f] for f in _READABLE}, "payload": r["payload_text"]} for r in rows]
    result = walk(plain, proof.get("base") or GENESIS, rows[0]["id"] - 1 if rows else 0, key)
    if result.ok and result.head != proof.get("last_hash"):
        return Verification(False, len(rows), proof.get("last_id"), "the last entry is not the proof's last hash")
    return _with(result, key=key.describe() if key else "")
