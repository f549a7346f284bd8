"""The ``context.compose`` stage: system prompt + context + session history + the prompt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ContextArg = str | Mapping[str, str] | Sequence[str] | None


def context_items(context: ContextArg) -> list[tuple[str, str]]:
    """``(id, text)`` pairs: a text is one item (id ``context``), a mapping keeps its ids, a list is numbered."""
    if context is None:
        return []
    if isinstance(context, str):
        return [("context", context)] if context.strip() else []
    if isinstance(context, Mapping):
        return [(str(key), str(text)) for key, text in context.items()]
    return [(str(i), str(text)) for i, text in enumerate(context, 1)]


def format_context(context: ContextArg) -> str:
    """Context as text; documents become ``[id] text`` lines so answers can cite them."""
    if isinstance(context, str):
        return context
    return "\n".join(f"[{ref}] {' '.join(text.split())}" for ref, text in context_items(context))


class Composer:
    """Builds the final messages of a call."""

    def compose(
        self, prompt: str, system: str | None = None, context: ContextArg = None, history: Sequence[dict[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        """System (with any context under it), then the history, then the user prompt."""
        parts = [system] if system else []
        text = format_context(context)
        if text:
            parts.append(f"Context:\n{text}")
        messages: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
        messages.extend(history)
        messages.append({"role": "user", "content": prompt})
        return messages
