"""Showing tokens live in a cell while a call streams.

nbval ignores ``update_display_data``, so the preview ends exactly as it began
(an empty ``text/plain``) and the final answer is displayed as its own output:
a notebook compares the same whether its answers streamed or were replayed.
"""

from __future__ import annotations

import time
from typing import Any

from IPython.display import display

EMPTY: dict[str, Any] = {"text/plain": ""}


def inert(markdown: str) -> str:
    """Markdown that fetches nothing when rendered: images shown as text, raw HTML escaped.

    The live preview is shown before the output guardrails have seen the whole answer, so an
    image whose URL carries the conversation (EchoLeak) must not load from it.
    """
    return markdown.replace("<", "&lt;").replace("![", "!\\[")


class StreamPreview:
    """A display handle that grows as text deltas arrive (at most ~20 updates/s)."""

    def __init__(self, interval_s: float = 0.05):
        self.text = ""
        self._interval = interval_s
        self._shown = 0.0
        self._handle = display(EMPTY, raw=True, display_id=True)

    def __call__(self, delta: str | None) -> None:
        """Add a delta; ``None`` discards what was streamed (the router failed over)."""
        self.text = "" if delta is None else self.text + delta
        now = time.monotonic()
        if delta is None or now - self._shown >= self._interval:
            self._shown = now
            self._handle.update({"text/plain": self.text, "text/markdown": inert(self.text) + " ▌"}, raw=True)

    def close(self) -> None:
        """Return the preview to its initial (empty) state."""
        self._handle.update(EMPTY, raw=True)
