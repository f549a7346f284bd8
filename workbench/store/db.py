"""The SQLite store: opened with WAL and a busy timeout, migrated on open.

A call is written with its attempts, spans, audit entry and session row in one
``BEGIN IMMEDIATE`` transaction, committed before ``ask()`` returns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from workbench.errors import WorkbenchError, shown
from workbench.store.chain import (
    BOUND,
    GENESIS,
    KEY_ENV,
    KEYED,
    AuditChainBroken,
    AuditKey,
    audit_key,
    bind_rows,
    carry_mac,
    check_entry,
    entry_hash,
    head_mac,
    row_digests,
    select_sql,
)
from workbench.store.checkpoint import BACKSTOP, EVERY, Checkpointer
from workbench.store.migrations import migrate, pending
from workbench.store.records import ATTEMPT_COLUMNS, CALL_COLUMNS, AttemptRow, CallRow, check_keys

if TYPE_CHECKING:
    import sqlite_utils

SPAN_COLUMNS = (
    "span_id",
    "trace_id",
    "parent_id",
    "call_id",
    "name",
    "start_ns",
    "end_ns",
    "status",
    "attributes",
)


_ENTRY_FIELDS = ("id", "ts", "kind", "ref", "payload", "prev_hash", "hash")
# The newest entry of a kind about a ref (the audit_kind index): for a call, the one that recorded it (the only one
# binding its row); for a memory, the last write, each of which binds its row under its id.
_NEWEST_ENTRY = f"SELECT {', '.join(_ENTRY_FIELDS)} FROM audit WHERE kind = ? AND ref = ? ORDER BY id DESC LIMIT 1"
_USED_AS = {"session history": "sent to the model as history", "replay": "replayed"}
_KILL_ENTRY = (  # the newest entry about this store's own kill switch (a team's switch lives in Redis: "team" set)
    f"SELECT {', '.join(_ENTRY_FIELDS)} FROM audit WHERE kind = 'kill' AND ref = 'switch' "
    "AND json_extract(payload, '$.team') IS NULL ORDER BY id DESC LIMIT 1"
)
_SESSION_CALLS = (  # the answered live calls the log recorded for a session since a time (audit_call_session)
    "SELECT id, ref FROM audit WHERE kind = 'call' AND json_extract(payload, '$.session') = ? AND ts >= ? "
    "AND json_extract(payload, '$.status') = 'ok' AND json_extract(payload, '$.mode') = 'live' "
    "AND json_extract(payload, '$.replay_of') IS NULL ORDER BY id"
)


_ATTEMPT_FIELDS = ("id", *BOUND["attempts"].core)
_ATTEMPTS_OF = select_sql("attempts", where_key=False) + " WHERE call_id = ? ORDER BY id"
_RECORDED_COLUMNS = ("id", *BOUND["calls"].core, *BOUND["calls"].optional, *BOUND["calls"].body, "compacted_at")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({marks})'


_INSERT_CALL = _insert_sql("calls", CALL_COLUMNS)
_INSERT_ATTEMPT = _insert_sql("attempts", ATTEMPT_COLUMNS)
_INSERT_SPAN = _insert_sql("spans", SPAN_COLUMNS)
_INSERT_AUDIT = _insert_sql("audit", _ENTRY_FIELDS)
_TOUCH_SESSION = (
    "INSERT INTO sessions (name, created_at, history_from, state) VALUES (?, ?, '', '{}') ON CONFLICT(name) DO NOTHING"
)


def new_id(nbytes: int = 8) -> str:
    """A lowercase hex id (16 hex digits by default, 32 for trace ids) that starts with the time.

    The first 4 digits count 4.2 ms steps (wrapping every 4.6 minutes; a trace id starts with the millisecond, as
    a UUIDv7 does), so a call's rows land next to each other, and next to the last call's, in the indexes keyed on
    them, instead of on a random page of each: a commit writes fewer pages. The other 48 bits are random: two ids
    collide no more often than two fully random 64-bit ones do over a store's life, and two made in one step
    about once in 2^48.
    """
    if nbytes >= 16:
        return f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}{os.urandom(nbytes - 6).hex()}"
    if nbytes >= 8:
        return f"{time.time_ns() >> 22 & 0xFFFF:04x}{os.urandom(nbytes - 2).hex()}"
    return os.urandom(nbytes).hex()  # (a short token: all random)


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
        raise WorkbenchError(
            f"{shown(when)} is not a time: write an age such as 30d, 12h or 90m, or an ISO date such as 2026-11-01"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat(timespec="microseconds")


def audit_hash(prev_hash: str, ts: str, kind: str, ref: str, payload: str) -> str:
    """The keyed digest of one audit entry (see store/chain.py), prefixed with its name."""
    return entry_hash(audit_key(), prev_hash, ts, kind, ref, payload)


class Store:
    """One SQLite file shared by every part of the runtime (and by several kernels)."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise WorkbenchError(
                f"cannot open the store at {self.path} ({exc}); set `store` in workbench.toml "
                "or WORKBENCH_STORE to a writable path"
            ) from None
        self.conn = conn
        self.lock = threading.RLock()
        self._depth = 0  # > 0 inside batch(): transactions become savepoints
        self._kill_checked: tuple[tuple[Any, ...], int | None] | None = None  # the kill entry last checked, its answer
        self.on_spans: Callable[[list[tuple[str, str]]], None] | None = None  # told (trace, span) just written
        self.on_broken_chain: Callable[[str], None] | None = None  # told when the audit chain refuses to grow
        self._commits = 0  # every checkpoint.EVERY commits, the checkpointer is woken (see store/checkpoint.py)
        # The audit chain's tail, (data_version, key id, entry, hash), as this connection last committed it and as the
        # transaction under way wrote it (see _chain_tail).
        self._tail_seen: tuple[int, str, int, str] | None = None
        self._tail_written: tuple[int, str, int, str] | None = None
        self._file = self.path.absolute()  # (the file this connection opened, whatever the working folder is later)
        self._checkpointer: Checkpointer | None = None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._wal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP if self._wal else 1000}")
            with self.lock:
                if pending(conn):
                    migrate(self.db)
                self._adopt_pending = (
                    conn.execute("SELECT 1 FROM audit_state WHERE k IN ('adopt', 'adopt_tables')").fetchone()
                    is not None
                )
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise WorkbenchError(
                f"the store at {self.path} is not a workbench SQLite database ({exc}); point "
                "`store` in workbench.toml or WORKBENCH_STORE at another file"
            ) from None

    @cached_property
    def db(self) -> sqlite_utils.Database:
        """The connection as a ``sqlite_utils.Database`` (schema work): imported on first use, since sqlite-utils
        imports pandas and numpy, which a process that only records and reads calls never needs.
        """
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

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
                    self._tail_seen = self._tail_written = None  # (an entry it wrote may be gone: check in full)
                    raise
                finally:
                    self._depth -= 1
                self.conn.execute(f"RELEASE {name}")
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException as exc:
                self.conn.execute("ROLLBACK")
                self._tail_written = None
                if isinstance(exc, AuditChainBroken) and self.on_broken_chain is not None:
                    self.on_broken_chain(str(exc))
                raise
            self.conn.execute("COMMIT")
            self._committed()

    def _committed(self) -> None:
        """Count a commit; every ``EVERY``-th wakes the background checkpointer (started on the first). The audit
        chain's tail it wrote, if any, is what the next entry chains to while no other connection commits.
        """
        if self._tail_written is not None:
            self._tail_seen, self._tail_written = self._tail_written, None
        self._commits += 1
        if self._wal and self._commits % EVERY == 0:
            if self._checkpointer is None:
                try:
                    self._checkpointer = Checkpointer(self._file, self)
                except RuntimeError:  # no thread can be started: the writer's own checkpoints (BACKSTOP) do it
                    self._wal = False
                    return
            self._checkpointer.wake()

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
                self._committed()
                self.conn.execute(f"PRAGMA cache_size = {int(cache)}")
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint)}")

    def record_call(
        self,
        call: CallRow,
        attempts: Sequence[AttemptRow],
        spans: Sequence[tuple[Any, ...]],
        settle_reservation: bool = False,
        audit_also: Sequence[tuple[str, str, dict[str, Any]]] = (),
        blobs: Sequence[tuple[str, str, int, int, bytes]] = (),
        team: str | None = None,
    ) -> None:
        """Write a call, its attempts, spans, session row and audit entry atomically.

        ``settle_reservation`` deletes the call's budget reservation in the same
        transaction, so its worst case is replaced by its real cost at one instant;
        ``audit_also`` chains more entries (``kind, ref, payload``) in it, e.g. a new spec version;
        ``blobs`` (sha256, mime, width, height, bytes) are the images its request names, stored once
        each: the call's audit entry binds those this call stored first; ``team`` names the team state
        (``[team]`` Redis) its budgets were reserved in, for the audit entry.
        """
        check_keys("calls", call)
        for attempt in attempts:
            check_keys("attempts", attempt)
        call_row = tuple(call.get(c) for c in CALL_COLUMNS)
        attempt_rows = [tuple(a.get(c) for c in ATTEMPT_COLUMNS) for a in attempts]
        payload = {
            "call": call["id"],
            "route": call.get("route"),
            "model": call.get("model"),
            "status": call.get("status"),
            "mode": call.get("mode"),
            "fingerprint": call.get("fingerprint"),
            "text_sha256": hashlib.sha256((call.get("text") or "").encode()).hexdigest(),
            "cost_usd": call.get("cost_usd"),
            "tokens": call.get("total_tokens"),
            "replay_of": call.get("replay_of"),
            "context_spec": call.get("context_spec"),
            "context_version": call.get("context_version"),
            "session": call.get("session"),
            "task": call.get("task"),
            "agent": call.get("agent"),
        }
        if team is not None:
            payload["team"] = team
        with self.transaction() as conn:
            if call.get("session"):
                conn.execute(_TOUCH_SESSION, (call["session"], call["started_at"]))
            conn.execute(_INSERT_CALL, call_row)
            attempt_ids = [conn.execute(_INSERT_ATTEMPT, row).lastrowid for row in attempt_rows]  # (ids: the table's)
            if spans:
                conn.executemany(_INSERT_SPAN, spans)
                if self.on_spans is not None:
                    self.on_spans([(s[1], s[0]) for s in spans])
            if settle_reservation:
                conn.execute("DELETE FROM reservations WHERE call_id = ?", (call["id"],))
            bind = [("calls", call["id"]), *(("attempts", str(i)) for i in attempt_ids)]
            for sha, mime, width, height, data in blobs:
                stored = conn.execute(
                    "INSERT OR IGNORE INTO blobs (sha256, mime, width, height, bytes, data, first_call, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (sha, mime, width, height, len(data), data, call["id"], call["started_at"]),
                ).rowcount
                if stored:
                    bind.append(("blobs", sha))
            self.audit(conn, "call", call["id"], payload, who={"user": call.get("user")}, bind=bind)
            for kind, ref, extra in audit_also:
                self.audit(conn, kind, ref, extra)

    def add_spans(self, conn: sqlite3.Connection, spans: Sequence[tuple[Any, ...]]) -> None:
        """Write finished spans (``observability.span_row``) inside the caller's transaction.

        A span written again with the same id (a run's root, as it grows) replaces the old one.
        """
        conn.executemany(_INSERT_SPAN.replace("INSERT", "INSERT OR REPLACE", 1), spans)
        if self.on_spans is not None and spans:
            self.on_spans([(s[1], s[0]) for s in spans])

    def append_audit(self, kind: str, ref: str, payload: dict[str, Any], bind: Sequence[tuple[str, str]] = ()) -> int:
        """Add one entry to the hash-chained audit log in its own transaction; returns its id."""
        with self.transaction() as conn:
            return self.audit(conn, kind, ref, payload, bind=bind)

    def audit(
        self,
        conn: sqlite3.Connection,
        kind: str,
        ref: str,
        payload: dict[str, Any],
        who: dict[str, Any] | None = None,
        bind: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Chain an entry for an event, inside the transaction (``conn``) that writes the event; returns its id.

        The payload is scrubbed of secrets and stamped with who wrote it (see audit/entry.py).
        ``bind`` names the rows (``table, key``) the entry stands for: their keyed digests, read
        back inside this transaction, go into the entry, and ``verify()`` checks the live rows
        against them. The chain's tail is checked against its head first: a log whose end was
        cut off, or whose last entry or head was edited, is not extended (:class:`AuditChainBroken`).
        """
        from workbench.audit.entry import entry_payload

        key = audit_key()
        if self._adopt_pending and kind not in ("adopt", "acknowledge"):  # (a broken log is acknowledged first)
            self._adopt(conn, key)
        bindings = bind_rows(conn, key, list(bind)) if bind else None
        text = entry_payload(payload, who, bindings)
        version, last_id, prev = self._chain_tail(conn, key)
        ts = utcnow()
        digest = entry_hash(key, prev, ts, kind, ref, text)
        entry = last_id + 1
        conn.execute(_INSERT_AUDIT, (entry, ts, kind, ref, text, prev, digest))
        conn.execute(
            "INSERT INTO audit_head (k, id, hash, mac, key_id) VALUES (1, ?, ?, ?, ?) "
            "ON CONFLICT(k) DO UPDATE SET id = excluded.id, hash = excluded.hash, mac = excluded.mac, "
            "key_id = excluded.key_id",
            (entry, digest, head_mac(key, entry, digest), key.id),
        )
        if version is not None and conn.in_transaction:  # (known until it commits or rolls back: transaction())
            self._tail_written = (version, key.id, entry, digest)
        return entry

    def _chain_tail(self, conn: sqlite3.Connection, key: AuditKey) -> tuple[int | None, int, str]:
        """The ``PRAGMA data_version`` the transaction began with (``None`` on another connection) and what a new entry
        chains to: :meth:`_tail`, checked, unless this connection knows it already. That is the entry this
        transaction wrote last (it holds the write lock), or the tail its last commit left when no other connection
        has committed since (``data_version`` unchanged) and the key is the same: then nothing can have cut or edited
        it, and the check (two reads and two HMACs, ~15 us a call) would find what was written.
        """
        if conn is not self.conn:
            return (None, *self._tail(conn, key))
        written = self._tail_written
        if written is not None and written[1] == key.id:
            return written[0], written[2], written[3]
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        seen = self._tail_seen
        if written is None and seen is not None and seen[0] == version and seen[1] == key.id:
            return version, seen[2], seen[3]
        return (version, *self._tail(conn, key))

    def next_entry(self, conn: sqlite3.Connection, key: AuditKey) -> int:
        """The id the next audit entry will have (after checking the chain's tail)."""
        return self._tail(conn, key)[0] + 1

    def write_carry(
        self, conn: sqlite3.Connection, key: AuditKey, carry: dict[tuple[str, str], tuple[int, dict[str, Any]]]
    ) -> dict[str, Any]:
        """Replace the carried row digests; returns what the entry vouching for them records (count and mac)."""
        rows = [(t, k, entry, json.dumps(d, sort_keys=True)) for (t, k), (entry, d) in carry.items()]
        conn.execute("DELETE FROM audit_carry")
        conn.executemany("INSERT INTO audit_carry (tbl, key, entry, digest) VALUES (?, ?, ?, ?)", rows)
        return {"rows": len(rows), "mac": carry_mac(key, rows)}

    def kept_carry(self, conn: sqlite3.Connection, key: AuditKey) -> dict[tuple[str, str], tuple[int, dict[str, Any]]]:
        """The carried row digests (``audit_carry``), about to be vouched for again by a new entry: refused
        (:class:`AuditChainBroken`) when they are not the ones the log vouched for last, unless a human
        acknowledged the log since.
        """
        kept = conn.execute("SELECT tbl, key, entry, digest FROM audit_carry").fetchall()
        vouched = conn.execute(
            "SELECT id, payload FROM audit WHERE kind IN ('compact', 'adopt') ORDER BY id DESC LIMIT 1"
        ).fetchone()
        mac = json.loads(vouched[1]).get("carry", {}).get("mac") if vouched else None
        if kept and carry_mac(key, [tuple(r) for r in kept]) != mac:
            acknowledged = conn.execute("SELECT MAX(id) FROM audit WHERE kind = 'acknowledge'").fetchone()[0]
            if acknowledged is None or (vouched is not None and acknowledged < vouched[0]):
                self._broken("the row digests kept by compaction were edited")
        return {(t, k): (e, json.loads(d)) for t, k, e, d in kept}

    def _adopt(self, conn: sqlite3.Connection, key: AuditKey) -> None:
        """Bind the rows written before entries bound them (a store from an older version), once: every bound
        table's (``adopt``), or those of the tables a later version began to bind (``adopt_tables``), whose
        digests join the ones already carried.
        """
        state = dict(conn.execute("SELECT k, v FROM audit_state WHERE k IN ('adopt', 'adopt_tables')").fetchall())
        if not state:
            self._adopt_pending = False
            return
        entry = self.next_entry(conn, key)
        if "adopt" in state:
            tables, carry = list(BOUND), {}
        else:
            tables, carry = [t for t in state["adopt_tables"].split(",") if t in BOUND], self.kept_carry(conn, key)
        for table in tables:
            for row in conn.execute(select_sql(table, where_key=False)).fetchall():
                digests = row_digests(key, table, row)
                carry[(table, digests["k"])] = (entry, digests)
        vouch = self.write_carry(conn, key, carry)
        conn.execute("DELETE FROM audit_state WHERE k IN ('adopt', 'adopt_tables')")
        self._adopt_pending = False  # (a refusal above leaves it pending: the next write tries again)
        why = "rows written before audit entries bound rows" + ("" if "adopt" in state else f" of {', '.join(tables)}")
        self.audit(conn, "adopt", "rows", {"carry": vouch, "tables": tables, "why": why})

    def check_vouched(self, conn: sqlite3.Connection, table: str, row_key: str) -> None:
        """Before acting on a row (an approval about to run its tool): refuse (:class:`AuditChainBroken`) unless
        the audit log vouches for it as it is now. Its keyed digests must be those the newest entry binding it
        recorded (or, for a row whose entries were compacted away, the carried ones), and every entry from that
        one to the head must be intact and chained, so none that bound it later was cut out or edited.
        """
        key = audit_key()
        if self._adopt_pending:  # rows of a store from before entries bound them are vouched for by adoption
            self._adopt(conn, key)
        last_id = self._tail(conn, key)[0]  # (checks the head against the last entry)
        needle = f'"k": {json.dumps(str(row_key))}, "t": {json.dumps(table)}}}'  # a binding, as entry_payload writes it
        name, since, want = f"{table} row {row_key}", None, None
        for entry_id, payload in conn.execute(  # the newest entry that binds it (the text may be elsewhere too)
            "SELECT id, payload FROM audit WHERE instr(payload, ?) > 0 ORDER BY id DESC", (needle,)
        ):
            bound = [b for b in json.loads(payload).get("bind", ()) if b["t"] == table and b["k"] == str(row_key)]
            if bound:
                since, want = entry_id, bound[0]
                break
        if since is None:
            carried = self.kept_carry(conn, key).get((table, str(row_key)))  # (its digests checked against their mac)
            voucher = conn.execute("SELECT MAX(id) FROM audit WHERE kind IN ('compact', 'adopt')").fetchone()[0]
            if carried is None or voucher is None:
                self._broken(f"no audit entry vouches for {name} (written outside workbench)")
            since, want = voucher, carried[1]
        cursor = conn.execute(
            "SELECT id, ts, kind, ref, payload, prev_hash, hash FROM audit WHERE id >= ? ORDER BY id", (since,)
        )
        expected_id, prev = since, None
        for found_row in cursor:
            entry = dict(zip(_ENTRY_FIELDS, found_row, strict=True))
            if (
                entry["id"] != expected_id
                or (prev is not None and entry["prev_hash"] != prev)
                or not check_entry(key, entry)
            ):
                self._broken(f"entry {expected_id}, after the one vouching for {name}, was removed or edited")
            expected_id, prev = expected_id + 1, entry["hash"]
        if expected_id != last_id + 1:
            self._broken(f"entries after the one vouching for {name} are missing")
        row = conn.execute(select_sql(table), (row_key,)).fetchone()
        got = row_digests(key, table, row) if row is not None else {"d": None}
        if want is None or got["d"] != want["d"] or got.get("b") != want.get("b"):
            what = "is missing" if row is None else f"differs from what entry {since} recorded for it (edited)"
            self._broken(f"{name} {what}, so it is not acted on")

    def recorded_call(self, call_id: str, purpose: str = "replay") -> dict[str, Any]:
        """A recorded call's row, for a replay or the response cache to answer from (``purpose``), or a session
        re-run to re-send: read once and checked against the keyed digests the audit entry that recorded it
        holds (for a row from before entries bound rows: what adoption carried), so the values returned are the
        ones checked, with its ``attempts`` (dicts, checked too). An answer, prompt, request, token count or
        attempt edited in the SQLite file, or a row no entry recorded, is refused (:class:`AuditChainBroken`),
        never served. Indexed reads and an HMAC per row.
        """
        key = audit_key()
        if self._adopt_pending:  # a store from before entries bound rows: bind its rows first (once)
            with self.transaction() as conn:
                self._adopt(conn, key)
        with self.lock:
            conn = self.conn
            self._check_log_key(conn, key, f"nothing was served from the {purpose}")
            name = f"recorded call {call_id}"
            bound = self._newest_bindings(conn, key, "call", call_id, f"that recorded {name}", purpose) or []
            want = next((b for b in bound if b["t"] == "calls" and b["k"] == call_id), None)
            tried = {b["k"]: b for b in bound if b["t"] == "attempts"}
            row = conn.execute(select_sql("calls"), (call_id,)).fetchone()
            attempts = conn.execute(_ATTEMPTS_OF, (call_id,)).fetchall()
            # Rows recorded before entries bound them (all, or a call's attempts): adoption carried their digests.
            older = want is None or any(str(a[0]) not in tried for a in attempts)
            carried = self.kept_carry(conn, key) if older else {}
            if want is None:
                want = carried.get(("calls", call_id), (None, None))[1]
                if want is None:
                    self._tampered(purpose, f"no audit entry vouches for {name} (written outside workbench)")
        got = row_digests(key, "calls", row) if row is not None else {"d": None}
        if got["d"] != want["d"] or got.get("b") != want.get("b"):
            self._tampered(purpose, f"{name} differs from what its audit entry recorded (edited in the file)")
        for attempt in attempts:  # which deployment answered, and the model version it reported
            expected = tried.get(str(attempt[0])) or carried.get(("attempts", str(attempt[0])), (None, None))[1]
            if expected is None or row_digests(key, "attempts", attempt)["d"] != expected["d"]:
                what = "has no audit entry" if expected is None else "differs from what its audit entry recorded"
                self._tampered(purpose, f"attempt {attempt[0]} of {name} {what} (edited in the file)")
        if tried.keys() - {str(a[0]) for a in attempts}:
            self._tampered(purpose, f"an attempt of {name} was deleted from the file")
        recorded = dict(zip(_RECORDED_COLUMNS, row, strict=True))
        recorded["attempts"] = [dict(zip(_ATTEMPT_FIELDS, a[:-1], strict=True)) for a in attempts]  # (no compacted)
        return recorded

    def check_session_calls(self, session: str, purpose: str) -> None:
        """Before a session's recorded calls are used (its history sent to the model, its replay): refuse
        (:class:`AuditChainBroken`, and an alert) when a call the audit log recorded for ``session`` since its last
        reset is no longer in the file. An edited one is caught where each is read (:meth:`recorded_call`); this
        catches the one that is not read because it is gone. One indexed query.
        """
        since = self.session_start(session)
        with self.lock:
            logged = self.conn.execute(_SESSION_CALLS, (session, since)).fetchall()
            present: set[str] = set()
            for start in range(0, len(logged), 500):
                refs = [ref for _, ref in logged[start : start + 500]]
                marks = ", ".join("?" * len(refs))
                present.update(r[0] for r in self.conn.execute(f"SELECT id FROM calls WHERE id IN ({marks})", refs))
        gone = next(((entry, ref) for entry, ref in logged if ref not in present), None)
        if gone is not None:
            what = f"recorded call {gone[1]} of session {session!r} (audit entry {gone[0]}) was deleted from the file"
            self._tampered(purpose, what, unused=f"the session is not {_USED_AS.get(purpose, 'used')} without it")

    def check_memories(self, ids: Sequence[str], conn: sqlite3.Connection | None = None) -> None:
        """Before long-term memories are given to a model or returned by a search (or rewritten by a write, which
        would bind an edit as its own): refuse them (:class:`AuditChainBroken`, and an alert) unless each row is as
        the newest audit entry that wrote it recorded (for one from before entries bound memories: what adoption
        carried). A memory whose text, scope, kind, importance or status was edited in the SQLite file, one put
        back after it was forgotten, or one no entry wrote, is never given. An indexed read and an HMAC per memory.
        ``conn``: inside that write transaction.
        """
        if not ids:
            return
        key = audit_key()
        if conn is not None:
            if self._adopt_pending:  # a store from before entries bound memories: bind them first (once)
                self._adopt(conn, key)
            self._check_memories(conn, key, ids, alert=False)  # (the transaction alerts as it rolls back)
            return
        if self._adopt_pending:
            with self.transaction() as writing:
                self._adopt(writing, key)
        with self.lock:
            self._check_memories(self.conn, key, ids)

    def _check_memories(self, conn: sqlite3.Connection, key: AuditKey, ids: Sequence[str], alert: bool = True) -> None:
        self._check_log_key(conn, key, "no memory was given")
        carried: dict[tuple[str, str], tuple[int, dict[str, Any]]] | None = None
        for memory_id in ids:
            name = f"memory {memory_id}"
            bound = self._newest_bindings(conn, key, "memory", memory_id, f"that wrote {name}", "memory", alert)
            if bound is not None:
                want = next((b for b in bound if b["t"] == "memories" and b["k"] == memory_id), None)
            else:
                carried = self.kept_carry(conn, key) if carried is None else carried
                want = carried.get(("memories", memory_id), (None, None))[1]
            if want is None:
                self._tampered("memory", f"no audit entry vouches for {name} (written outside workbench)", alert)
            row = conn.execute(select_sql("memories"), (memory_id,)).fetchone()
            got = row_digests(key, "memories", row) if row is not None else {"d": None}
            if got["d"] != want["d"]:
                self._tampered(
                    "memory", f"{name} differs from what its audit entry recorded (edited in the file)", alert
                )

    def _newest_bindings(
        self, conn: sqlite3.Connection, key: AuditKey, kind: str, ref: str, which: str, purpose: str, alert: bool = True
    ) -> list[dict[str, Any]] | None:
        """The rows the newest ``kind`` entry about ``ref`` binds (``None``: no such entry), once its keyed hash is
        checked: an entry edited in the file is refused for ``purpose`` (``which`` names it in the message).
        """
        found = conn.execute(_NEWEST_ENTRY, (kind, ref)).fetchone()
        if found is None:
            return None
        return list(self._checked_payload(key, found, which, purpose, alert).get("bind", []))

    def _checked_payload(
        self, key: AuditKey, found: Sequence[Any], which: str, purpose: str, alert: bool = True
    ) -> dict[str, Any]:
        """The payload of an entry read as ``_ENTRY_FIELDS``, once its keyed hash is checked (an entry edited in the
        file is refused for ``purpose``; ``which`` names it in the message).
        """
        entry = dict(zip(_ENTRY_FIELDS, found, strict=True))
        if not check_entry(key, entry):
            self._tampered(purpose, f"the audit entry {entry['id']} {which} was edited", alert)
        return dict(json.loads(entry["payload"]))

    def kill_logged_on(self, conn: sqlite3.Connection | None = None) -> int | None:
        """The audit entry that turned this store's kill switch on, when it is the newest about the switch (its
        keyed hash checked; an edited one is refused); ``None`` when the log says the switch is off. The gate asks
        this when the ``switches`` row says off, so a kill switch deleted or turned off in the file still refuses.
        """
        key = audit_key()
        with self.lock:
            db = conn or self.conn
            found = db.execute(_KILL_ENTRY).fetchone()
            if found is None:
                return None
            self._check_log_key(db, key, "no call was sent")  # (a wrong key is not an edit)
        if self._kill_checked is not None and self._kill_checked[0] == (key.id, *found):  # (checked: the same bytes)
            return self._kill_checked[1]
        payload = self._checked_payload(key, found, "about the kill switch", "kill switch")
        on = int(found[0]) if payload.get("active") else None
        self._kill_checked = ((key.id, *found), on)
        return on

    def check_kill_switch(self) -> None:
        """Refuse (:class:`AuditChainBroken`, and an alert) when the kill switch's row says off but the log says on:
        the row was deleted or turned off in the file. Asked by the gate before every call the row lets through.
        """
        entry = self.kill_logged_on()
        if entry is not None:
            what = f"the kill switch turned on by audit entry {entry} was deleted or turned off in the file"
            self._tampered("kill switch", what)

    def _tampered(self, purpose: str, what: str, alert: bool = True, unused: str | None = None) -> NoReturn:
        """Refuse a recorded row edited in the file, and alert (as a chain that refuses to grow does)."""
        then = {
            "cache": "restore the store, or `wb.cache.clear()` so the call is answered anew",
            "session history": "restore the store, or reset the session (`wb.session(name).reset()`) to start its "
            "history afresh",
            "memory": "restore the store, or forget the memory (`wb.memory.forget(ID)`)",
            "kill switch": "restore the store, or lift the switch (`wb.budgets.lift()`, recorded)",
        }.get(purpose, "restore the store or record the call again in live mode")
        unused = unused or {
            "session history": "it is not sent to the model",
            "memory": "it is not given to the model",
            "kill switch": "no call is sent",
        }.get(purpose, "its answer is not served")
        message = (
            f"{purpose} refused: {what}, so {unused}. Run `workbench audit verify` to see what changed, then {then}"
        )
        if alert and self.on_broken_chain is not None:
            self.on_broken_chain(message)
        raise AuditChainBroken(message)

    def _check_log_key(self, conn: sqlite3.Connection, key: AuditKey, outcome: str) -> None:
        """Refuse a process whose audit key is not the one the log's head was written with (see :meth:`_check_key`)."""
        head = conn.execute("SELECT key_id FROM audit_head WHERE k = 1").fetchone()
        self._check_key(head[0] if head else None, key, outcome)

    @staticmethod
    def _check_key(key_id: str | None, key: AuditKey, outcome: str = "nothing was recorded") -> None:
        """Refuse a process whose audit key is not the one the log was written with."""
        if key_id and key_id != key.id:
            raise AuditChainBroken(
                f"the audit log was written with key {key_id}, but this process has "
                f"{key.describe()}: set {KEY_ENV} to the key the log was written with ({outcome})"
            )

    def _tail(self, conn: sqlite3.Connection, key: AuditKey) -> tuple[int, str]:
        """The id and hash a new entry chains to, after checking the tail against the head."""
        head = conn.execute("SELECT id, hash, mac, key_id FROM audit_head WHERE k = 1").fetchone()
        self._check_key(head[3] if head else None, key)
        cursor = conn.execute("SELECT id, ts, kind, ref, payload, prev_hash, hash FROM audit ORDER BY id DESC LIMIT 1")
        found = cursor.fetchone()
        if found is None:
            base_id, base = self._audit_base(conn)
            if head is not None and head[0] > base_id:
                self._broken(
                    f"the audit log is empty but its head is entry {head[0]}: entries {base_id + 1}-"
                    f"{head[0]} were removed"
                )
            return base_id, base
        last = dict(zip(_ENTRY_FIELDS, found, strict=True))
        if head is None:
            self._broken(f"the audit log's head is missing (its last entry is {last['id']})")
        elif head[0] != last["id"] or head[1] != last["hash"]:
            what = (
                f"entries {last['id'] + 1}-{head[0]} were removed from the end"
                if head[0] > last["id"]
                else f"its last entry {last['id']} is not the recorded head {head[0]}"
            )
            self._broken(what)
        elif head[2] is not None and not hmac.compare_digest(head[2], head_mac(key, head[0], head[1])):
            self._broken("its head was rewritten (the head's keyed mark does not match)")
        if head is not None and head[3] and not str(last["hash"]).startswith(KEYED):
            self._broken(f"its last entry {last['id']} is not keyed (the log was rewritten)")
        if not check_entry(key, last):
            self._broken(f"its last entry {last['id']} does not match its hash (edited)")
        return last["id"], last["hash"]

    def first_entry_at(self, conn: sqlite3.Connection, ts: str) -> int | None:
        """The id of the first audit entry written at or after ``ts`` (one past the last when none is; ``None`` for an
        empty log). Entries are appended as they happen, so their times rise with their ids and a binary search
        over the ids finds it in ~20 point reads, where an index on the time cost every entry written ~13 us. Each
        entry keeps the time the clock said: where a clock was set back, the times step back once, and the search
        finds one of the places where they pass ``ts`` (what follows it is still one unbroken stretch of the chain).
        """
        lo, hi = conn.execute("SELECT MIN(id), MAX(id) FROM audit").fetchone()
        if lo is None:
            return None
        left, right = lo, hi + 1
        while left < right:  # the first id whose entry (or the next one, past a gap) is at or after ts
            mid = (left + right) // 2
            at = conn.execute("SELECT ts FROM audit WHERE id >= ? ORDER BY id LIMIT 1", (mid,)).fetchone()[0]
            if str(at) >= ts:
                right = mid
            else:
                left = mid + 1
        found = conn.execute("SELECT id FROM audit WHERE id >= ? ORDER BY id LIMIT 1", (left,)).fetchone()
        return found[0] if found else hi + 1

    @staticmethod
    def _audit_base(conn: sqlite3.Connection) -> tuple[int, str]:
        """What an entry chains to in an empty log: the last compaction checkpoint, or genesis."""
        row = conn.execute("SELECT last_id, last_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    @staticmethod
    def _broken(what: str) -> NoReturn:
        raise AuditChainBroken(
            f"the audit log is broken: {what}. Nothing was recorded. Run `workbench audit verify`, "
            "investigate, then `workbench audit acknowledge --by NAME --reason ...` to go on "
            "writing"
        )

    def session_start(self, session: str) -> str:
        """When ``session`` began, as its views see it: its last reset (``''``: never reset, or unknown)."""
        rows = self.query("SELECT history_from FROM sessions WHERE name = ?", (session,))
        return (rows[0]["history_from"] or "") if rows else ""

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
        """Close the connection (the file stays), after the background checkpointer's."""
        with self.lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
            self.conn.close()
