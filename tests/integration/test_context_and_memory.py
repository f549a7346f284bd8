"""A call built from a spec, documents and memory: recorded, cited, grounded, replayable."""

import json

import pytest

from workbench.errors import WorkbenchError
from workbench.runtime import Workbench

SPEC = """system: You answer for {{ company }}; cite [ids].
variables: {company: Acme}
budget_tokens: 400
sources:
  - {kind: documents, collection: handbook, k: 2, priority: 2, max_tokens: 150, overflow: truncate}
  - {kind: memory, scopes: [user, shared], k: 3, priority: 1, max_tokens: 60}
"""
HANDBOOK = (
    "# Refunds\n\nRefunds are paid within 30 days of a return.\n\n# Shipping\n\nShipping abroad takes 7 working days.\n"
)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "contexts").mkdir()
    (tmp_path / "contexts" / "support.yaml").write_text(SPEC)
    (tmp_path / "handbook.md").write_text(HANDBOOK)
    (tmp_path / "workbench.toml").write_text('store = "w.db"\n')
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    wb.docs.add("handbook", [tmp_path / "handbook.md"])
    yield wb
    wb.close()


def test_a_spec_call_records_its_plan_version_and_grounding(project):
    project.memory.add("Alice prefers answers in French", "user:alice", "preference", importance=0.9)
    result = project.ask("When are refunds paid?", model="local/extractive", spec="support", user="alice")
    assert "[handbook.md#1]" in result.text and result.grounding == 1.0
    plan = result.context
    assert [(b.source, b.ref, b.status) for b in plan.blocks if b.source not in ("system", "input")] == [
        ("documents:handbook", "handbook.md#1", "included"),
        ("memory", project.memory.df()["id"].iloc[0], "included"),
    ]
    system = project.calls.df().iloc[-1]
    assert (system["context_spec"], system["grounding"]) == ("support", 1.0)
    assert len(system["context_version"]) == 12
    stored = json.loads(project.calls.last()["context_plan"])
    assert stored["spec"] == "support"
    assert stored["used"] == plan.used
    assert len(stored["blocks"]) == len(plan.blocks)
    sent = json.loads(project.calls.last()["request"])["messages"][0]["content"]
    assert sent.startswith("You answer for Acme; cite [ids].")
    assert "- Alice prefers answers in French" in sent


def test_an_ungrounded_answer_scores_low(project):
    # local/echo answers with the question: only "refunds paid" of it is in the retrieved chunk.
    result = project.ask("When are refunds paid for quantum gravity telescopes?", model="local/echo", spec="support")
    assert result.context.blocks[2].ref == "handbook.md#1" and result.grounding == 0.0


def test_remember_writes_with_its_source_call_and_the_next_call_reads_it(project):
    first = project.ask("My account number is 4411", model="local/echo", memory="user:bob", remember=True)
    row = project.memory.df("user:bob").iloc[0]
    assert row["text"] == "My account number is 4411"
    assert row["source_call"] == first.call_id
    second = project.ask("What is my account number?", model="local/extractive", memory="user:bob")
    assert "4411" in second.text
    with pytest.raises(WorkbenchError, match="remember=True needs a memory scope"):
        project.ask("x", model="local/echo", remember=True)
    with pytest.raises(WorkbenchError, match="memory scope 'bob' is not one of"):
        project.ask("x", model="local/echo", memory="bob")


def test_rules_extraction_remembers_preferences_from_the_conversation(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "x.db"), memory={"extract": "rules"})
    wb.ask("I prefer answers as bullet points. What is the refund window?", model="local/echo", memory="user:cy")
    assert wb.memory.df("user:cy")[["kind", "text"]].values.tolist() == [
        ["preference", "I prefer answers as bullet points."]
    ]
    wb.ask("My team is the payments squad.", model="local/echo", user="dee")  # no scope given: the user's own
    assert wb.memory.df("user:dee")["text"].tolist() == ["My team is the payments squad."]


def test_a_session_over_its_history_budget_is_trimmed_or_summarised_by_its_model(tmp_path):
    trim = Workbench.from_config(store=str(tmp_path / "t.db"), memory={"history_tokens": 40})
    for i in range(6):
        trim.ask(f"question number {i} about the quarterly numbers please", model="local/echo", session="s")
    plan = trim.calls.df().iloc[-1]
    kept = json.loads(trim.calls.last()["context_plan"])["blocks"]
    assert {b["status"] for b in kept if b["source"] == "history"} == {"included", "dropped"}
    assert plan["route"] == "local/echo"
    assert len(trim.calls.df()) == 6  # no summary calls when trimming

    summ = Workbench.from_config(
        store=str(tmp_path / "s.db"), memory={"history_tokens": 60, "history_overflow": "summarise"}
    )
    for i in range(6):
        summ.ask(f"question number {i} about the quarterly numbers please", model="local/extractive", session="s")
    calls = summ.calls.df()
    assert (calls["task"] == "summary").sum() >= 1  # each summary is a call of its own, recorded
    last = json.loads(summ.calls.last()["context_plan"])["blocks"]
    assert [b["status"] for b in last if b["ref"] == "summary"] == ["summarised"]


def test_plan_context_calls_no_model_and_replay_reproduces_a_spec_call(project, tmp_path):
    before = len(project.calls.df())
    plan = project.plan_context("support", "How long does shipping abroad take?")
    assert len(project.calls.df()) == before and plan.blocks[-1].ref in ("handbook.md#1", "handbook.md#2")
    live = project.ask("How long does shipping abroad take?", model="local/extractive", spec="support", session="r")
    replay = Workbench.from_config(tmp_path / "workbench.toml", mode="replay")
    again = replay.ask("How long does shipping abroad take?", model="local/extractive", spec="support", session="r")
    assert again.text == live.text
    assert again.context.used == live.context.used
