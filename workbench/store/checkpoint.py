"""WAL checkpoints off the calling thread.

In WAL mode each commit appends the pages it changed to ``<store>-wal``; a checkpoint copies them back into the
database file. SQLite runs one inside the commit that takes the WAL past ``wal_autocheckpoint`` pages, so every
~50th ``wb.ask`` paid for it: ~0.3 ms of copying and two fsyncs of ~1 ms each (measured on 2026-12-04: 2.5 ms
with the fsyncs, 0.28 ms without), about 50 µs a call on average.

A :class:`Checkpointer` runs the same ``PASSIVE`` checkpoint on a connection of its own in a daemon thread, woken
every :data:`EVERY` commits; SQLite releases the GIL while it copies and syncs, so the calls go on meanwhile. A
passive checkpoint never blocks a writer and never waits for one. The writer's own ``wal_autocheckpoint`` stays on,
raised to :data:`BACKSTOP` pages: the WAL starts again from its beginning only when a checkpoint has copied all of
it before the next write, which a process writing without pause never gives the thread time for, so the backstop
bounds the WAL (16 MB) under a sustained load and finishes what the thread left (a few pages, then the WAL restarts).
Durability is unchanged: a commit is in the WAL when ``ask()`` returns, as before.

While the thread checkpoints it holds SQLite's checkpoint lock, and the writer's backstop finds it taken and does
nothing. A checkpoint is ~2.5 ms; behind other I/O its fsyncs can take seconds, and the WAL then grew without bound
(31 MB of 2,500 commits in a test with two ``dd ... conv=fsync`` running, against 16 MB). So a wake that finds the
last checkpoint still running, :data:`EVERY` commits later, waits for it (at most :data:`WAIT_S`): the writer is held
back as SQLite's own in-commit checkpoint would hold it, and the WAL stays within the backstop and those commits.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from pathlib import Path

EVERY = 32  # commits between background checkpoints (~700 pages of WAL at ~22 pages a recorded call)
BACKSTOP = 4000  # pages (16 MB): the writer checkpoints itself past this, as SQLite does past 1000 by default
WAIT_S = 30.0  # the longest a wake waits for the checkpoint under way (a thread stuck longer is not waited for)


class Checkpointer:
    """A daemon thread checkpointing one store's WAL when woken (:meth:`wake`); :meth:`stop` ends it."""

    def __init__(self, path: Path, owner: object):
        self.path = path
        self._wanted = threading.Event()
        self._idle = threading.Event()  # clear while a checkpoint runs
        self._idle.set()
        self._stopping = False
        self.done = 0  # checkpoints run (tried) so far
        self._thread = threading.Thread(target=self._run, name=f"workbench-checkpoint:{path.name}", daemon=True)
        self._thread.start()
        weakref.finalize(owner, self.stop)  # a store dropped without close() does not leave its thread behind

    def wake(self) -> None:
        """Ask for a checkpoint: at once, unless the last one is still running (then after it, see the module doc)."""
        self._idle.wait(WAIT_S)
        self._wanted.set()

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread after the checkpoint under way, if any (it closes its connection)."""
        self._stopping = True
        self._wanted.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            uri = f"{self.path.absolute().as_uri()}?mode=rw"  # (a store removed meanwhile is not made again, empty)
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return  # the writer's backstop checkpoints instead
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # what the writer's own checkpoints sync
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                self._idle.clear()
                try:
                    self._checkpoint(conn)
                except sqlite3.Error:
                    pass  # (busy, or the file went away): the next wake, or the writer's backstop, tries again
                finally:
                    self._idle.set()
                self.done += 1
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
