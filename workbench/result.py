"""``Result``: what ``wb.ask`` returns, and how a notebook shows it.

``text/plain`` holds only what is stable for the same answer (the text and the
model), so nbval can compare it; the volatile fields (latency, ids) are in the
Markdown footer and the output metadata.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["markdown", "text", "json", "code"]
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)```", re.S)


@dataclass(slots=True)
class Result:
    """One answered call."""

    text: str
    model: str
    usage: dict[str, int]
    cost_usd: float | None
    latency_ms: float
    call_id: str
    trace_id: str
    cache_hit: bool = False
    route: str = ""
    session: str | None = None
    mode: str = "live"
    tool_calls: list[dict[str, Any]] | None = None
    attempts: list[Any] = field(default_factory=list)
    format: Format = "markdown"
    context: Any = field(default=None, repr=False)  # the ContextPlan, when a spec, memory or a history budget built it
    grounding: float | None = None  # share of the answer's sentences supported by the retrieved context
    data: Any = field(default=None, repr=False)  # with schema=: the parsed JSON (a model instance for pydantic)

    def __str__(self) -> str:
        return self.text

    def code(self) -> str:
        """The code in the answer: the first fenced block's contents, else the whole answer."""
        found = _FENCE.search(self.text)
        return (found.group(1) if found else self.text).strip("\n")

    def json(self) -> Any:
        """The answer parsed as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.text)

    def footer(self) -> str:
        """Model, tokens, cost, latency and call id in one line."""
        cost = "cost unknown" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        via = f" via {self.route}" if self.route and self.route != self.model else ""
        return (
            f"{self.model}{via} · {self.usage.get('prompt_tokens', 0)} → "
            f"{self.usage.get('completion_tokens', 0)} tokens · {cost} · "
            f"{self.latency_ms:.0f} ms · call {self.call_id}"
        )

    def _tool_text(self) -> str:
        return "\n".join(
            f"tool call: {c['function']['name']}({c['function']['arguments']})" for c in self.tool_calls or []
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        body = "\n".join(p for p in (self.text, self._tool_text()) if p)
        plain = f"{body}\n— {self.model}"
        meta = {
            "workbench": {"call_id": self.call_id, "trace_id": self.trace_id, "route": self.route, "mode": self.mode}
        }
        footer = f"<sub>{html.escape(self.footer())}</sub>"
        data: dict[str, Any] = {"text/plain": plain}
        if self.format == "json":
            data["application/json"] = self.json()
        elif self.format == "code":
            data["text/markdown"] = f"```python\n{self.code()}\n```\n\n{footer}"
        elif self.format == "text":
            data["text/html"] = f"<pre>{html.escape(body)}</pre>\n{footer}"
        else:
            data["text/markdown"] = f"{markdown_text(body)}\n\n{footer}"
        return data, {key: meta for key in data if key != "text/plain"}


_CODE = re.compile(r"(```[\s\S]*?(?:```|\Z)|~~~[\s\S]*?(?:~~~|\Z)|`[^`\n]*`)")  # fenced blocks, inline spans


def markdown_text(text: str) -> str:
    """``text`` as Markdown whose raw HTML shows as text, not as markup.

    JupyterLab renders the HTML inside a trusted output's Markdown as is (an output made in this
    session is trusted), so an answer holding ``<img src=x onerror=...>`` or ``<script>`` would run
    in the notebook. Code, fenced or inline, is left alone: Markdown shows it literally already.
    """
    if "<" not in text:
        return text
    parts = _CODE.split(text)
    return "".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))
