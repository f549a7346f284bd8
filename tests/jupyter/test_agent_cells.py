"""%%llm -t runs the agent loop from a cell; a parked run shows an approval card whose click resumes it."""

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import workbench
from workbench.runtime import Workbench

RULES = [
    {"pattern": "(?i)drop the (?P<t>\\w+) table", "tool": "db__drop", "arguments": {"table": "\\g<t>"}},
    {"role": "tool", "pattern": "dropped (?P<t>\\w+)", "reply": "The \\g<t> table is gone."},
    {"role": "tool", "pattern": "rejected", "reply": "Nothing was dropped."},
]


@pytest.fixture
def agent_wb(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "c.db"), scripted={"rules": RULES})
    wb.dropped = []

    @wb.tool(name="db.drop", risk="destructive")
    def drop(table: str) -> str:
        """Drop a table."""
        wb.dropped.append(table)
        return f"dropped {table}"

    workbench._set_current(wb)
    yield wb
    workbench._set_current(None)
    wb.close()


def test_a_cell_parks_on_a_destructive_tool_and_the_card_click_resumes_it(ip, agent_wb):
    with capture_output() as out:
        ip.run_cell_magic("llm", "-m local/scripted -t db.* -o run", "Please drop the staging table")
    run = ip.user_ns["run"]
    assert run.status == "waiting"
    assert agent_wb.dropped == []
    assert "waiting for approval" in out.outputs[0].data["text/markdown"]
    card = out.outputs[1].data["text/plain"]
    assert card.startswith("VBox(")
    from workbench.jupyter.widgets import ApprovalCard

    card = ApprovalCard(agent_wb, run, by="ana")
    assert "db.drop" in card.header.value
    assert '"table": "staging"' in card.arguments.value
    card.reason.value = "staging is disposable"
    with capture_output():
        card.approve_button.click()
    assert agent_wb.dropped == ["staging"]
    assert "approved by ana" in card.status.value
    assert agent_wb.approvals.df().iloc[0]["decision_reason"] == "staging is disposable"
    assert card.approve_button.disabled  # a second click can't run it twice


def test_edit_runs_the_edited_arguments_and_reject_tells_the_model(ip, agent_wb):
    from workbench.jupyter.widgets import ApprovalCard

    run = agent_wb.agent("ops", tools=["db.*"], model="local/scripted").run("drop the orders table")
    card = ApprovalCard(agent_wb, run)
    card.edit_button.click()
    card.arguments.value = '{"table": "orders_tmp"}'
    with capture_output():
        card.approve_button.click()
    assert agent_wb.dropped == ["orders_tmp"]
    other = agent_wb.agent("ops", tools=["db.*"], model="local/scripted").run("drop the users table")
    with capture_output():
        resumed = ip.run_line_magic("llm_approvals", f"--reject {other.waiting_on} --reason production")
    assert resumed.answer == "Nothing was dropped."
    assert agent_wb.dropped == ["orders_tmp"]
    assert ip.run_line_magic("llm_approvals", "").empty
    assert ip.run_line_magic("llm_approvals", "--history")["status"].tolist() == ["rejected", "modified"]
    with pytest.raises(UsageError, match="no approval 'nope'"):
        ip.run_line_magic("llm_approvals", "--approve nope")
    with pytest.raises(UsageError, match="unknown tool 'nothing'"):
        ip.run_cell_magic("llm", "-m local/scripted -t nothing", "hi")


def test_a_decision_taken_in_a_terminal_is_picked_up_by_the_card(agent_wb, tmp_path):
    from workbench.cli import main
    from workbench.jupyter.widgets import ApprovalCard

    run = agent_wb.agent("ops", tools=["db.*"], model="local/scripted").run("drop the scratch table")
    card = ApprovalCard(agent_wb, run)
    with capture_output():
        card.check_button.click()
    assert "still pending" in card.status.value
    assert not card.approve_button.disabled
    (tmp_path / "workbench.toml").write_text(f'store = "{agent_wb.store.path}"\n')
    assert (
        main(["--config", str(tmp_path / "workbench.toml"), "approvals", "approve", run.waiting_on, "--by", "oncall"])
        == 0
    )
    with capture_output():
        card.check_button.click()
    assert agent_wb.dropped == ["scratch"]
    assert "approved by oncall (elsewhere)" in card.status.value
    assert card.approve_button.disabled
    assert card.check_button.disabled


def test_a_decision_taken_elsewhere_resumes_the_run_in_this_kernel_once(ip, agent_wb, tmp_path):
    """The watcher takes up a terminal's decision and resumes the run on a thread of this kernel; a
    ``wb.resume`` elsewhere at the same moment runs nothing twice; the result shows in the card."""
    import threading
    import time

    from workbench.cli import main
    from workbench.jupyter.widgets import ApprovalCard

    run = agent_wb.agent("ops", tools=["db.*"], model="local/scripted").run("drop the scratch table")
    card = ApprovalCard(agent_wb, run)
    assert card.refresh() is None  # still pending: nothing taken up
    (tmp_path / "workbench.toml").write_text(f'store = "{agent_wb.store.path}"\n')
    assert main(["--config", str(tmp_path / "workbench.toml"), "approvals", "approve", run.waiting_on]) == 0
    elsewhere = threading.Thread(target=agent_wb.resume, args=(run.id,))
    elsewhere.start()  # someone resumes it from another thread at the same moment
    deadline = time.monotonic() + 15  # the card's watcher (once a second) takes the decision up unasked
    while "(elsewhere)" not in card.status.value or "resuming" in card.status.value:
        assert time.monotonic() < deadline, card.status.value
        time.sleep(0.05)
    elsewhere.join()
    assert agent_wb.dropped == ["scratch"]  # once, for both resumes
    assert card.approve_button.disabled and card.check_button.disabled
    shown = "".join(str(o["data"]) for o in card.output.outputs)
    assert "The scratch table is gone." in shown
