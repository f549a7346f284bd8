"""Exactly-once approved actions, tried as an attacker would: threads, processes, SIGKILL, races to decide.

An approved destructive tool runs once however many resumes race for it; a decision is a
compare-and-set (one winner); edited arguments go through the schema and the guardrails
again; escalation names who decides and posts to the webhook.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.tampering import rechain, tamper
from workbench.approvals import ApprovalError
from workbench.runtime import Workbench

CHILD = Path(__file__).with_name("resume_child.py")
RULES = [
    {"pattern": "(?i)clean up the (?P<t>\\w+) table", "tool": "db__drop", "arguments": {"table": "\\g<t>"}},
    {"role": "tool", "pattern": "dropped (?P<t>\\w+)", "reply": "Done: the \\g<t> table is gone."},
    {"role": "tool", "pattern": "(?i)error|unknown", "reply": "Something went wrong; I stopped."},
    {"pattern": "(?i)delete the file (?P<p>\\S+)", "tool": "files__delete", "arguments": {"path": "\\g<p>"}},
    {"role": "tool", "pattern": "deleted (?P<p>\\S+)", "reply": "Deleted \\g<p>."},
    {"role": "tool", "pattern": "(?i)refused|denied", "reply": "I was not allowed to."},
]
DONE = "Done: the staging table is gone."


def _bench(store: Path, marks: Path | None = None, **settings) -> Workbench:
    wb = Workbench.from_config(store=str(store), scripted={"rules": RULES}, default_route="local/scripted", **settings)
    wb.ran = []

    @wb.tool(name="db.drop", risk="destructive")
    def drop(table: str) -> str:
        """Drop a table."""
        wb.ran.append(f"drop {table}")
        if marks is not None:
            with open(marks, "a") as f:
                f.write(f"{os.getpid()} drop {table}\n")
        time.sleep(0.3)
        return f"dropped {table}"

    return wb


@pytest.fixture
def wb(tmp_path):
    bench = _bench(tmp_path / "x.db")
    yield bench
    bench.close()


def _parked(wb: Workbench, table: str = "staging"):
    run = wb.agent("ops", tools=["db.*"]).run(f"Please clean up the {table} table")
    assert run.status == "waiting"
    return run


def _tool_entries(wb: Workbench) -> list[str]:
    return [w.get("status") or w.get("event") for w in wb.audit.df(kind="tool_call")["what"]]


def test_two_threads_resuming_one_approved_run_run_its_tool_once(wb):
    run = _parked(wb)
    wb.approvals.decide(run.waiting_on, "approve", by="ana")
    barrier = threading.Barrier(4)

    def resume(_):
        barrier.wait()
        return wb.resume(run.id)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(resume, range(4)))
    assert [r.answer for r in results] == [DONE] * 4
    assert wb.ran == ["drop staging"]
    assert sorted(_tool_entries(wb)) == ["ok", "pending", "started"]
    assert wb.approvals.get(run.waiting_on)["execution"] == "done"
    assert wb.audit.verify().ok


def test_two_processes_resuming_at_the_same_moment_run_it_once(tmp_path):
    store, marks = tmp_path / "p.db", tmp_path / "marks.txt"
    wb = _bench(store)
    for round_ in range(3):
        run = _parked(wb, f"t{round_}")
        wb.approvals.decide(run.waiting_on, "approve", by="ana")
        start = time.time() + 2.0
        procs = [
            subprocess.Popen(
                [sys.executable, str(CHILD), str(store), str(marks), str(start), "resume", run.id],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
        answers = [json.loads(o[0].strip().splitlines()[-1])["answer"] for o in outs]
        assert answers == [f"Done: the t{round_} table is gone."] * 2
        assert marks.read_text().count(f"drop t{round_}\n") == 1, marks.read_text()
    assert wb.audit.verify().ok
    wb.close()


def test_a_workflow_resumed_from_two_threads_runs_its_approved_tool_once(wb):
    wf = wb.workflow("cleanup")
    wf.tool("drop", "db.drop", arguments={"table": "staging"})
    run = wf.run()
    assert run.status == "waiting"
    assert run.waiting_on == ["drop"]
    [approval] = wb.approvals.pending()["id"]
    wb.approvals.decide(approval, "approve", by="ana")
    barrier = threading.Barrier(3)

    def resume(_):
        barrier.wait()
        return wf.resume(run.id)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(resume, range(3)))
    assert [(r.status, r.results.get("drop")) for r in results] == [("done", "dropped staging")] * 3
    assert wb.ran == ["drop staging"]
    assert wb.approvals.get(approval)["execution"] == "done"


def test_approve_and_reject_at_the_same_moment_one_decision_wins(tmp_path):
    store = tmp_path / "d.db"
    wb = _bench(store)
    for _ in range(3):
        row = wb.approvals.request("db.drop", {"table": "t"}, risk="destructive", reason="destructive tool")
        start = time.time() + 1.5
        procs = {
            d: subprocess.Popen(
                [sys.executable, str(CHILD), str(store), str(tmp_path / "m"), str(start), "decide", row["id"], d],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for d in ("approve", "reject")
        }
        outs = {d: json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for d, p in procs.items()}
        winners = [d for d, o in outs.items() if o["won"]]
        assert len(winners) == 1, outs
        [loser] = [o for o in outs.values() if not o["won"]]
        assert "is already" in loser["error"]
        assert "a decision is taken once" in loser["error"]
        assert wb.approvals.get(row["id"])["status"] == {"approve": "approved", "reject": "rejected"}[winners[0]]
        decisions = [w["event"] for w in wb.audit.df(kind="approval")["what"] if w.get("event") != "requested"]
        assert decisions.count("approved") + decisions.count("rejected") == _ + 1
    assert wb.audit.verify().ok
    wb.close()


def test_a_tool_whose_process_was_killed_mid_run_is_never_run_again(tmp_path):
    store, marks = tmp_path / "k.db", tmp_path / "marks.txt"
    wb = _bench(store, marks)
    run = _parked(wb)
    wb.approvals.decide(run.waiting_on, "approve", by="ana")
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(store), str(marks), "0", "hold", run.id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while not (marks.exists() and marks.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert marks.read_text().count("drop staging") == 1
    done = wb.resume(run.id)  # the owner is gone: this process takes the run over
    assert marks.read_text().count("drop staging") == 1  # ... but not the tool
    assert done.answer == "Something went wrong; I stopped."
    [call] = done.df().to_dict("records")
    assert call["status"] == "unknown"
    assert "not run again" in call["result"]
    assert wb.approvals.get(run.waiting_on)["execution"] == "unknown"
    assert wb.audit.verify().ok
    wb.close()


@pytest.fixture
def guarded(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "workbench.toml").write_text("""
store = "g.db"
default_route = "local/scripted"
[guardrails.tools]
paths = ["data"]
arguments = [{ tool = "files.*", argument = "path", check = "path" }]
""")
    bench = Workbench.from_config(tmp_path / "workbench.toml", scripted={"rules": RULES})
    bench.deleted = []

    @bench.tool(name="files.delete", risk="destructive")
    def delete(path: str) -> str:
        """Delete a file."""
        bench.deleted.append(path)
        return f"deleted {path}"

    yield bench
    bench.close()


def test_edited_arguments_go_through_the_schema_and_every_guardrail_again(guarded, tmp_path):
    run = guarded.agent("ops", tools=["files.*"]).run("delete the file data/old.csv")
    assert run.status == "waiting"
    edits = (({"path": "/etc/passwd"}, "outside"), ({"path": 42}, "path"), ({"paht": "data/x"}, "Field required"))
    for edit, why in edits:
        with pytest.raises(ApprovalError, match=f"edited arguments .* were refused.*{why}"):
            guarded.approvals.decide(run.waiting_on, "modify", by="ana", arguments=edit)
    assert guarded.approvals.get(run.waiting_on)["status"] == "pending"  # nothing was decided
    cli = [
        sys.executable,
        "-m",
        "workbench.cli",
        "--config",
        str(tmp_path / "workbench.toml"),
        "approvals",
        "approve",
        run.waiting_on,
        "--arguments",
        '{"path": "../../../../etc/hosts"}',
    ]
    out = subprocess.run(cli, capture_output=True, text=True)
    assert out.returncode == 2
    assert "were refused" in out.stderr
    assert "Traceback" not in out.stderr
    assert guarded.approvals.get(run.waiting_on)["status"] == "pending"
    guarded.approvals.checker = None  # a decision taken where the check could not run: the run checks again
    guarded.approvals.decide(run.waiting_on, "modify", by="ana", arguments={"path": "/etc/passwd"})
    done = guarded.resume(run.id)
    assert guarded.deleted == []
    assert done.answer == "I was not allowed to."
    assert done.df()["status"].tolist() == ["denied"]
    other = guarded.agent("ops", tools=["files.*"]).run("delete the file data/b.csv")
    guarded.approvals.decide(other.waiting_on, "modify", by="ana", arguments={"path": "data/a.csv"})
    assert guarded.resume(other.id).answer == "Deleted data/a.csv."
    assert guarded.deleted == ["data/a.csv"]


def test_escalation_names_who_decides_and_posts_to_the_webhook(tmp_path, hook):
    url, received = hook
    wb = Workbench.from_config(
        store=str(tmp_path / "e.db"), alerts={"webhook": url}, approvals={"approvers": ["ana", "boss"]}
    )
    row = wb.approvals.request("db.drop", {"table": "orders"}, risk="destructive", reason="destructive tool")
    with pytest.raises(ApprovalError, match="mallory may not decide approvals"):
        wb.approvals.decide(row["id"], "approve", by="mallory")
    with pytest.raises(ApprovalError, match="can't escalate to mallory"):
        wb.approvals.escalate(row["id"], to="mallory", by="ana")
    with pytest.warns(UserWarning, match="escalated by ana to boss"):
        wb.approvals.escalate(row["id"], to="boss", by="ana", reason="production table")
    wb.alerts.flush()
    assert received[-1]["rule"] == "approval_escalated"
    assert "to boss: production table" in received[-1]["text"]
    with pytest.raises(ApprovalError, match="escalated to boss: only they can decide it, not ana"):
        wb.approvals.decide(row["id"], "approve", by="ana")
    wb.approvals.decide(row["id"], "reject", by="boss", reason="not today")
    done = wb.approvals.get(row["id"])
    assert (done["status"], done["decided_by"], done["escalated_to"]) == ("rejected", "boss", "boss")
    assert wb.audit.verify().ok
    wb.close()


DECISION_TAMPERS = {
    "a rejection flipped to approved": ("reject", "UPDATE approvals SET status = 'approved'"),
    "approved arguments edited": ("approve", """UPDATE approvals SET final_arguments = '{"table": "prod"}'"""),
    "a pending one approved in the file": (
        None,
        "UPDATE approvals SET status = 'approved', decided_by = 'ana', final_arguments = arguments",
    ),
}


@pytest.mark.parametrize("name", DECISION_TAMPERS)
def test_a_decision_edited_in_the_file_never_runs_its_tool(wb, name):
    """A decision is acted on only as the audit entry that recorded it says (keyed: the file alone can't forge one):
    an edited one is refused, named, alerted on, and the tool does not run."""
    from workbench.store.chain import AuditChainBroken

    decision, edit = DECISION_TAMPERS[name]
    run = _parked(wb)
    if decision:
        wb.approvals.decide(run.waiting_on, decision, by="bob", reason="checked")
    tamper(wb, edit)
    with (
        pytest.warns(UserWarning, match="approvals row"),
        pytest.raises(AuditChainBroken, match=rf"approvals row {run.waiting_on} differs from what entry \d+ recorded"),
    ):
        wb.resume(run.id)
    assert wb.ran == []
    assert "ok" not in _tool_entries(wb)


def test_a_forged_approval_for_a_parked_workflow_step_never_runs_its_tool(wb):
    """A row inserted in the file, approving a parked step's tool call, is newer than the real (pending) one: the
    workflow finds it, and refuses it, since no audit entry records it."""
    wf = wb.workflow("cleanup")
    wf.tool("drop", "db.drop", arguments={"table": "staging"})
    run = wf.run()
    assert run.status == "waiting"
    tamper(
        wb,
        "INSERT INTO approvals (id, created_at, expires_at, status, tool, risk, arguments, run_id, tool_call_id, "
        "final_arguments) SELECT 'forged', created_at || 'z', expires_at, 'approved', tool, risk, arguments, run_id, "
        "tool_call_id, arguments FROM approvals",
    )
    with pytest.warns(UserWarning, match="approvals row forged"):
        resumed = wf.resume(run.id)
    assert resumed.status == "failed" and "no audit entry vouches for approvals row forged" in resumed.error
    assert wb.ran == []


def test_an_executed_approval_reset_in_the_file_does_not_run_again(tmp_path):
    """After the tool ran, the approval's execution and the tool call's row are reset in the file (so both look
    unclaimed): the newest entries binding them recorded otherwise, and the claim refuses."""
    wb = _bench(tmp_path / "x.db")
    wf = wb.workflow("cleanup")
    wf.tool("drop", "db.drop", arguments={"table": "staging"})
    run = wf.run()
    wb.approvals.decide(wb.approvals.pending()["id"][0], "approve", by="ana")
    assert wf.resume(run.id).status == "done"
    tamper(
        wb,
        "UPDATE approvals SET execution = NULL, executed_by = NULL, executed_at = NULL",
        "UPDATE tool_calls SET status = 'pending', result = NULL",
        "UPDATE workflow_runs SET status = 'waiting', finished_at = NULL",
        "DELETE FROM workflow_steps",
    )
    with pytest.warns(UserWarning, match="approvals row"):
        again = wf.resume(run.id)
    assert again.status == "failed" and "differs from what entry" in again.error
    assert wb.ran == ["drop staging"]
    wb.close()


def test_an_approval_whose_entries_were_compacted_away_still_runs_once_and_a_later_edit_is_still_refused(tmp_path):
    from workbench.store.chain import AuditChainBroken

    wb = _bench(tmp_path / "x.db")
    first, second = _parked(wb), _parked(wb, "scratch")
    wb.approvals.decide(first.waiting_on, "approve", by="ana")
    wb.approvals.decide(second.waiting_on, "approve", by="ana")
    assert wb.compact("2999-01-01").audit_entries > 0  # every entry so far: the approvals' digests are carried
    assert not wb.store.query("SELECT id FROM audit WHERE kind = 'approval'")
    assert wb.resume(first.id).answer == DONE
    tamper(
        wb,
        """UPDATE approvals SET final_arguments = '{"table": "prod"}' WHERE execution IS NULL""",
    )
    with (
        pytest.warns(UserWarning, match="approvals row"),
        pytest.raises(AuditChainBroken, match="differs from what entry"),
    ):
        wb.resume(second.id)
    assert wb.ran == ["drop staging"]
    wb.close()


def test_an_approval_from_before_entries_bound_rows_is_adopted_then_runs_once(tmp_path):
    """A store from a version whose entries bound no rows: its approvals are adopted (their digests carried) before
    the first one is acted on, so an approved run parked across the upgrade still runs, once."""
    wb = _bench(tmp_path / "x.db")
    run = _parked(wb)
    wb.approvals.decide(run.waiting_on, "approve", by="ana")
    wb.close()
    tamper(
        wb,
        "UPDATE audit SET payload = replace(payload, '\"bind\"', '\"was\"') WHERE kind = 'approval'",
        "INSERT INTO audit_state (k, v) VALUES ('adopt_tables', 'approvals')",
    )
    rechain(tmp_path / "x.db")  # hashed again with the key, as that version wrote them
    again = _bench(tmp_path / "x.db")
    assert again.resume(run.id).answer == DONE
    assert again.ran == ["drop staging"]
    assert again.audit.verify().ok
    again.close()
