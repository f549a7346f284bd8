"""The ``context.compose`` stage: system prompt + context + session history + the prompt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ContextArg = str | Mapping[str, str] | Sequence[str] | None


def format_context(context: ContextArg) -> str:
    """Context as text; documents become ``[id] text`` lines so answers can cite them."""
    if context is None:
        return ""
    if isinstance(context, str):
        return context
    if isinstance(context, Mapping):
        return "\n".join(f"[{key}] {' '.join(str(text).split())}" for key, text in context.items())
    return "\n".join(f"[{i}] {' '.join(str(text).split())}" for i, text in enumerate(context, 1))


class Composer:
    """Builds the final messages of a call."""

    def compose(self, prompt: str, system: str | None = None, context: ContextArg = None,
                history: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:  # fmt: skip
        """System (with any context under it), then the history, then the user prompt."""
        parts = [system] if system else []
        text = format_context(context)
        if text:
            parts.append(f"Context:\n{text}")
        messages: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
        messages.extend(history)
        messages.append({"role": "user", "content": prompt})
        return messages
