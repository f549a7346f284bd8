"""Exactly-once: a run, and each tool call in it, is claimed with a compare-and-set before it goes on.

Two resumes of one parked run — from two threads, two kernels, or a card and a terminal —
must not both run its approved tool. Two locks, each one ``BEGIN IMMEDIATE``
compare-and-set, so no other writer (thread or process) can come between the read and the
write:

- **the run**: ``waiting`` (or ``stopped``, or ``running`` whose owner process is gone)
  becomes ``running`` with this caller as its owner. A caller that finds the run running
  under a live owner waits for it to finish, then returns what it recorded.
- **the tool call**: its row (and its approval, ``approved``/``modified`` with no
  execution yet) becomes ``running`` before the tool is called; the result and
  ``done`` are written in one transaction after. A caller that loses waits for the
  recorded result. If the owner died while the tool ran, nobody can know whether it took
  effect: the call is recorded as ``unknown`` and **never run again** (at most once).

An owner is ``host:pid:nonce``; on this host a pid that no longer exists is a dead owner
(the store is one SQLite file on one host: WAL does not work across machines).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workbench.errors import WorkbenchError
from workbench.store import Store, new_id, utcnow

_HOST = socket.gethostname()
POLL_S = 0.05
WAIT_S = 600.0  # the longest a second resume waits for the first to finish
UNKNOWN = "unknown"


def owner_token() -> str:
    """A new owner id for this process and caller: ``host:pid:nonce``."""
    return f"{_HOST}:{os.getpid()}:{new_id(4)}"


def alive(owner: str | None) -> bool:
    """Whether the process named in ``owner`` may still be running (always true for another host)."""
    if not owner:
        return False
    try:
        host, pid, _ = owner.rsplit(":", 2)
        number = int(pid)
    except ValueError:
        return False
    if host != _HOST:
        return True
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunBusy(WorkbenchError):
    """Another caller is still continuing this run after the wait."""


def claim_run(store: Store, table: str, run_id: str, owner: str) -> tuple[bool, str | None]:
    """Make ``owner`` the one that continues the run: ``(won, status it had)`` (status None: no such run).

    A ``done`` run is never claimed; a ``running`` one only when its owner is gone.
    """
    with store.transaction() as conn:
        row = conn.execute(f"SELECT status, owner FROM {table} WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return False, None
        status, current = row
        if status == "done" or (status == "running" and current != owner and alive(current)):
            return False, status
        conn.execute(f"UPDATE {table} SET status = 'running', owner = ? WHERE id = ?", (owner, run_id))
        return True, status


def release_run(store: Store, table: str, run_id: str, owner: str) -> None:
    """Give up ownership (the run's status stays what its owner last saved)."""
    store.execute(f"UPDATE {table} SET owner = NULL WHERE id = ? AND owner = ?", (run_id, owner))


def wait_for_run(store: Store, table: str, run_id: str, owner: str, wait_s: float = WAIT_S) -> str | None:
    """Claim the run, waiting while another live owner continues it.

    Returns ``None`` once this caller owns it, or the status it ended in when another
    caller finished it first (``done``), or raises :class:`RunBusy` after ``wait_s``.
    """
    deadline = time.monotonic() + wait_s
    while True:
        won, status = claim_run(store, table, run_id, owner)
        if won:
            return None
        if status is None:
            raise WorkbenchError(f"no run {run_id!r} in {table}")
        if status != "running":
            return status
        if time.monotonic() > deadline:
            holder = store.query(f"SELECT owner FROM {table} WHERE id = ?", (run_id,))[0]["owner"]
            raise RunBusy(
                f"run {run_id} is being continued by {holder} for over {wait_s:.0f} s; its result will be "
                "in the store when it ends: try again later"
            )
        time.sleep(POLL_S)


@contextmanager
def owning(store: Store, table: str, run_id: str, owner: str) -> Iterator[None]:
    """Release the run when the block ends, however it ends."""
    try:
        yield
    finally:
        release_run(store, table, run_id, owner)


def claim_tool_call(
    store: Store, row: dict[str, Any], approval_id: str | None, owner: str, audit: dict[str, Any]
) -> dict[str, Any] | None:
    """Claim a tool call before it runs: ``None`` if this caller won (and must run it), else its row.

    ``row`` is the ``tool_calls`` row to write as ``running`` (id, run_id, step, call_id,
    tool, risk, arguments, started_at). An approved call is claimed on its approval as
    well (``execution`` from none to ``running``). The claim is audited (``started``).
    """
    with store.transaction() as conn:
        found = _tool_row(conn, row["id"])
        retry = found is not None and found["status"] == "error" and approval_id is None  # it failed: may run again
        if found is not None and found["status"] != "pending" and not retry:
            return found
        if approval_id is not None:
            store.check_vouched(conn, "approvals", approval_id)  # a decision edited in the file never runs
            taken = conn.execute(
                "UPDATE approvals SET execution = 'running', executed_by = ?, executed_at = ? "
                "WHERE id = ? AND status IN ('approved', 'modified') AND execution IS NULL",
                (owner, utcnow(), approval_id),
            ).rowcount
            if taken != 1:
                return found or {"id": row["id"], "status": "running", "claimed_by": None, "result": None}
        claim = {**row, "status": "running", "claimed_by": owner, "result": None, "error": None, "latency_ms": None}
        claim["approval_id"] = approval_id
        conn.execute(
            f"INSERT INTO tool_calls ({', '.join(claim)}) VALUES ({', '.join('?' * len(claim))}) "
            "ON CONFLICT(id) DO UPDATE SET status = 'running', claimed_by = excluded.claimed_by, "
            "approval_id = COALESCE(tool_calls.approval_id, excluded.approval_id), "
            "arguments = excluded.arguments, started_at = excluded.started_at",
            tuple(claim.values()),
        )
        bind = [("tool_calls", row["id"])] + ([("approvals", approval_id)] if approval_id else [])
        store.audit(
            conn,
            "tool_call",
            row["id"],
            {**audit, "event": "started", "owner": owner, "approval": approval_id},
            bind=bind,
        )
    return None


def wait_for_tool_call(store: Store, row_id: str, approval_id: str | None, wait_s: float = WAIT_S) -> dict[str, Any]:
    """The recorded outcome of a tool call another caller claimed (waiting while it runs).

    If that caller's process is gone before it recorded an outcome, the call is marked
    ``unknown`` (and its approval's execution too): it is never run again.
    """
    deadline = time.monotonic() + wait_s
    while True:
        with store.lock:
            found = _tool_row(store.conn, row_id)
        if found is None or found["status"] != "running":
            return found or {"id": row_id, "status": UNKNOWN, "result": "", "claimed_by": None}
        if not alive(found["claimed_by"]):
            return _mark_unknown(store, row_id, approval_id, found)
        if time.monotonic() > deadline:
            raise RunBusy(f"tool call {row_id} has been running under {found['claimed_by']} for over {wait_s:.0f} s")
        time.sleep(POLL_S)


def _mark_unknown(store: Store, row_id: str, approval_id: str | None, found: dict[str, Any]) -> dict[str, Any]:
    note = (
        f"error: the outcome is unknown: {found['claimed_by']} started this tool call at "
        f"{found['started_at']} and stopped before recording what happened. It was not run again; check "
        "whether it took effect"
    )
    with store.transaction() as conn:
        changed = conn.execute(
            "UPDATE tool_calls SET status = ?, result = ?, error = ? WHERE id = ? AND "
            "status = 'running' AND claimed_by IS ?",
            (UNKNOWN, note, "owner died", row_id, found["claimed_by"]),
        ).rowcount
        if changed:
            if approval_id is not None:
                conn.execute("UPDATE approvals SET execution = ? WHERE id = ?", (UNKNOWN, approval_id))
            bind = [("tool_calls", row_id)] + ([("approvals", approval_id)] if approval_id else [])
            store.audit(
                conn,
                "tool_call",
                row_id,
                {"event": UNKNOWN, "owner": found["claimed_by"], "approval": approval_id},
                bind=bind,
            )
        row = _tool_row(conn, row_id)
    return row or {**found, "status": UNKNOWN, "result": note}


def finish_tool_call(conn: Any, store: Store, approval_id: str | None, status: str) -> None:
    """Inside the transaction that records a claimed call's outcome: its approval's execution is over."""
    if approval_id is not None:
        conn.execute(
            "UPDATE approvals SET execution = ? WHERE id = ? AND execution = 'running'",
            ("done" if status == "ok" else status, approval_id),
        )


def _tool_row(conn: Any, row_id: str) -> dict[str, Any] | None:
    cursor = conn.execute(
        "SELECT id, status, claimed_by, result, started_at, arguments FROM tool_calls WHERE id = ?", (row_id,)
    )
    found = cursor.fetchone()
    if found is None:
        return None
    return dict(zip([d[0] for d in cursor.description], found, strict=True))


def approval_of(row: dict[str, Any] | None) -> str | None:
    """The approval id a tool-call row waits on or ran under (rows older versions wrote keep it, as JSON, in
    their ``error`` column).
    """
    if row and row.get("approval_id"):
        return str(row["approval_id"])
    if not row or not row.get("error") or not str(row["error"]).startswith("{"):
        return None
    try:
        return json.loads(row["error"]).get("approval")
    except (ValueError, AttributeError):
        return None
