"""Workflows: dependencies, fan-out under a concurrency limit, error policies, checkpoints that survive a kill."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from workbench.orchestration import WorkflowError
from workbench.runtime import Workbench

CRASH = Path(__file__).with_name("crash_workflow.py")


@pytest.fixture
def wb(tmp_path):
    bench = Workbench.from_config(
        store=str(tmp_path / "w.db"),
        scripted={"rules": [{"pattern": "(?i)summarise: (?P<x>.+)", "reply": "Summary of \\g<x>"}]},
    )
    yield bench
    bench.close()


def test_steps_run_after_their_dependencies_and_fan_out_is_bounded(wb):
    wf = wb.workflow("report", concurrency=3)
    live, peak, lock = [0], [0], threading.Lock()

    @wf.step()
    def regions() -> list[str]:
        return ["north", "south", "east", "west", "centre", "islands"]

    def revenue(region: str) -> int:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.1)
        with lock:
            live[0] -= 1
        return len(region) * 100

    wf.map("revenue", over="regions", fn=revenue)

    @wf.step()
    def total(revenue: list[int]) -> int:
        return sum(revenue)

    wf.llm("summary", "Summarise: total {total}", depends_on=["total"], model="local/scripted")
    run = wf.run()
    assert run.status == "done"
    assert run["revenue"] == [500, 500, 400, 400, 600, 700]
    assert run["total"] == 3100
    assert run["summary"] == "Summary of total 3100"
    assert peak[0] == 3
    assert set(run.df()["step"]) == {"regions", "total", "summary", "revenue"} | {f"revenue[{i}]" for i in range(6)}


def test_retry_skip_fallback_and_fail(wb):
    wf = wb.workflow("policies")
    calls = {"flaky": 0}

    @wf.step(retry=2)
    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError("try again")
        return "ok"

    @wf.step(on_error="skip")
    def optional() -> int:
        raise ValueError("no data")

    @wf.step(on_error="fallback", fallback=lambda exc: f"default ({exc})")
    def with_default() -> str:
        raise KeyError("rate")

    @wf.step()
    def report(flaky: str, optional: int | None, with_default: str) -> str:
        return f"{flaky}/{optional}/{with_default}"

    run = wf.run()
    assert run["report"] == "ok/None/default ('rate')"
    assert calls["flaky"] == 3
    statuses = run.df().set_index("step")["status"].to_dict()
    assert statuses == {"flaky": "done", "optional": "skipped", "with_default": "fallback", "report": "done"}
    failing = wb.workflow("failing")
    failing.step(name="boom")(lambda: 1 / 0)
    failing.step(name="after", depends_on=["boom"])(lambda boom: boom)
    failed = failing.run()
    assert failed.status == "failed"
    assert failed.error.startswith("step boom failed after 1 attempt(s): ZeroDivision")
    assert "after" not in failed.results


def test_malformed_workflows_fail_before_anything_runs(wb):
    wf = wb.workflow("bad")
    wf.step(name="a", depends_on=["b"])(lambda b: b)
    wf.step(name="b", depends_on=["a"])(lambda a: a)
    with pytest.raises(WorkflowError, match="has a cycle: a -> b -> a"):
        wf.run()
    other = wb.workflow("bad2")
    other.step(name="a", depends_on=["nope"])(lambda nope: 1)
    with pytest.raises(WorkflowError, match=r"step a depends on unknown step\(s\) \['nope'\]"):
        other.run()
    regional = wb.workflow("regional")
    regional.step(name="fetch", depends_on=[])(lambda region="eu": region)
    regional.step(name="report", depends_on=["fetch"])(lambda fetch, fmt="md": f"{fetch}.{fmt}")
    with pytest.raises(WorkflowError, match=r"no step takes an input named 'regoin' \(its steps take: fmt, region\); "):
        regional.run(regoin="us")  # a misspelled input would leave the step on its default, silently
    assert wb.store.query("SELECT COUNT(*) AS n FROM workflow_runs")[0]["n"] == 0
    assert regional.run(region="us", fmt="csv").results["report"] == "us.csv"


def test_a_tool_step_waiting_for_approval_parks_the_run_and_resume_finishes_it(wb):
    ran = []

    @wb.tool(name="db.vacuum", risk="destructive")
    def vacuum(table: str) -> str:
        """Vacuum a table."""
        ran.append(table)
        return f"vacuumed {table}"

    wf = wb.workflow("maintenance")
    wf.step(name="tables")(lambda: ["events"])
    wf.tool("vacuum", "db.vacuum", arguments=lambda tables: {"table": tables[0]}, depends_on=["tables"])
    wf.step(name="note", depends_on=["vacuum"])(lambda vacuum: vacuum.upper())
    run = wf.run()
    assert run.status == "waiting"
    assert run.waiting_on == ["vacuum"]
    assert ran == []
    [pending] = wb.approvals.pending().to_dict("records")
    wb.approvals.decide(pending["id"], "approve", by="ana")
    done = wf.resume(run.id)
    assert done.status == "done"
    assert done["note"] == "VACUUMED EVENTS"
    assert ran == ["events"]


def test_a_killed_run_resumes_without_re_running_finished_steps(tmp_path):
    store, marks = tmp_path / "crash.db", tmp_path / "marks.txt"
    proc = subprocess.Popen(
        [sys.executable, str(CRASH), str(store), str(marks), "run"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:  # kill it once 15 branches are checkpointed
        done = 0
        if store.exists():
            try:
                done = (
                    sqlite3.connect(store)
                    .execute("SELECT COUNT(*) FROM workflow_steps WHERE step LIKE 'squares[%' AND status = 'done'")
                    .fetchone()[0]
                )
            except sqlite3.OperationalError:
                pass
        if done >= 15 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    conn = sqlite3.connect(store)
    run_id, status = conn.execute("SELECT id, status FROM workflow_runs").fetchone()
    finished = {
        r[0] for r in conn.execute("SELECT step FROM workflow_steps WHERE status = 'done' AND step LIKE 'squares[%'")
    }
    assert status == "running"
    assert 15 <= len(finished) < 20
    ran_before = marks.read_text().split()
    out = subprocess.run(
        [sys.executable, str(CRASH), str(store), str(marks), "resume", run_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [run_id, "done", str(sum(i * i for i in range(20)))]
    ran_after = marks.read_text().split()[len(ran_before) :]
    resumed = {f"squares[{i}]" for i in ran_after}
    assert not resumed & finished  # no finished branch ran again (one cut off mid-step may, it never finished)
    assert {f"squares[{i}]" for i in range(20)} - finished <= resumed
    assert len(set(ran_before + ran_after)) == 20
