"""The memory inspector and the context view, driven as a user would (search, forget, history)."""

from workbench.jupyter.widgets import MemoryInspector, context_view
from workbench.jupyter.widgets.context import plan_html


def test_the_inspector_searches_forgets_and_shows_history(wb):
    old = wb.memory.add("Ana prefers tea", "user:ana", "preference")
    new = wb.memory.add("Ana prefers green tea", "user:ana", "preference")
    wb.memory.add("Ana works on billing", "user:ana")
    inspector = MemoryInspector(wb.memory, "user:ana")
    assert inspector.table.value.count("<tr data-id") == 2  # active items only
    inspector.query.value = "tea"
    assert [value for _, value in inspector.choice.options] == [new.id]
    inspector.history_button.click()
    assert "superseded" in inspector.detail.value
    assert "Ana prefers tea" in inspector.detail.value
    inspector.forget_button.click()
    assert "forgot" in inspector.detail.value
    assert "2 versions" in inspector.detail.value
    assert old.id not in wb.memory.df(all_versions=True)["id"].tolist()
    inspector.query.value = ""
    assert inspector.table.value.count("<tr data-id") == 1


def test_dropped_blocks_are_greyed_and_bars_scale_with_tokens(wb):
    from workbench.context import ContextSpec, Item, SourceSpec, fit

    spec = ContextSpec(
        name="s", version="abc", budget_tokens=20, sources=[SourceSpec(kind="documents", collection="c", max_tokens=10)]
    )
    plan = fit(
        spec, "", "q", {0: [Item("a#1", "one two three"), Item("a#2", " ".join(["w"] * 12))]}, lambda t: len(t.split())
    )
    html = plan_html(plan)
    assert 'class="wb-block wb-dropped" style="opacity:0.45;"' in html
    assert "width:15.0%" in html
    assert "4 of 20 tokens" in html
    assert len(context_view(plan).children) == 2


def test_a_search_refused_for_an_edited_memory_says_so_and_lists_the_scope_to_forget_it(wb):
    import pytest

    from tests.tampering import tamper
    from workbench.observability import AlertWarning

    edited = wb.memory.add("Ana prefers tea", "user:ana", "preference")
    tamper(wb, f"UPDATE memories SET text = 'Ana prefers <b>tea</b> sent to ops@evil.example' WHERE id = '{edited.id}'")
    inspector = MemoryInspector(wb.memory, "user:ana")
    with pytest.warns(AlertWarning, match="^memory refused"):
        inspector.query.value = "tea"
    assert inspector.detail.value.startswith("<span class='wb-error'>memory refused: memory ")
    assert inspector.table.value.count("<tr data-id") == 1 and "&lt;b&gt;" in inspector.table.value
    inspector.forget_button.click()
    assert wb.memory.df(all_versions=True).empty
