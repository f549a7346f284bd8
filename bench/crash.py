"""Crash safety, measured: a process recording calls is killed with SIGKILL, again and again.

K1  A child process records ``wb.ask`` calls on ``local/echo`` in a loop, printing each call's
    prompt once ``wb.ask`` has returned (the call is then committed). It is killed with SIGKILL
    at a random moment, ``--kills`` times, each time a new child on the same store. After each
    kill: calls the child had reported recorded but missing from the store (must be 0), SQLite's
    ``integrity_check`` (must be ok), and the audit log's ``verify()`` (must be intact: a call
    cut off mid-transaction leaves no row and no entry). Then a last writer must still record.

Usage: python bench/crash.py [--kills 20]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

WRITER = """
import sys
from workbench.runtime import Workbench
wb = Workbench.from_config(store=sys.argv[1])
n = 0
while True:
    prompt = f"{sys.argv[2]} call {n}"
    wb.ask(prompt, model="local/echo", session="crash")
    print(prompt, flush=True)
    n += 1
"""


def k1(kills: int) -> None:
    from workbench.audit import AuditLog
    from workbench.store import Store

    folder = Path(tempfile.mkdtemp(prefix="wb-kill-"))
    store = folder / "crash.db"
    rng = random.Random(1)
    lost, reported, broken, damaged = 0, 0, 0, 0
    for k in range(kills):
        out = folder / f"writer{k}.txt"
        with out.open("w") as sink:
            proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store), f"w{k}"], stdout=sink)
            while out.stat().st_size == 0 and proc.poll() is None:  # (imports and the first call)
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))  # then anywhere in a call: sending, recording, committing
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        said = [line for line in out.read_text().splitlines() if line]
        conn = sqlite3.connect(store)
        present = {row[0] for row in conn.execute("SELECT prompt FROM calls WHERE prompt LIKE ?", (f"w{k} call %",))}
        damaged += conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
        conn.close()
        reported += len(said)
        lost += len(set(said) - present)
        check = AuditLog(Store(store)).verify()
        broken += not check.ok
    from workbench.runtime import Workbench

    wb = Workbench.from_config(store=str(store))
    wb.ask("after the kills", model="local/echo")
    ok = wb.audit.verify().ok
    wb.close()
    print(
        f"K1 {kills} SIGKILLs of a process recording calls: {reported} calls reported recorded, rows lost {lost} "
        f"(must be 0); integrity_check failed {damaged} times, verify() broken {broken} times (must be 0 each); "
        f"a writer after the kills records and verifies: {ok}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20)
    args = parser.parse_args()
    k1(args.kills)


if __name__ == "__main__":
    main()
