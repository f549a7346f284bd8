"""Tool boundaries: allowlists, argument checks, the destructive cap, asking a human, the circuit breaker."""

import os

import pytest

from workbench.guardrails import SessionLocked, ToolDenied, sql_problems
from workbench.guardrails.boundaries import BoundaryContext, path_allowed, url_allowed
from workbench.runtime import Workbench


def test_read_only_sql_sees_through_comments_strings_and_ctes():
    assert sql_problems("SELECT name FROM t WHERE note = 'a; DROP TABLE t' -- ; DELETE FROM t") == []
    assert sql_problems("select replace(name, 'a', 'b'), updated_at from t") == []
    assert sql_problems("SELECT 1; DROP TABLE users") == ["multiple_statements", "writes:drop"]
    assert sql_problems("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone") == ["writes:delete"]
    assert sql_problems("SELECT * INTO backup FROM t") == ["select_into"]
    assert sql_problems("PRAGMA writable_schema = 1") == ["not_a_query:pragma"]
    assert sql_problems("REPLACE INTO t VALUES (1)") == ["not_a_query:replace"]
    assert sql_problems("  ") == ["empty_sql"]


def test_paths_are_resolved_through_symlinks_before_the_allowlist(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.csv").write_text("a\n")
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "data" / "link")
    ctx = BoundaryContext(["data"], [], tmp_path)
    assert path_allowed("data/ok.csv", ctx) is None
    assert path_allowed("data/link/key.pem", ctx) == "the path resolves outside the allowed paths"
    assert path_allowed("data/../secret/x", ctx) == "the path resolves outside the allowed paths"
    assert path_allowed(str(tmp_path / "data" / "new.csv"), ctx) is None


def test_urls_match_scheme_host_and_path_separately():
    ctx = BoundaryContext([], ["https://*.example.com/*", "api.open.org/v1/*"], os.getcwd())
    assert url_allowed("https://docs.example.com/a", ctx) is None
    assert url_allowed("http://api.open.org/v1/q?x=1", ctx) is None
    assert url_allowed("https://evil.com/x.example.com/", ctx) == "https://evil.com is not an allowed URL"
    assert url_allowed("https://docs.example.com.evil.com/", ctx).endswith("evil.com is not an allowed URL")
    assert url_allowed("https://me:pw@docs.example.com/", ctx) == "URLs with credentials are not allowed"
    assert url_allowed("file:///etc/passwd", ctx) == "only http(s) URLs are allowed, not file"


@pytest.fixture
def guarded(tmp_path):
    (tmp_path / "data").mkdir()
    wb = Workbench.from_config(
        store=str(tmp_path / "b.db"),
        root=str(tmp_path),
        guardrails={
            "tools": {
                "allow": ["db.*", "files.*", "web.get"],
                "agents": {"reader": ["db.query", "files.read"]},
                "arguments": [
                    {"tool": "db.query", "argument": "sql", "check": "read_only_sql"},
                    {"tool": "files.*", "argument": "path", "check": "path"},
                    {"tool": "web.get", "argument": "url", "check": "url"},
                ],
                "paths": ["data"],
                "urls": ["https://api.example.com/*"],
                "max_destructive": 2,
            },
            "breaker": {"violations": 3, "window_s": 600},
        },
    )
    yield wb
    wb.close()


def test_allowlists_and_argument_checks_stop_a_tool_before_it_runs(guarded):
    g = guarded.guard
    assert g.check_tool_call("db.query", {"sql": "SELECT 1"}, session="s") == {"sql": "SELECT 1"}
    with pytest.raises(ToolDenied, match=r"tool shell.run was not run: not in the allowlist \(boundaries guardrail\)"):
        g.check_tool_call("shell.run", {"cmd": "ls"}, session="s")
    with pytest.raises(ToolDenied, match=r"sql: not a read-only query \(multiple_statements, writes:drop\)"):
        g.check_tool_call("db.query", {"sql": "SELECT 1; DROP TABLE t"}, session="t")
    with pytest.raises(ToolDenied, match="not in the agent reader's allowlist"):
        g.check_tool_call("db.write", {"sql": "SELECT 1"}, agent="reader", session="t")
    with pytest.raises(ToolDenied, match="url: https://evil.example is not an allowed URL"):
        g.check_tool_call("web.get", {"url": "https://evil.example/x"}, session="u")
    events = g.df()
    assert set(events["scanner"]) == {"boundaries"}
    assert set(events["action"]) == {"block"}


def test_secrets_in_tool_arguments_are_blocked(guarded):
    with pytest.raises(ToolDenied, match="openai_key"):
        guarded.guard.check_tool_call("web.get", {"url": "https://api.example.com/?k=sk-proj-abcdefghijklmnopqrstuvwx"})


def test_the_destructive_cap_counts_per_session(guarded):
    g = guarded.guard
    for _ in range(2):
        g.check_tool_call("db.delete", {"id": 1}, risk="destructive", session="ops")
    with pytest.raises(ToolDenied, match=r"destructive cap reached \(2 of 2 this session\)"):
        g.check_tool_call("db.delete", {"id": 3}, risk="destructive", session="ops")
    g.check_tool_call("db.delete", {"id": 1}, risk="destructive", session="other")
    assert g.destructive_calls("ops") == 2
    assert g.destructive_calls("other") == 1


def test_ask_hands_the_decision_to_a_human_and_records_it(tmp_path):
    wb = Workbench.from_config(
        store=str(tmp_path / "a.db"), guardrails={"tool_call": {"boundaries": "ask"}, "tools": {"allow": ["db.query"]}}
    )
    asked = []
    wb.guard.approver = lambda request: asked.append(request) or request["tool"] == "db.vacuum"
    assert wb.guard.check_tool_call("db.vacuum", {}, session="s") == {}
    with pytest.raises(ToolDenied, match="a human rejected it"):
        wb.guard.check_tool_call("db.drop", {"table": "t"}, session="s")
    assert [r["tool"] for r in asked] == ["db.vacuum", "db.drop"]
    assert asked[1]["arguments"] == {"table": "t"}
    assert wb.guard.df()["detail"].tolist() == ["rejected", "approved"]
    wb.guard.approver = None
    with pytest.raises(ToolDenied, match="no one was asked"):
        wb.guard.check_tool_call("db.drop", {"table": "t"}, session="s2")


def test_repeated_violations_lock_the_session_until_a_human_resets_it(guarded):
    g = guarded.guard
    for _ in range(2):
        with pytest.raises(ToolDenied):
            g.check_tool_call("shell.run", {}, session="mallory")
    with pytest.raises(ToolDenied, match="session:mallory is locked by the guardrails after 3 violations"):
        g.check_tool_call("shell.run", {}, session="mallory")
    with pytest.raises(SessionLocked, match=r"wb.guard.reset\('session:mallory'\)"):
        g.check_tool_call("db.query", {"sql": "SELECT 1"}, session="mallory")  # even an allowed tool
    with pytest.raises(SessionLocked):
        guarded.ask("hello", model="local/echo", session="mallory")  # and model calls
    assert g.locks()[["key", "violations", "locked"]].values.tolist() == [["session:mallory", 3, True]]
    g.check_tool_call("db.query", {"sql": "SELECT 1"}, session="alice")  # other sessions are unaffected
    g.reset("mallory", by="ops@acme")
    assert guarded.ask("hello", model="local/echo", session="mallory").text == "hello"
    assert g.locks()["locked"].tolist() == [False]
    assert g.df().iloc[0]["detail"] == "reset by ops@acme"
    with pytest.raises(ToolDenied):  # the count starts again after the reset: one violation does not relock
        g.check_tool_call("shell.run", {}, session="mallory")
    g.check_tool_call("db.query", {"sql": "SELECT 1"}, session="mallory")


def test_a_reset_before_a_lock_clears_the_count_and_a_new_lock_starts_clean(guarded):
    g = guarded.guard
    for _ in range(2):
        with pytest.raises(ToolDenied):
            g.check_tool_call("shell.run", {}, session="rerun")
    g.reset("session:rerun", by="tour")  # not locked yet: the two violations stop counting all the same
    for _ in range(2):
        with pytest.raises(ToolDenied):
            g.check_tool_call("shell.run", {}, session="rerun")
    g.check_tool_call("db.query", {"sql": "SELECT 1"}, session="rerun")  # 2 since the reset: still open
    with pytest.raises(ToolDenied, match="locked by the guardrails after 3 violations"):
        g.check_tool_call("shell.run", {}, session="rerun")
    g.reset("session:rerun", by="ana")
    for _ in range(3):
        with pytest.raises(ToolDenied):
            g.check_tool_call("shell.run", {}, session="rerun")
    lock = g.locks().set_index("key").loc["session:rerun"]
    assert lock["locked"]
    assert lock["reset_at"] is None
    assert lock["reset_by"] is None  # this lock's reset is to come


def test_one_human_decision_callback_answers_guardrails_and_approvals(tmp_path):
    wb = Workbench.from_config(
        store=str(tmp_path / "h.db"), guardrails={"tool_call": {"boundaries": "ask"}, "tools": {"allow": ["db.query"]}}
    )
    seen = []
    wb.approvals.decider = lambda request: seen.append(request["kind"]) or request["arguments"].get("table") == "tmp"
    assert wb.guard.approver is wb.approvals.decider  # one callback, two names
    assert wb.guard.check_tool_call("db.drop", {"table": "tmp"}, session="s") == {"table": "tmp"}
    with pytest.raises(ToolDenied, match="a human rejected it"):
        wb.guard.check_tool_call("db.drop", {"table": "users"}, session="s")
    assert seen == ["guardrail", "guardrail"]
    wb.guard.approver = None
    assert wb.approvals.decider is None
