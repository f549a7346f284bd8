import sqlite3

import pytest
import sqlite_utils

from workbench.audit import AuditLog
from workbench.store import MIGRATIONS, Store, migrate


def test_migrates_from_blank_once_and_records_names(tmp_path):
    store = Store(tmp_path / "w.db")
    names = [r["name"] for r in store.query("SELECT name FROM _migrations")]
    assert names == [m.__name__ for m in MIGRATIONS]
    assert migrate(store.db) == []  # idempotent
    tables = set(store.db.table_names())
    assert {"sessions", "calls", "attempts", "spans", "audit", "budgets", "reservations", "switches"} <= tables
    assert store.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    assert store.query("PRAGMA busy_timeout")[0]["timeout"] >= 5000


def test_an_up_to_date_store_opens_and_records_without_importing_sqlite_utils_or_pandas(tmp_path):
    """sqlite-utils (which imports pandas and numpy, ~0.35 s) is for schema work: a process that opens a store
    with every migration applied, records a call and reads it back never loads them."""
    import subprocess
    import sys

    from workbench.store.migrations import pending

    store = Store(tmp_path / "w.db")
    assert not pending(store.conn)
    assert pending(sqlite3.connect(tmp_path / "new.db"))
    store.close()
    code = (
        "import sys; from workbench.runtime import Workbench; "
        f"wb = Workbench.from_config(store={str(tmp_path / 'w.db')!r}); r = wb.ask('hi', model='local/echo'); "
        "assert wb.store.query('SELECT text FROM calls WHERE id = ?', (r.call_id,))[0]['text'] == r.text; "
        "print(sorted(m for m in ('sqlite_utils', 'pandas', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.split("\n")[-2] == "[]", out.stdout


def test_migrates_an_in_memory_database():
    db = sqlite_utils.Database(memory=True)
    db.conn.isolation_level = None
    assert migrate(db) == [
        "m001_initial",
        "m002_replay_lookup_index",
        "m003_cost_control",
        "m004_routing_decision",
        "m005_rate_limits",
        "m006_rate_queue",
        "m007_alerts",
        "m008_context_and_memory",
        "m009_embeddings",
        "m010_guard_events",
        "m011_guardrails",
        "m012_agents_and_approvals",
        "m013_workflows",
        "m014_audit_and_evals",
        "m015_agent_remember",
        "m016_feedback",
        "m017_guarantees",
        "m018_budget_since",
        "m019_tool_call_approval",
        "m020_blobs",
        "m021_prompt_vectors",
        "m022_gateway_cost",
        "m023_spend_totals",
        "m024_call_window_index",
        "m025_bind_eval_runs",
        "m026_interrupted_calls_spend",
        "m027_bind_attempts",
        "m028_bind_memories",
        "m029_audit_call_session_index",
        "m030_fewer_indexes_per_call",
        "m031_spans_by_trace",
        "m032_audit_found_by_id_not_time",
    ]


def test_migrates_a_store_created_by_the_first_schema(tmp_path):
    import sqlite3

    from workbench.store.migrations import m001_initial

    old = sqlite_utils.Database(sqlite3.connect(tmp_path / "old.db", isolation_level=None))
    old["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    m001_initial(old)
    old["_migrations"].insert({"name": "m001_initial", "applied_at": "2026-11-28"})
    old["calls"].insert({"id": "kept", "fingerprint": "f", "started_at": "t"})
    old.conn.close()
    store = Store(tmp_path / "old.db")
    assert [r["id"] for r in store.query("SELECT id FROM calls")] == ["kept"]
    plan = store.query("EXPLAIN QUERY PLAN SELECT id FROM calls WHERE fingerprint = 'f' ORDER BY started_at DESC")
    assert "idx_calls_fingerprint_started_at" in plan[0]["detail"]
    assert "TEMP B-TREE" not in str(plan)


def _call(i: str, **extra):
    return {
        "id": i,
        "trace_id": "t" * 32,
        "started_at": "2026-01-01T00:00:00",
        "mode": "live",
        "route": "r",
        "model": "m",
        "status": "ok",
        "fingerprint": "f",
        "text": "x",
        **extra,
    }


def test_call_attempts_spans_and_audit_commit_together_or_not_at_all(tmp_path):
    store = Store(tmp_path / "w.db")
    store.record_call(
        _call("a", session="s"),
        [{"call_id": "a", "n": 1, "status": "ok"}],
        [("s1", "t" * 32, None, "a", "llm.call", 1, 2, "ok", None)],
    )
    assert store.query("SELECT count(*) n FROM attempts")[0]["n"] == 1
    assert store.query("SELECT name FROM sessions")[0]["name"] == "s"
    # A duplicate span id fails the insert: the call row and audit entry must roll back too.
    with pytest.raises(sqlite3.IntegrityError):
        store.record_call(_call("b"), [], [("s1", "t" * 32, None, "b", "llm.call", 1, 2, "ok", None)])
    assert [r["id"] for r in store.query("SELECT id FROM calls")] == ["a"]
    assert store.query("SELECT count(*) n FROM audit")[0]["n"] == 1


def test_a_second_connection_sees_committed_calls(tmp_path):
    first, second = Store(tmp_path / "w.db"), Store(tmp_path / "w.db")
    first.record_call(_call("a"), [], [])
    assert second.query("SELECT id FROM calls")[0]["id"] == "a"


def test_unwritable_store_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    from workbench import WorkbenchError

    with pytest.raises(WorkbenchError, match="cannot open the store"):
        Store(blocker / "sub" / "w.db")


def _open(path: str) -> None:
    Store(path)


def test_processes_opening_a_new_store_at_once_migrate_it_once(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open, args=(str(tmp_path / "new.db"),)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    names = [r["name"] for r in Store(tmp_path / "new.db").query("SELECT name FROM _migrations")]
    assert names == [m.__name__ for m in MIGRATIONS]


def test_a_batch_keeps_each_transaction_atomic_and_commits_what_completed(tmp_path):
    store = Store(tmp_path / "b.db")
    cache = store.conn.execute("PRAGMA cache_size").fetchone()[0]
    with pytest.raises(RuntimeError), store.batch():
        store.append_audit("note", "one", {"n": 1})
        with pytest.raises(ValueError), store.transaction() as conn:
            conn.execute("INSERT INTO budgets (scope, key, period, created_at) VALUES ('global', '', 'total', 'x')")
            raise ValueError("this unit fails: its insert is rolled back, not the batch")
        store.append_audit("note", "two", {"n": 2})
        raise RuntimeError("the caller fails after two entries")
    assert [r["ref"] for r in store.query("SELECT ref FROM audit ORDER BY id")] == ["one", "two"]
    assert store.query("SELECT COUNT(*) n FROM budgets")[0]["n"] == 0
    assert AuditLog(store).verify().ok
    assert store.conn.execute("PRAGMA cache_size").fetchone()[0] == cache
    assert not store.conn.in_transaction


def test_migrations_register_in_sequence_and_refuse_a_gap():
    from workbench.store.migrations import migration

    names = [m.__name__ for m in MIGRATIONS]
    assert [int(n[1:4]) for n in names] == list(range(1, len(names) + 1))
    with pytest.raises(RuntimeError, match=f"out of sequence: the next one is m{len(names) + 1:03d}_"):

        @migration
        def m999_skipped(db):  # pragma: no cover - refused at import
            pass

    assert [m.__name__ for m in MIGRATIONS] == names


def test_an_older_store_gets_hourly_spend_totals_of_its_calls(tmp_path):
    """m023 builds the hourly totals from the calls already recorded (a store made before it)."""
    store = Store(tmp_path / "old.db")
    with store.transaction() as conn:
        for i, (user, hour) in enumerate([("ana", "09"), ("ana", "09"), (None, "10"), ("raj", "10")]):
            conn.execute(
                "INSERT INTO calls (id, started_at, status, mode, cost_usd, total_tokens, user, session) "
                f"VALUES ('c{i}', '2026-11-30T{hour}:15:00+00:00', 'ok', 'live', 0.5, 10, ?, 's')",
                (user,),
            )
        conn.execute(
            "INSERT INTO calls (id, started_at, status, mode, cost_usd, user) "
            "VALUES ('e', '2026-11-30T10:00:00+00:00', 'error', 'live', 9, 'ana')"
        )
        for trigger in ("insert", "delete", "update"):  # as the store was before m023
            conn.execute(f"DROP TRIGGER calls_spend_{trigger}")
        conn.execute("DROP TABLE spend")
        conn.execute("DELETE FROM _migrations WHERE name = 'm023_spend_totals'")
    store.close()
    store = Store(tmp_path / "old.db")
    rows = {(r["scope"], r["key"], r["hour"]): (r["usd"], r["calls"]) for r in store.query("SELECT * FROM spend")}
    assert rows == {
        ("global", "", "2026-11-30T09"): (1.0, 2),
        ("global", "", "2026-11-30T10"): (1.0, 2),
        ("user", "ana", "2026-11-30T09"): (1.0, 2),
        ("user", "raj", "2026-11-30T10"): (0.5, 1),
        ("session", "s", "2026-11-30T09"): (1.0, 2),
        ("session", "s", "2026-11-30T10"): (1.0, 2),
    }
    store.close()


def test_ids_start_with_the_time_so_rows_made_together_sit_together_and_never_repeat():
    """A call's rows, and the next call's, land side by side in the indexes keyed on their ids (fewer pages a
    commit writes) instead of on random pages; the 48 random bits after the time keep them unique."""
    import time

    from workbench.store import new_id

    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and set(i) <= set("0123456789abcdef") for i in ids)
    together = sum(a[:4] == b[:4] for a, b in zip(ids, ids[1:], strict=False))
    assert together > 0.9 * len(ids), together  # the prefix moves every 4.2 ms
    assert len({i[4:] for i in ids}) == len(ids)  # and the rest is random
    trace = new_id(16)
    assert len(trace) == 32 and abs(int(trace[:12], 16) - time.time_ns() // 1_000_000) < 60_000  # its millisecond
    assert len(new_id(4)) == 8


def test_a_call_without_a_session_is_in_no_session_index_and_a_sessions_calls_are_still_found_by_index(tmp_path):
    """Fewer index pages a recorded call writes (m030): the session indexes hold only calls and entries that have
    a session, the unused attempts-by-deployment index is gone, and every query for one session still uses them."""
    from workbench.runtime import Workbench
    from workbench.store.db import _SESSION_CALLS

    wb = Workbench.from_config(store=tmp_path / "w.db")
    wb.ask("no session", model="local/echo")
    wb.ask("in one", model="local/echo", session="s")
    conn = wb.store.conn
    indexes = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    assert "idx_attempts_deployment_id" not in indexes
    assert 'WHERE "session" IS NOT NULL' in indexes["idx_calls_session_started_at"]
    assert "IS NOT NULL" in indexes["audit_call_session"]
    counted = "SELECT count(*) FROM calls INDEXED BY idx_calls_session_started_at WHERE session >= ''"
    assert conn.execute(counted).fetchone()[0] == 1
    for sql, args in (
        ("SELECT id FROM calls WHERE session = ? AND status = 'ok' AND started_at >= ? ORDER BY started_at", ("s", "")),
        (_SESSION_CALLS, ("s", "")),
    ):
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "idx_calls_session_started_at" in plan or "audit_call_session" in plan, plan
    assert wb.replay("s") is not None and wb.audit.verify().ok


def test_spans_are_kept_by_trace_in_one_tree_and_an_older_stores_spans_move_over(tmp_path):
    """m031: ``spans`` keyed by (trace_id, span_id), WITHOUT ROWID: one B-tree where there were three. A store
    written before keeps every span; a trace, a call's spans (by its trace) and a run root's rewrite go by the key."""
    import sqlite3

    from workbench.runtime import Workbench
    from workbench.store.migrations import MIGRATIONS

    old = sqlite_utils.Database(sqlite3.connect(tmp_path / "old.db", isolation_level=None))
    old["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    for m in MIGRATIONS[:30]:
        m(old)
        old["_migrations"].insert({"name": m.__name__, "applied_at": "2026-12-01"})
    rows = [(f"{i:016x}", f"{i // 3:032x}", None, f"c{i // 3}", "stage", i, i + 1, "ok", "{}") for i in range(30)]
    old.conn.executemany("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    old.conn.close()
    wb = Workbench.from_config(store=tmp_path / "old.db")
    conn = wb.store.conn
    assert sorted(conn.execute("SELECT * FROM spans").fetchall()) == sorted(rows)
    trees = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'spans'")]
    assert trees == ["spans"], trees  # (no rowid table beside it, no index of its own)
    assert "WITHOUT ROWID" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'spans'").fetchone()[0]
    answer = wb.ask("traced", model="local/echo")
    trace = wb.trace(answer.call_id)
    assert len(trace.df) >= 5 and set(trace.df["call_id"].dropna()) == {answer.call_id}
    for sql, args in (
        ("SELECT * FROM spans WHERE trace_id = ? ORDER BY start_ns", ("t",)),
        ("SELECT * FROM spans WHERE trace_id = ? AND call_id = ? ORDER BY start_ns", ("t", "c")),
        ("SELECT * FROM spans WHERE trace_id IN (?, ?) AND span_id IN (?, ?)", ("t", "u", "s", "r")),
    ):
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "USING PRIMARY KEY" in plan, plan
    root = ("r" * 16, "t" * 32, None, None, "agent.run", 1, None, "ok", '{"status": "running"}')
    with wb.store.transaction() as c:
        wb.store.add_spans(c, [root])
    with wb.store.transaction() as c:
        wb.store.add_spans(c, [(*root[:6], 2, "ok", '{"status": "done"}')])  # a run's root, rewritten as it ends
    assert conn.execute("SELECT end_ns, attributes FROM spans WHERE trace_id = ?", ("t" * 32,)).fetchall() == [
        (2, '{"status": "done"}')
    ]


def test_the_first_audit_entry_since_a_time_is_found_by_id_and_a_clock_set_back_keeps_its_time(tmp_path, monkeypatch):
    """m032: no index on the log's time. Entries are appended as they happen, so the first one since a time is
    found by a binary search over the ids; ``audit.df(since=)`` and compaction find it so. An entry keeps the time
    its clock said, even one set back (an audit log's times are evidence): the search then finds a place where
    the times pass the one asked for, and what follows is one unbroken stretch of the chain."""
    import workbench.store.db as db
    from workbench.audit import AuditLog

    store = Store(tmp_path / "a.db")
    times = [f"2026-01-0{d}T00:00:00.000000+00:00" for d in (1, 1, 2, 5, 5, 5, 7, 9)]
    for i, when in enumerate(times):
        monkeypatch.setattr(db, "utcnow", lambda when=when: when)
        store.append_audit("note", str(i), {"i": i})
    rows = store.query("SELECT id, ts FROM audit ORDER BY id")
    days = ("2025-12-31", "2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05", "2026-01-08", "2026-01-09", "2027")
    for day in days:
        want = next((r["id"] for r in rows if r["ts"] >= day), rows[-1]["id"] + 1)
        assert store.first_entry_at(store.conn, day) == want, day
    indexes = [r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE tbl_name = 'audit'")]
    assert "idx_audit_ts" not in indexes
    log = AuditLog(store)
    assert log.df(since="2026-01-05")["ref"].tolist() == ["3", "4", "5", "6", "7"]
    monkeypatch.setattr(db, "utcnow", lambda: "2025-06-01T00:00:00.000000+00:00")  # the clock set back
    store.append_audit("note", "late", {"i": 8})
    assert store.query("SELECT ts FROM audit WHERE ref = 'late'") == [{"ts": "2025-06-01T00:00:00.000000+00:00"}]
    since = log.df(since="2026-01-05")["id"].tolist()
    assert since == list(range(since[0], rows[-1]["id"] + 2))  # (one stretch, to the last entry)
    assert log.verify().ok
    assert store.first_entry_at(Store(tmp_path / "empty.db").conn, "2026") is None
