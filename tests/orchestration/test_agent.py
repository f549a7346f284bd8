"""The agent loop, offline with local/scripted: tools run, results go back, guardrails and approvals apply."""

import time

import pytest

from workbench.runtime import Workbench

RULES = [
    {
        "pattern": "(?i)revenue of (?P<r>\\w+) and (?P<s>\\w+)",
        "calls": [
            {"tool": "sales__revenue", "arguments": {"region": "\\g<r>"}},
            {"tool": "sales__revenue", "arguments": {"region": "\\g<s>"}},
        ],
    },
    {"pattern": "(?i)clean up the (?P<t>\\w+) table", "tool": "db__drop", "arguments": {"table": "\\g<t>"}},
    {"pattern": "(?i)loop forever", "tool": "sales__revenue", "arguments": {"region": "x"}},
    {"pattern": "(?i)delegate: (?P<q>.+)", "tool": "agent__helper", "arguments": {"task": "\\g<q>"}},
    {"role": "tool", "pattern": '"region": "x"', "tool": "sales__revenue", "arguments": {"region": "x"}},
    {"role": "tool", "pattern": "dropped (?P<t>\\w+)", "reply": "Done: the \\g<t> table is gone."},
    {"role": "tool", "pattern": "(?i)rejected|denied|not approved", "reply": "I did not touch anything."},
    {"role": "tool", "pattern": '"total": (?P<n>\\d+)', "reply": "The last region made \\g<n>."},
    {"pattern": "(?i)what is (?P<a>\\d+) plus (?P<b>\\d+)", "reply": "It is \\g<a>+\\g<b>."},
]


@pytest.fixture
def wb(tmp_path):
    bench = Workbench.from_config(
        store=str(tmp_path / "a.db"), scripted={"rules": RULES}, default_route="local/scripted"
    )
    ran: list[tuple[str, float]] = []

    @bench.tool(name="sales.revenue")
    def revenue(region: str) -> dict:
        """Revenue of a region."""
        ran.append((region, time.perf_counter()))
        time.sleep(0.2)
        return {"region": region, "total": 1000 + len(region)}

    @bench.tool(name="db.drop", risk="destructive")
    def drop(table: str) -> str:
        """Drop a table."""
        ran.append((f"drop {table}", time.perf_counter()))
        return f"dropped {table}"

    bench.ran = ran
    yield bench
    bench.close()


def test_independent_tool_calls_run_in_parallel_and_the_answer_uses_their_results(wb):
    run = wb.agent("analyst", tools=["sales.*"]).run("What is the revenue of north and south?")
    assert run.status == "done"
    assert run.answer == "The last region made 1005."
    (first, t1), (second, t2) = sorted(wb.ran)
    assert (first, second) == ("north", "south")
    assert abs(t1 - t2) < 0.15  # started together, not 0.2 s apart
    assert run.df()[["step", "tool", "status"]].values.tolist() == [[1, "sales.revenue", "ok"]] * 2
    assert run.steps == 2
    assert len(wb.calls.df()) == 2
    assert set(wb.calls.df()["task"]) == {"agent:analyst"}


def test_the_step_limit_and_the_budget_stop_a_run(wb):
    looping = wb.agent("looper", tools=["sales.revenue"], max_steps=3).run("loop forever please")
    assert (looping.status, looping.stop_reason, looping.steps) == ("stopped", "step limit of 3 reached", 3)
    from workbench.config import Price

    wb.settings.prices["local/scripted"] = Price(input_cost_per_token=0.0001, output_cost_per_token=0.0001)
    spender = wb.agent("spender", tools=["sales.revenue"], max_steps=50, budget=1.0).run("loop forever please")
    assert spender.status == "stopped"
    assert spender.steps >= 2
    assert spender.cost_usd <= 1.0  # never over
    assert spender.stop_reason.startswith("budget: the next step may cost up to $")


def test_a_destructive_tool_parks_the_run_until_a_human_approves(wb):
    run = wb.agent("ops", tools=["db.*"]).run("Please clean up the staging table")
    assert run.status == "waiting"
    assert wb.ran == []
    [pending] = wb.approvals.pending().to_dict("records")
    assert (pending["tool"], pending["arguments"], pending["run_id"]) == ("db.drop", '{"table": "staging"}', run.id)
    wb.approvals.decide(pending["id"], "approve", by="ana", reason="staging is disposable")
    done = wb.resume(run.id)
    assert done.status == "done"
    assert done.answer == "Done: the staging table is gone."
    assert [r for r, _ in wb.ran] == ["drop staging"]
    assert wb.resume(run.id).answer == done.answer
    assert len(wb.ran) == 1  # resuming again runs nothing again
    decided = wb.approvals.df().iloc[0]
    assert (decided["status"], decided["decided_by"], decided["decision_reason"]) == (
        "approved",
        "ana",
        "staging is disposable",
    )


def test_reject_and_modify_decisions(wb):
    run = wb.agent("ops", tools=["db.*"]).run("clean up the customers table")
    wb.approvals.decide(run.waiting_on, "reject", by="ana", reason="customers is production")
    done = wb.resume(run.id)
    assert done.answer == "I did not touch anything."
    assert wb.ran == []
    assert done.df()["result"].tolist() == ["rejected by ana: customers is production"]
    other = wb.agent("ops", tools=["db.*"]).run("clean up the orders table")
    wb.approvals.decide(other.waiting_on, "modify", by="ana", arguments={"table": "orders_tmp"})
    assert wb.resume(other.id).answer == "Done: the orders_tmp table is gone."


def test_a_programmatic_decider_answers_at_once(wb):
    wb.approvals.decider = lambda request: request["arguments"]["table"] == "scratch"
    scratch = wb.agent("ops", tools=["db.*"]).run("clean up the scratch table")
    assert scratch.answer == "Done: the scratch table is gone."
    assert wb.agent("ops", tools=["db.*"]).run("clean up the users table").answer == "I did not touch anything."


def test_guardrails_deny_a_tool_before_approvals_are_asked(tmp_path):
    wb = Workbench.from_config(
        store=str(tmp_path / "g.db"), scripted={"rules": RULES}, guardrails={"tools": {"allow": ["sales.*"]}}
    )

    @wb.tool(name="db.drop", risk="destructive")
    def drop(table: str) -> str:
        raise AssertionError("must not run")

    run = wb.agent("ops", tools=["db.*"], model="local/scripted").run("clean up the orders table")
    assert run.answer == "I did not touch anything."
    assert wb.approvals.df().empty
    assert run.df()["status"].tolist() == ["denied"]


def test_delegation_to_another_agent(wb):
    wb.agent("helper").as_tool()
    run = wb.agent("boss", tools=["agent.helper"]).run("delegate: what is 2 plus 3")
    assert run.df()["result"].tolist() == ["It is 2+3."]
    assert {r["agent"] for r in wb.store.query("SELECT agent FROM calls")} == {"boss", "helper"}


def test_a_call_whose_arguments_a_guardrail_flagged_can_require_approval(tmp_path):
    rules = [
        {"pattern": "(?i)email (?P<who>\\S+@\\S+)", "tool": "mail__send", "arguments": {"to": "\\g<who>"}},
        {"role": "tool", "pattern": "sent", "reply": "Sent."},
    ]
    wb = Workbench.from_config(
        store=str(tmp_path / "f.db"),
        scripted={"rules": rules},
        guardrails={"tool_call": {"pii": "flag"}},
        approvals={"rules": [{"tool": "*", "flagged": True, "decision": "ask"}]},
    )

    @wb.tool(name="mail.send", risk="write")
    def send(to: str) -> str:
        """Send an e-mail."""
        return "sent"

    run = wb.agent("mailer", tools=["mail.*"], model="local/scripted").run("email ada@example.com the report")
    assert run.status == "waiting"
    assert wb.approvals.get(run.waiting_on)["reason"] == "the guardrails flagged its arguments (pii:email)"
    assert wb.approvals.policy("mail.send", "write", flagged=False) == "approve"


def test_an_agent_remembers_in_its_own_scope_and_reads_shared(wb):
    wb.memory.add("Revenue figures are in EUR", "shared", "fact")
    agent = wb.agent("analyst", tools=["sales.*"], remember=True)
    first = agent.run("What is the revenue of north and south?")
    [episode] = wb.memory.df("agent:analyst").to_dict("records")
    assert episode["kind"] == "episode"
    assert episode["text"].endswith(f"-> {first.answer}")
    agent.run("What is the revenue of east and west?")
    import json

    system = json.loads(wb.calls.last()["request"])["messages"][0]["content"]
    assert "What you remember:" in system
    assert "Revenue figures are in EUR" in system
    assert wb.memory.df("agent:other").empty  # another agent's scope stays empty


def test_a_parked_run_resumed_elsewhere_still_remembers(wb):
    run = wb.agent("ops", tools=["db.*"], remember=True).run("clean up the temp table")
    wb.approvals.decide(run.waiting_on, "approve", by="ana")
    done = wb.resume(run.id)  # rebuilt from the stored run, as another kernel would
    assert done.answer == "Done: the temp table is gone."
    [episode] = wb.memory.df("agent:ops").to_dict("records")
    assert episode["text"] == "clean up the temp table -> Done: the temp table is gone."


def test_a_parked_tool_call_names_its_approval_in_its_own_column_and_old_rows_still_resume(wb):
    run = wb.agent("ops", tools=["db.*"]).run("Please clean up the staging table")
    [parked] = wb.store.query("SELECT status, error, approval_id FROM tool_calls WHERE run_id = ?", (run.id,))
    assert parked["status"] == "pending"
    assert parked["approval_id"] == run.waiting_on
    assert parked["error"] is None  # no longer JSON smuggled into the error column
    with wb.store.transaction() as conn:  # as a version before the column wrote it
        conn.execute(
            "UPDATE tool_calls SET approval_id = NULL, error = ? WHERE run_id = ?",
            (f'{{"approval": "{run.waiting_on}"}}', run.id),
        )
    wb.approvals.decide(run.waiting_on, "approve", by="ana")
    assert wb.resume(run.id).answer == "Done: the staging table is gone."
    [ran] = wb.store.query("SELECT status, approval_id FROM tool_calls WHERE run_id = ?", (run.id,))
    assert (ran["status"], ran["approval_id"]) == ("ok", run.waiting_on)


def test_a_tool_result_over_the_limit_is_cut_at_a_space_and_says_so(tmp_path):
    """A tool that returns 50 MB filled the store (150 MB) and the next request; now it is cut before it is scanned,
    stored or sent, never through the middle of a word (a key is one word: half of one is not kept either).
    """
    rules = [
        {"pattern": "(?i)fetch it", "tool": "big__get", "arguments": {"n": 1}},
        {"role": "tool", "pattern": "(?s).*", "reply": "Done."},
    ]
    wb = Workbench.from_config(
        store=str(tmp_path / "big.db"),
        scripted={"rules": rules},
        default_route="local/scripted",
        guardrails={"max_tool_result_chars": 1000},
    )
    key = "sk-proj-CUTKEYaaaaBBBBccccDDDDeeee0001"

    @wb.tool(name="big.get")
    def get(n: int) -> str:
        """Get."""
        return "word " * 199 + "abc" + key + " tail" * 10_000_000

    run = wb.agent("a", tools=["big.*"]).run("fetch it")
    assert run.status == "done"
    [result] = [r["result"] for r in wb.store.query("SELECT result FROM tool_calls")]
    assert result.startswith("word word") and len(result) < 1200
    assert result.endswith(
        f"[cut: the result of big.get is {len('word ' * 199 + 'abc' + key) + 50_000_000:,} characters; "
        "the first 994 are shown ([guardrails] max_tool_result_chars)]"
    )
    sent = wb.store.query("SELECT request FROM calls ORDER BY started_at DESC LIMIT 1")[0]["request"]
    assert "[cut: the result of big.get" in sent and len(sent) < 5000
    wb.close()
    assert (tmp_path / "big.db").stat().st_size < 2_000_000
    assert b"CUTKEY" not in b"".join(p.read_bytes() for p in tmp_path.glob("big.db*"))
