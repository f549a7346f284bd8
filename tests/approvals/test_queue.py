"""The approval queue: policy, decisions with who/when/why, escalation, expiry, the CLI and the magic."""

import json
import subprocess
import sys
import time

import pytest

from tests.hostile import circular, nested
from workbench.approvals import ApprovalError
from workbench.runtime import Workbench


@pytest.fixture
def wb(tmp_path):
    bench = Workbench.from_config(
        store=str(tmp_path / "q.db"),
        approvals={
            "rules": [
                {"tool": "db.query", "decision": "approve"},
                {"tool": "mail.*", "risk": "write", "decision": "ask"},
                {"tool": "*", "min_cost_usd": 5, "decision": "reject"},
            ],
            "expire_s": 0.5,
        },
    )
    yield bench
    bench.close()


def test_the_first_matching_rule_decides_else_the_risk_default(wb):
    a = wb.approvals
    assert a.policy("db.query", "destructive") == "approve"
    assert a.policy("mail.send", "write") == "ask"
    assert a.policy("mail.read", "read") == "approve"
    assert a.policy("files.read", "read", spent_usd=6) == "reject"
    assert a.policy("db.drop", "destructive") == "ask"
    assert a.policy("db.insert", "write") == "approve"


def test_decisions_are_recorded_once_with_who_when_and_why(wb):
    a = wb.approvals
    row = a.request(
        "mail.send",
        {"to": "all@acme.test"},
        risk="write",
        reason="write tool needs approval",
        session="s",
        agent="mailer",
    )
    a.decide(row["id"], "escalate", by="junior", reason="needs a manager", to="manager")
    assert a.pending()["status"].tolist() == ["escalated"]
    a.decide(row["id"], "modify", by="manager", reason="only the team", arguments={"to": "team@acme.test"})
    done = a.get(row["id"])
    assert (done["status"], done["decided_by"], done["decision_reason"], json.loads(done["final_arguments"])) == (
        "modified",
        "manager",
        "only the team",
        {"to": "team@acme.test"},
    )
    assert done["decided_at"] > done["created_at"]
    with pytest.raises(ApprovalError, match="is already modified"):
        a.decide(row["id"], "approve")
    with pytest.raises(ApprovalError, match="modify needs the edited arguments"):
        a.decide(row["id"], "modify")
    with pytest.raises(ApprovalError, match="no approval 'nope'"):
        a.decide("nope", "approve")


def test_pending_approvals_expire(wb):
    row = wb.approvals.request("db.drop", {}, risk="destructive", reason="r")
    time.sleep(0.6)
    with pytest.raises(ApprovalError, match="expired at"):
        wb.approvals.decide(row["id"], "approve")
    assert wb.approvals.pending().empty
    assert wb.approvals.get(row["id"])["status"] == "expired"


def test_the_cli_lists_and_decides(tmp_path):
    (tmp_path / "workbench.toml").write_text('store = "c.db"\n')
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    row = wb.approvals.request("db.drop", {"table": "t"}, risk="destructive", reason="destructive tool")
    cli = [sys.executable, "-m", "workbench.cli", "--config", str(tmp_path / "workbench.toml"), "approvals"]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, check=True).stdout
    assert row["id"] in listed
    assert "db.drop" in listed
    assert '{"table": "t"}' in listed
    out = subprocess.run(
        [*cli, "approve", row["id"], "--by", "ops", "--arguments", '{"table": "t_tmp"}'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith(f"{row['id']}: modified by ops")
    assert json.loads(wb.approvals.get(row["id"])["final_arguments"]) == {"table": "t_tmp"}
    again = subprocess.run([*cli, "reject", row["id"]], capture_output=True, text=True)
    assert again.returncode == 2
    assert "is already modified" in again.stderr
    assert "no pending approvals" in subprocess.run([*cli, "list"], capture_output=True, text=True).stdout


def test_a_by_reason_or_to_that_is_not_text_is_a_one_line_error(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "q.db"))
    row = wb.approvals.request("db.drop", {"table": "t"}, risk="destructive", reason="destructive tool")
    for bad in ({"reason": 5}, {"by": 7}, {"to": ["ana"]}):
        with pytest.raises(ApprovalError, match=r"^(by|reason|to) is text \(a name or a sentence\), not (int|list)$"):
            wb.approvals.decide(row["id"], "escalate" if "to" in bad else "reject", **bad)
    assert wb.approvals.get(row["id"])["status"] == "pending"


def test_an_approval_asked_with_a_wrong_tool_arguments_risk_or_reason_is_a_one_line_error(tmp_path):
    """What is queued is what a decider sees and what runs: a tool named by text, its arguments as a dict, a risk
    the policy knows (an unknown one was queued, and matched no rule keyed by risk), a reason as text."""
    wb = Workbench.from_config(store=str(tmp_path / "q.db"))
    asked = {"tool": "db.drop", "arguments": {"table": "t"}, "risk": "destructive", "reason": "drop it"}
    for wrong, message in [
        ({"tool": 5}, "an approval is asked for a tool, named by text, not 5"),
        ({"tool": " "}, "an approval is asked for a tool, named by text, not ' '"),
        ({"arguments": "table t"}, "the tool's arguments are a dict \\(its JSON object\\), not str"),
        ({"risk": "catastrophic"}, "risk must be one of read, write, destructive, not 'catastrophic'"),
        ({"risk": "x" * 1_000_000}, "risk must be one of read, write, destructive, not 'x+\\.\\.\\.x+'$"),
        ({"reason": None}, "reason is text \\(a name or a sentence\\), not NoneType"),
        ({"arguments": {"table": nested()}}, "the tool's arguments cannot be written as JSON \\(RecursionError"),
        ({"arguments": circular()}, "the tool's arguments cannot be written as JSON \\(ValueError"),
        ({"arguments": {"rows": "x" * 200_000}}, "the tool's arguments are 200,012 characters of JSON, over 100,000"),
    ]:
        mistake = {**asked, **wrong}
        with pytest.raises(ApprovalError, match=f"^{message}"):
            wb.approvals.request(mistake.pop("tool"), mistake.pop("arguments"), **mistake)
    assert wb.approvals.pending().empty
    row = wb.approvals.request(**asked)
    for edited in ({"table": nested()}, {"rows": "x" * 200_000}):  # a human's edit, held to the same
        with pytest.raises(ApprovalError, match="^the tool's arguments (cannot be written as JSON|are 200,012)"):
            wb.approvals.decide(row["id"], "modify", by="ana", arguments=edited)
    assert wb.approvals.get(row["id"])["status"] == "pending"
    (tmp_path / "workbench.toml").write_text('store = "q.db"\n')
    cli = [sys.executable, "-m", "workbench.cli", "--config", str(tmp_path / "workbench.toml"), "approvals"]
    too_deep = subprocess.run(
        [*cli, "approve", row["id"], "--arguments", "[" * 5000 + "]" * 5000], capture_output=True, text=True
    )
    assert (
        too_deep.returncode == 2
        and too_deep.stderr.strip() == "workbench: --arguments is nested too deeply to read: give plain values"
    )
    assert wb.approvals.get(row["id"])["status"] == "pending"
