"""The WAL is checkpointed off the calling thread, and stays bounded when the thread cannot keep up."""

import gc
import os
import sqlite3
import threading
import time

from workbench.runtime import Workbench
from workbench.store import Store
from workbench.store.checkpoint import BACKSTOP, EVERY


def _threads(store_path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"workbench-checkpoint:{store_path.name}"]


def _backfilled(path) -> bool:
    """Whether every frame in the WAL is in the database file (then the next write starts the WAL again from its
    beginning), read from the WAL index (``-shm``) without checkpointing: its header's last frame (``mxFrame``, at
    byte 16) against the frames copied back (``nBackfill``, at byte 96; sqlite.org/walformat.html)."""
    import struct

    with open(f"{path}-shm", "rb") as fh:
        shm = fh.read(100)
    return struct.unpack_from("=I", shm, 96)[0] == struct.unpack_from("=I", shm, 16)[0]


def test_recorded_calls_are_checkpointed_by_the_background_thread_and_the_wal_starts_again(tmp_path):
    path = tmp_path / "w.db"
    wb = Workbench.from_config(store=path)
    assert wb.store.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP
    largest = 0
    for n in range(1, 301):
        woken = wb.store._commits // EVERY
        wb.ask(f"question {n}", model="local/echo")
        largest = max(largest, os.path.getsize(f"{path}-wal"))
        if wb.store._commits // EVERY > woken:  # the thread was woken: a pause, as between cells, lets it finish
            deadline = time.monotonic() + 10
            while wb.store._checkpointer.done < wb.store._commits // EVERY and time.monotonic() < deadline:
                time.sleep(0.001)
    assert _threads(path), "the checkpointer was started"
    # 300 calls write ~25 MB of frames; the writer alone would let the WAL reach 16 MB (BACKSTOP) before copying
    # it back. The thread copied it every EVERY commits, so each write after a pause began at the WAL's start.
    assert largest < 8 * 1024 * 1024, largest
    wb.close()
    assert not _threads(path), "close() stops the checkpointer"
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] == 300
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_writer_bounds_the_wal_when_it_never_pauses(tmp_path):
    """No idle moment for the thread's checkpoint to catch up in: the writer's own backstop restarts the WAL."""
    path = tmp_path / "w.db"
    store = Store(path)
    store.conn.execute("CREATE TABLE t (x TEXT)")
    largest = 0
    for _ in range(2500):
        with store.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(2000).hex(),))  # a page or two a commit
        largest = max(largest, os.path.getsize(f"{path}-wal"))
    assert largest <= (BACKSTOP + 200) * (4096 + 24), largest
    store.close()


def test_a_wake_waits_for_a_checkpoint_still_running(tmp_path):
    """A checkpoint whose fsyncs wait behind other I/O holds SQLite's checkpoint lock for as long, and the writer's
    backstop finds it taken: with two ``dd ... conv=fsync`` running, the WAL grew to 31 MB over 2,500 commits. The
    next wake (EVERY commits on) waits for the running checkpoint instead, as SQLite's in-commit one would hold the
    writer, and the backstop gets its turn. Here the thread's checkpoint is made 0.5 s slower.
    """
    from workbench.store.checkpoint import Checkpointer

    class Slow(Checkpointer):
        def _checkpoint(self, conn: sqlite3.Connection) -> None:
            super()._checkpoint(conn)
            time.sleep(0.5)

    path = tmp_path / "s.db"
    owner = Store(path)
    slow = Slow(path, owner)
    slow.wake()
    deadline = time.monotonic() + 10
    while slow._idle.is_set() and time.monotonic() < deadline:  # (until the thread has begun)
        time.sleep(0.001)
    started = time.monotonic()
    slow.wake()
    waited = time.monotonic() - started
    assert 0.3 < waited < 5, waited
    started = time.monotonic()
    slow.stop()
    assert time.monotonic() - started < 5
    assert slow.done >= 1
    owner.close()


def test_a_store_dropped_without_close_stops_its_checkpointer(tmp_path):
    path = tmp_path / "w.db"
    store = Store(path)
    for _ in range(EVERY):
        store.append_audit("note", "x", {"n": 1})
    assert _threads(path)
    del store
    gc.collect()
    deadline = time.monotonic() + 10
    while _threads(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _threads(path)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM audit WHERE kind = 'note'").fetchone()[0] == EVERY


def test_the_checkpointer_never_makes_a_removed_store_again(tmp_path):
    """Its connection opens the file read-write only: a store deleted under a running process is not recreated
    empty by the thread (the writer's next commit reports the loss as it would have)."""
    from workbench.store.checkpoint import Checkpointer

    path = tmp_path / "gone.db"
    owner = Store(tmp_path / "kept.db")
    checkpointer = Checkpointer(path, owner)
    checkpointer.wake()
    checkpointer.stop()
    assert not path.exists()


def test_the_checkpointer_works_on_the_store_opened_even_after_the_working_folder_changes(tmp_path, monkeypatch):
    """A notebook opens ``w.db`` relative to its folder, then changes folder (os.chdir): the thread, started later,
    still checkpoints the file the store's connection opened, and makes no file where the notebook moved to."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    store = Store("w.db")
    monkeypatch.chdir(tmp_path / "b")
    for _ in range(EVERY):
        store.append_audit("note", "x", {"n": 1})
    deadline = time.monotonic() + 10
    while store._checkpointer.done < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store._checkpointer.done == 1
    assert _backfilled(tmp_path / "a" / "w.db")
    assert not (tmp_path / "b" / "w.db").exists()
    store.close()


_RECORDER = """
import sys, time
from workbench.runtime import Workbench
wb = Workbench.from_config(store=sys.argv[1])
n = 0
while True:
    wb.ask(f"question {n}", model="local/echo")
    n += 1
    print(n, flush=True)  # recorded: ask() returned after its commit
    if n % 20 == 0:
        time.sleep(0.01)  # a pause, so the thread's checkpoints run between calls too
"""


def test_a_process_killed_while_it_records_and_checkpoints_loses_no_recorded_call(tmp_path):
    """SIGKILL at moments that fall in commits, in the thread's checkpoints and between them: every call the process
    reported recorded is in the file, the file is intact, and the audit log verifies. (Each kill is timed from the
    child's first recorded call: on a busy machine its imports alone can take longer than the delays.)"""
    import signal
    import subprocess
    import sys

    path = tmp_path / "w.db"
    reported = 0
    for delay in (0.6, 1.3, 2.0):
        child = subprocess.Popen([sys.executable, "-c", _RECORDER, str(path)], stdout=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(child.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not lines and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lines, "the child recorded no call"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        reader.join(10)
        reported += int(lines[-1]) if lines else 0
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM calls").fetchone()[0] >= reported > 3 * EVERY  # (the thread ran)
    conn.close()
    wb = Workbench.from_config(store=path)
    assert wb.audit.verify().ok
    wb.ask("after the kills", model="local/echo")
    wb.close()
