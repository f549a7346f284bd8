"""Thumbs up / down under an answer (``%%llm --rate``): the click is stored with the call."""

from __future__ import annotations

from html import escape
from typing import Any


class RatingBar:
    """Two buttons and a note for one call; ``.widget`` is what the cell shows."""

    def __init__(self, wb: Any, call_id: str, by: str | None = None):
        import ipywidgets as widgets

        self.wb, self.call_id, self.by = wb, call_id, by
        self.up = widgets.Button(description="Good", icon="thumbs-up", layout=widgets.Layout(width="90px"))
        self.down = widgets.Button(description="Bad", icon="thumbs-down", layout=widgets.Layout(width="90px"))
        self.note = widgets.Text(placeholder="what was wrong or right (optional)", layout=widgets.Layout(width="50%"))
        self.status = widgets.HTML()
        self.up.on_click(lambda _: self.rate("up"))
        self.down.on_click(lambda _: self.rate("down"))
        self.widget = widgets.HBox([self.up, self.down, self.note, self.status])
        self.widget.add_class("wb-rating")

    def rate(self, rating: str) -> None:
        """Store the rating (and the note) with the call; the buttons stay, a second click adds a second rating."""
        from workbench.errors import WorkbenchError

        try:
            value = self.wb.feedback.rate(self.call_id, rating, note=self.note.value, by=self.by)
        except WorkbenchError as exc:
            self.status.value = f"<span class='wb-error'>{escape(str(exc))}</span>"
            return
        self.status.value = f"<span class='wb-decided'>rated {'good' if value > 0 else 'bad'}, thank you</span>"


def rating_bar(wb: Any, call_id: str, by: str | None = None) -> Any:
    """The widget ``%%llm --rate`` shows under an answer."""
    return RatingBar(wb, call_id, by).widget
