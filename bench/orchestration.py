"""Orchestration, measured: a parallel workflow's wall time against the ideal, and what a resume re-runs.

O1  A workflow that fans out into 20 branches, each a model call to the chaos server with
    200 ms latency, at concurrency 20: wall time over the ideal (one 200 ms round), median
    of the rounds. Beside it, the same 20 calls with bare threads and ``wb.ask`` (the floor
    the workflow machinery sits on).
O2  Resume cost: the 20-branch workflow of ``tests/orchestration/crash_workflow.py`` (each
    branch 200 ms, concurrency 4) is killed with SIGKILL once 15 branches are checkpointed,
    then resumed in a new process: branches that had finished and ran again (must be 0),
    and the resume's wall time against the work left.
O3  Exactly-once under racing resumes: an agent run parked on an approved destructive tool is
    resumed by 4 processes at the same instant (``tests/orchestration/resume_child.py``),
    ``--rounds`` times; then once by a process SIGKILLed inside the tool and resumed again.
    Prints resumes and real executions (must be one per round; after the kill, none more).

Usage: python bench/orchestration.py [--rounds 5] [--only O1,O2,O3]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CRASH = Path(__file__).parents[1] / "tests" / "orchestration" / "crash_workflow.py"


def o1(rounds: int) -> None:
    from workbench.limits import ChaosServer
    from workbench.runtime import Workbench

    server = ChaosServer(latency_ms=200).start()
    folder = tempfile.mkdtemp(prefix="wb-orch-")
    wb = Workbench.from_config(store=os.path.join(folder, "o.db"), root=folder)
    wb.add_route("slow", [{"model": "openai/slow", "api_base": server.url}])
    wb.ask("warm up", model="slow", cache=False)
    flows, bare = [], []
    for r in range(rounds):
        wf = wb.workflow(f"fan-out-{r}", concurrency=20)
        wf.step(name="items")(lambda: list(range(20)))
        wf.map(
            "answers", over="items", fn=lambda i, r=r: wb.ask(f"round {r} branch {i}", model="slow", cache=False).text
        )
        t = time.perf_counter()
        run = wf.run()
        flows.append(time.perf_counter() - t)
        assert run.status == "done" and len(run["answers"]) == 20
        t = time.perf_counter()
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(lambda i, r=r: wb.ask(f"bare {r} {i}", model="slow", cache=False), range(20)))
        bare.append(time.perf_counter() - t)
    server.stop()
    m, b = statistics.median(flows), statistics.median(bare)
    print(
        f"O1 20 branches x 200 ms at concurrency 20 ({rounds} rounds): workflow {m:.3f} s = {m / 0.2:.2f}x the "
        f"ideal 0.2 s; 20 threads calling wb.ask directly {b:.3f} s = {b / 0.2:.2f}x; workflow/threads {m / b:.2f}"
    )


def o2() -> None:
    folder = Path(tempfile.mkdtemp(prefix="wb-crash-"))
    store, marks = folder / "crash.db", folder / "marks.txt"
    proc = subprocess.Popen(
        [sys.executable, str(CRASH), str(store), str(marks), "run"], stdout=subprocess.DEVNULL, start_new_session=True
    )
    while True:
        try:
            done = (
                sqlite3.connect(store)
                .execute("SELECT COUNT(*) FROM workflow_steps WHERE step LIKE 'squares[%' AND status = 'done'")
                .fetchone()[0]
            )
        except sqlite3.OperationalError:
            done = 0
        if done >= 15:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(store)
    run_id = conn.execute("SELECT id FROM workflow_runs").fetchone()[0]
    finished = {
        int(r[0][8:-1])
        for r in conn.execute("SELECT step FROM workflow_steps WHERE status = 'done' AND step LIKE 'squares[%'")
    }
    before = len(marks.read_text().split())
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, str(CRASH), str(store), str(marks), "resume", run_id], check=True, stdout=subprocess.DEVNULL
    )
    wall = time.perf_counter() - t
    again = [int(i) for i in marks.read_text().split()[before:]]
    rerun_finished = sorted(set(again) & finished)
    left = 20 - len(finished)
    print(
        f"O2 killed with {len(finished)}/20 branches checkpointed; the resume ran {len(again)} branches "
        f"({left} were unfinished), finished ones run again: {len(rerun_finished)}; resume wall {wall:.2f} s "
        f"(new process: imports + store open + {left} x 200 ms at concurrency 4)"
    )


CHILD = Path(__file__).parents[1] / "tests" / "orchestration" / "resume_child.py"
_RULES = [
    {"pattern": "(?i)clean up the (?P<t>\\w+) table", "tool": "db__drop", "arguments": {"table": "\\g<t>"}},
    {"role": "tool", "pattern": "dropped (?P<t>\\w+)", "reply": "Done: the \\g<t> table is gone."},
    {"role": "tool", "pattern": "(?i)error|unknown", "reply": "Something went wrong; I stopped."},
]


def _children(store: Path, marks: Path, action: str, run_id: str, n: int) -> list[subprocess.Popen]:
    start = time.time() + 2.0
    return [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(store), str(marks), str(start), action, run_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(n)
    ]


def o3(rounds: int) -> None:
    from workbench.runtime import Workbench

    folder = Path(tempfile.mkdtemp(prefix="wb-once-"))
    store, marks = folder / "once.db", folder / "marks.txt"
    marks.touch()
    wb = Workbench.from_config(store=str(store), scripted={"rules": _RULES}, default_route="local/scripted")

    @wb.tool(name="db.drop", risk="destructive")
    def drop(table: str) -> str:
        """Drop a table."""
        return f"dropped {table}"

    def parked(table: str) -> str:
        run = wb.agent("ops", tools=["db.*"]).run(f"Please clean up the {table} table")
        wb.approvals.decide(run.waiting_on, "approve", by="bench")
        return run.id

    executions = []
    for r in range(rounds):
        procs = _children(store, marks, "resume", parked(f"t{r}"), 4)
        for p in procs:
            p.communicate(timeout=120)
        executions.append(marks.read_text().count(f"drop t{r}\n"))
    [held] = _children(store, marks, "hold", parked("killed"), 1)
    while "drop killed" not in marks.read_text():
        time.sleep(0.01)
    held.kill()
    held.wait()
    status = wb.resume(_last_run(store)).status
    after = marks.read_text().count("drop killed\n")
    recorded = sqlite3.connect(store).execute("SELECT status FROM tool_calls WHERE arguments LIKE '%killed%'")
    recorded = recorded.fetchall()
    print(
        f"O3 {rounds} rounds x 4 processes resuming one approved run at once: executions per round {executions} "
        f"(must be 1 each); killed inside the tool, then resumed: the tool ran {after} time(s) in all, the run "
        f"ended {status!r}, the call recorded as {[r[0] for r in recorded]} (at most once)"
    )
    wb.close()


def _last_run(store: Path) -> str:
    return sqlite3.connect(store).execute("SELECT id FROM agent_runs ORDER BY rowid DESC LIMIT 1").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="O1,O2,O3")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "O1" in only:
        o1(args.rounds)
    if "O2" in only:
        o2()
    if "O3" in only:
        o3(args.rounds)


if __name__ == "__main__":
    main()
