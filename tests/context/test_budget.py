"""The budgeter fits sources by priority into the budget and says what it cut and why."""

import pytest

from workbench.context import ContextSpec, Item, SourceSpec, fit
from workbench.context.budget import ContextOverflow


def words(text):
    return len(text.split())


def spec(*sources, budget=100, pinned=""):
    return ContextSpec(name="s", version="v1", budget_tokens=budget, pinned=pinned, sources=list(sources))


def docs(*sizes):
    return [Item(f"d#{i}", " ".join(["word"] * n)) for i, n in enumerate(sizes, 1)]


def test_sources_fill_by_priority_within_their_caps_and_the_total():
    s = spec(
        SourceSpec(kind="documents", collection="c", priority=1, max_tokens=30),
        SourceSpec(kind="tools", priority=5),
        budget=100,
    )
    plan = fit(s, "sys", "question here", {0: docs(20, 20), 1: docs(25, 10)}, words)
    rows = [(b.source, b.ref, b.status) for b in plan.blocks]
    assert rows == [
        ("system", "", "included"),
        ("input", "", "included"),
        ("documents:c", "d#1", "included"),
        ("documents:c", "d#2", "dropped"),
        ("tools", "d#1", "included"),
        ("tools", "d#2", "included"),
    ]
    assert plan.used == 1 + 2 + 25 + 10 + 20
    dropped = plan.blocks[3]
    assert dropped.reason == "over the source's max_tokens (10 left of 30)"


def test_truncate_cuts_to_the_room_left_and_drop_says_the_total_ran_out():
    s = spec(SourceSpec(kind="documents", collection="c", overflow="truncate"), budget=60)
    plan = fit(s, "", "q", {0: docs(30, 40, 30)}, words)
    [first, second, third] = [b for b in plan.blocks if b.source == "documents:c"]
    assert first.status == "included"
    assert second.status == "truncated"
    assert third.status == "dropped"
    assert 16 <= second.tokens <= 29
    assert second.text.endswith("...")
    assert "cut from 40 tokens" in second.reason
    assert third.reason.endswith("under 16 tokens left to truncate into")
    assert plan.used <= 60


def test_summarise_hands_what_did_not_fit_to_the_model_in_order():
    s = spec(SourceSpec(kind="history", overflow="summarise", max_tokens=45), budget=100)
    turns = [
        Item(f"turn {n}", f"turn {n} " + "x " * 23, messages=[{"role": "user", "content": f"t{n}"}]) for n in (3, 2, 1)
    ]  # newest first, as the runtime gives them
    seen = []

    def summarise(texts, cap):
        seen.append(texts)
        return "they talked about refunds"

    plan = fit(s, "", "q", {0: turns}, words, summarise)
    assert [b.status for b in plan.blocks if b.source == "history"] == ["included", "dropped", "dropped", "summarised"]
    assert [t.split()[1] for t in seen[0]] == ["1", "2"]  # oldest first for the summary
    system, *rest = plan.messages
    assert "Summary of earlier history: they talked about refunds" in system["content"]
    assert rest == [{"role": "user", "content": "t3"}, {"role": "user", "content": "q"}]


def test_a_render_lists_the_summary_it_would_make():
    s = spec(SourceSpec(kind="history", overflow="summarise", max_tokens=5), budget=100)
    plan = fit(s, "", "q", {0: [Item("turn 1", "a b c d e f g", messages=[])]}, words)
    assert plan.blocks[-1].status == "dropped"
    assert "not run in a render" in plan.blocks[-1].reason


def test_the_fixed_part_over_budget_is_refused():
    with pytest.raises(ContextOverflow, match="take 12 tokens, over budget_tokens 10"):
        fit(spec(budget=10, pinned="p " * 10), "", "a b", {}, words)


def test_messages_cite_documents_and_list_memories():
    s = spec(SourceSpec(kind="documents", collection="c"), SourceSpec(kind="memory"), pinned="Be brief.")
    plan = fit(s, "You are kind.", "q", {0: [Item("h.md#1", "Opens at 9.")], 1: [Item("m1", "Ana likes tea")]}, words)
    assert plan.messages[0]["content"] == (
        "You are kind.\n\nBe brief.\n\nContext:\n[h.md#1] Opens at 9.\n\nWhat you remember:\n- Ana likes tea"
    )
    assert '"status": "included"' in plan.to_json()
    assert "Opens at 9" not in plan.to_json()
