"""``%llm_memory``: search a scope's memories, see their age and importance, forget one, view its history."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from workbench.errors import WorkbenchError


def _age(stamp: str) -> str:
    seconds = (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return "just now"


class MemoryInspector:
    """The widget behind ``%llm_memory [SCOPE]`` (``.widget`` is what the cell shows)."""

    def __init__(self, memory: Any, scope: str | None = None):
        import ipywidgets as widgets

        self.memory, self.scope = memory, scope
        self.query = widgets.Text(placeholder="search memories", description="search", continuous_update=False)
        self.table = widgets.HTML()
        self.choice = widgets.Dropdown(description="item", options=[])
        self.forget_button = widgets.Button(description="forget", button_style="danger", icon="trash")
        self.history_button = widgets.Button(description="history", icon="clock")
        self.detail = widgets.HTML()
        self.query.observe(lambda change: self.refresh(), names="value")
        self.forget_button.on_click(lambda _: self.forget(self.choice.value))
        self.history_button.on_click(lambda _: self.show_history(self.choice.value))
        title = widgets.HTML(f"<b>memory</b> {escape(scope or 'all scopes')}")
        actions = widgets.HBox([self.choice, self.forget_button, self.history_button])
        self.widget = widgets.VBox([title, self.query, self.table, actions, self.detail])
        self.widget.add_class("wb-memory-inspector")
        self.refresh()

    def items(self) -> list[dict[str, Any]]:
        """What the table shows now: search results for the query, else the scope's memories."""
        text = self.query.value.strip()
        if text:
            scopes = [self.scope] if self.scope else sorted(set(self.memory.df()["scope"]))
            found = self.memory.search(text, scopes, k=20, touch=False, matching=True) if scopes else []
            return [
                {
                    "id": m.id,
                    "scope": m.scope,
                    "kind": m.kind,
                    "importance": m.importance,
                    "updated_at": m.updated_at,
                    "text": m.text,
                    "score": m.score,
                }
                for m in found
            ]
        return self.memory.df(self.scope).to_dict("records")

    def refresh(self) -> None:
        """Redraw the table and the item chooser (a search refused, e.g. for a memory edited in the file, is said
        in one line, and the scope is listed so the item can be found and forgotten).
        """
        try:
            rows = self.items()
        except WorkbenchError as exc:
            self.detail.value = f"<span class='wb-error'>{escape(str(exc))}</span>"
            rows = self.memory.df(self.scope).to_dict("records")
        body = "".join(
            f"<tr data-id='{r['id']}'><td>{escape(r['scope'])}</td><td>{r['kind']}</td>"
            f"<td>{r['importance']:.2f}</td><td>{_age(r['updated_at'])}</td><td>{escape(r['text'])}</td></tr>"
            for r in rows
        )
        head = "<tr><th>scope</th><th>kind</th><th>importance</th><th>age</th><th>text</th></tr>"
        self.table.value = f"<table class='wb-memories'>{head}{body}</table>" if rows else "<i>no memories</i>"
        self.choice.options = [(r["text"][:60], r["id"]) for r in rows]
        self.choice.value = rows[0]["id"] if rows else None

    def forget(self, memory_id: str | None) -> None:
        """Forget the chosen item (and its history), then redraw."""
        if memory_id:
            removed = self.memory.forget(memory_id)
            self.detail.value = f"forgot {memory_id} ({removed} version{'s' if removed != 1 else ''})"
            self.refresh()

    def show_history(self, memory_id: str | None) -> None:
        """Show every version of the chosen item."""
        if not memory_id:
            return
        history = self.memory.history(memory_id)
        rows = "".join(
            f"<tr><td>{r.status}</td><td>{r.updated_at[:19]}</td><td>{escape(r.text)}</td></tr>"
            for r in history.itertuples()
        )
        head = "<tr><th>status</th><th>updated</th><th>text</th></tr>"
        self.detail.value = f"<table class='wb-history'>{head}{rows}</table>"
