"""Long-term memory: scoped, ranked, deduplicated, superseded with history, forgotten, compacted."""

import pytest

from workbench.errors import WorkbenchError
from workbench.memory import visible_scopes


def test_near_duplicates_update_and_same_subject_supersedes_with_history(wb):
    first = wb.memory.add("Alice prefers tea in the morning", "user:alice", "preference")
    again = wb.memory.add("alice prefers tea in the morning.", "user:alice", "preference", importance=0.9)
    assert (first.action, again.action, again.id, again.importance) == ("added", "updated", first.id, 0.9)
    newer = wb.memory.add("Alice prefers coffee in the morning", "user:alice", "preference")
    assert newer.action == "superseded"
    assert newer.supersedes == first.id
    history = wb.memory.history(newer.id)
    assert history[["text", "status"]].values.tolist() == [
        ["Alice prefers tea in the morning", "superseded"],
        ["Alice prefers coffee in the morning", "active"],
    ]
    assert wb.memory.history(first.id)["id"].tolist() == history["id"].tolist()
    assert wb.memory.df("user:alice")["text"].tolist() == ["Alice prefers coffee in the morning"]
    assert len(wb.memory.df(all_versions=True)) == 2
    other = wb.memory.add("Alice works in the Berlin office", "user:alice", "fact")
    assert other.action == "added"  # different kind and subject: a new item


def test_scopes_are_separate_and_agents_see_their_own_plus_shared(wb):
    wb.memory.add("The triage queue is checked hourly", "agent:triage")
    wb.memory.add("The triage rota is on the wiki", "shared")
    wb.memory.add("Billing triage happens on Mondays", "agent:billing")
    assert visible_scopes("agent:triage") == ["agent:triage", "shared"]
    found = wb.memory.search("when is triage", visible_scopes("agent:triage"))
    assert {m.scope for m in found} == {"agent:triage", "shared"}
    with pytest.raises(WorkbenchError, match="memory scope 'alice' is not one of"):
        wb.memory.search("x", "alice")
    assert wb.memory.search("triage", []) == []


def test_ranking_uses_match_importance_and_recency(wb):
    low = wb.memory.add("The deploy window is Tuesday afternoon", "shared", importance=0.1)
    high = wb.memory.add("Never deploy on Friday evening", "shared", importance=1.0)
    wb.memory.add("Lunch is at noon", "shared", importance=0.5)
    ranked = wb.memory.search("when can we deploy", "shared", k=3)
    assert [m.id for m in ranked[:2]] == [high.id, low.id]
    assert ranked[0].score > ranked[1].score
    assert ranked[2].text == "Lunch is at noon"  # no shared word: still a candidate, ranked last
    assert wb.memory.df().set_index("id").loc[high.id, "access_count"] == 1  # retrieval is recorded


def test_update_forget_and_compact(wb):
    item = wb.memory.add("Project Kestrel ships in May", "shared")
    newer = wb.memory.update(item.id, "Project Kestrel ships in June")
    assert newer.supersedes == item.id
    assert wb.memory.history(item.id)["status"].tolist() == ["superseded", "active"]
    with pytest.raises(WorkbenchError, match="was superseded; update its latest version"):
        wb.memory.update(item.id, "again")
    assert wb.memory.update(newer.id, importance=0.9).importance == 0.9
    assert wb.memory.forget(newer.id) == 2
    assert wb.memory.df(all_versions=True).empty
    wb.memory.add("Standup moved to 10:15 today", "shared", "episode", ttl_days=-1)  # already expired
    keep = wb.memory.add("Standups are at 10:00", "shared", "fact")
    assert [m.id for m in wb.memory.search("standup", "shared")] == [keep.id]  # expired items are not found
    assert wb.memory.compact() == 1
    assert wb.memory.df()["id"].tolist() == [keep.id]


def test_episodes_expire_by_default_and_bad_input_is_refused(wb):
    episode = wb.memory.add("Called the customer about order 7", "user:bob", "episode")
    assert episode.expires_at is not None
    assert wb.memory.add("Bob is on the team plan", "user:bob").expires_at is None
    with pytest.raises(WorkbenchError, match="memory kind 'rumour' is not one of fact, preference, episode"):
        wb.memory.add("x", "shared", "rumour")
    with pytest.raises(WorkbenchError, match="importance must be between 0 and 1"):
        wb.memory.add("x", "shared", importance=3)
    with pytest.raises(WorkbenchError, match="the memory text is empty"):
        wb.memory.add("  ", "shared")


def test_memory_survives_reopening_the_store(tmp_path):
    from workbench.runtime import Workbench

    first = Workbench.from_config(store=str(tmp_path / "m.db"))
    first.memory.add("Dana's team owns the billing service", "shared")
    first.close()
    again = Workbench.from_config(store=str(tmp_path / "m.db"))
    assert again.memory.search("who owns billing", "shared")[0].text == "Dana's team owns the billing service"


def test_a_whole_scope_can_be_forgotten(wb):
    wb.memory.add("Alice owns the Q3 report", "user:alice")
    wb.memory.add("Alice prefers bullet points", "user:alice", "preference")
    wb.memory.add("The board meets on Mondays", "shared:board")
    assert wb.memory.forget(scope="user:alice") == 2
    assert wb.memory.df()["scope"].tolist() == ["shared:board"]
    with pytest.raises(WorkbenchError, match="not both"):
        wb.memory.forget()
    with pytest.raises(WorkbenchError):
        wb.memory.forget(scope="nobody")
