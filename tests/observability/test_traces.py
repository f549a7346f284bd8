"""Spans: every stage of a call, and an agent run's steps, tool calls, guard checks and approvals, in one trace."""

import pytest

from tests.orchestration.test_agent import RULES
from workbench.errors import WorkbenchError
from workbench.runtime import Workbench


def test_a_call_is_a_tree_of_stage_spans(wb):
    wb.ask("hello there", session="s", budget=1.0)
    view = wb.trace()
    names = view.df["name"].tolist()
    assert names[0] == "llm.call"
    assert view.df["depth"].iloc[0] == 0
    assert {
        "guardrails.check_input",
        "context.compose",
        "cost.reserve",
        "serving.complete",
        "serving.attempt",
        "guardrails.check_output",
        "memory.observe",
        "cost.settle",
    } <= set(names)
    attempt = view.df[view.df["name"] == "serving.attempt"].iloc[0]
    assert attempt["depth"] == 2
    assert attempt["attributes"]["deployment"] == "local/echo"
    assert (view.df["duration_ms"] >= 0).all()
    assert view.df["start_ms"].min() == 0
    assert wb.trace(wb.calls.last()["id"]).trace_id == view.trace_id


def test_span_attributes_are_stored_as_set_with_a_secret_redacted_where_it_is():
    from workbench.observability.spans import Trace

    key = "sk-proj-" + "A1b2C3d4" * 4
    trace = Trace()
    with trace.span("llm.call", route="fast"):
        with trace.span("tool", query="the token bucket"):
            pass
        with trace.span("tool", header=f"Bearer {key}"):
            pass
    rows = trace.for_store("c1")
    assert [r[3] for r in rows] == ["c1"] * 3
    assert rows[0][8] == '{"route": "fast"}' and rows[1][8] == '{"query": "the token bucket"}'
    assert key not in rows[2][8] and "[REDACTED:" in rows[2][8]
    bare = Trace()
    bare.begin("empty")
    bare.end()
    assert bare.for_store("c2")[0][8] is None


def test_an_agent_run_is_one_trace_with_tool_calls_guard_checks_and_approvals(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "a.db"), scripted={"rules": RULES}, default_route="local/scripted")

    @wb.tool(name="db.drop", risk="destructive")
    def drop(table: str) -> str:
        """Drop a table."""
        return f"dropped {table}"

    run = wb.agent("ops", tools=["db.*"]).run("clean up the staging table")
    wb.approvals.decide(run.waiting_on, "approve", by="ana")
    wb.resume(run.id)
    view = wb.trace(run.id)
    df = view.df
    assert df["name"].iloc[0] == "agent.run"
    assert df["attributes"].iloc[0]["status"] == "done"
    assert (df["name"] == "llm.call").sum() == 2
    assert set(df[df["name"] == "llm.call"]["depth"]) == {1}
    tools = df[df["name"] == "tool.call"]
    assert [a["outcome"] for a in tools["attributes"]] == ["pending", "ok"]
    children = df[df["parent_id"].isin(tools["span_id"])]["name"].tolist()
    assert {"guardrails.check_tool_call", "approvals.request", "tool.run db.drop"} <= set(children)
    assert wb.trace(wb.calls.last()["id"]).trace_id == view.trace_id  # a step's call opens its run's trace
    fig = view.figure()
    assert len(fig.data[0].y) == len(df)
    assert "agent.run" in fig.data[0].y[0]
    assert "tool: db.drop" in " ".join(fig.data[0].hovertext)


def test_workflow_steps_are_spans_under_the_run(wb):
    flow = wb.workflow("nightly")

    @flow.step()
    def extract() -> int:
        return 3

    @flow.step(depends_on=["extract"])
    def load(extract: int) -> int:
        return extract * 2

    run = flow.run()
    df = wb.trace(run.id).df
    assert df["name"].tolist()[0] == "workflow.run"
    assert {"workflow.step extract", "workflow.step load"} <= set(df["name"])
    assert set(df["depth"]) == {0, 1}


def test_unknown_refs_say_what_to_do(wb):
    with pytest.raises(WorkbenchError, match="no calls recorded yet"):
        wb.trace()
    wb.ask("x")
    with pytest.raises(WorkbenchError, match="no call, run or trace 'nope'"):
        wb.trace("nope")
