"""The token budgeter: fit a spec's sources into its budget, and say what was cut and why.

The system prompt, the pinned text and the user's input always go in (if they alone
are over the budget the call is refused). Then sources get room in priority order
(higher first; ties in the order listed), each up to its own ``max_tokens`` and
what is left of the total. Items of a source are taken best first (retrieval rank;
history newest first). An item that does not fit is handled by its source's
``overflow``: ``drop`` it, ``truncate`` it to the room left (if at least
``MIN_TRUNCATE`` tokens), or ``summarise`` everything that did not fit into one block
made by the model (a quarter of the source's room, at least ``MIN_TRUNCATE`` tokens, is
kept for it; at call time only — a render shows what would be summarised). Tokens are
counted with litellm's counter for the target model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.context.spec import ContextSpec, SourceSpec
from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

MIN_TRUNCATE = 16
_HEADING = re.compile(r"^#{1,6}\s*(.+?)\s*\n+")
Counter = Callable[[str], int]
Summariser = Callable[[list[str], int], str]


class ContextOverflow(WorkbenchError):
    """The fixed part of a context (system, pinned, input) is over the spec's budget."""


@dataclass
class Item:
    """A candidate for the context: retrieved chunk, memory, history turn or tool result."""

    ref: str
    text: str
    messages: list[dict[str, Any]] | None = None  # history: the turn's messages


@dataclass
class Block:
    """One piece of the plan."""

    source: str
    ref: str
    tokens: int
    status: str  # included | truncated | summarised | dropped
    reason: str = ""
    text: str = field(default="", repr=False)


@dataclass
class ContextPlan:
    """What went into a call, what was cut and why, and the final messages."""

    spec: str | None
    version: str | None
    budget: int
    blocks: list[Block]
    messages: list[dict[str, Any]]

    @property
    def used(self) -> int:
        """Tokens the included blocks take."""
        return sum(b.tokens for b in self.blocks if b.status != "dropped")

    def df(self) -> pd.DataFrame:
        """The blocks as a table (text shortened)."""
        import pandas as pd

        rows = [{**asdict(b), "text": b.text if len(b.text) < 80 else b.text[:77] + "..."} for b in self.blocks]
        return pd.DataFrame(rows, columns=["source", "ref", "tokens", "status", "reason", "text"])

    def to_json(self) -> str:
        """The stored form (blocks without their full text: the messages are stored with the call)."""
        blocks = [{k: v for k, v in asdict(b).items() if k != "text"} for b in self.blocks]
        return json.dumps(
            {"spec": self.spec, "version": self.version, "budget": self.budget, "used": self.used, "blocks": blocks}
        )

    def __str__(self) -> str:
        head = f"context {self.spec or '(inline)'} v{self.version or '-'}: {self.used}/{self.budget} tokens"
        lines = [head] + [
            f"  {b.status:<10} {b.tokens:>5}  {b.source:<22} {b.ref:<18} {b.reason}".rstrip() for b in self.blocks
        ]
        return "\n".join(lines)


def fit(
    spec: ContextSpec,
    system: str,
    prompt: str,
    candidates: dict[int, list[Item]],
    count: Counter,
    summarise: Summariser | None = None,
    fixed: Sequence[Item] = (),
) -> ContextPlan:
    """Plan the context of one call: ``candidates`` maps a source's index in ``spec.sources`` to its items.

    ``fixed`` items (context passed to the call, when the spec has no tools source) always go in.
    """
    blocks: list[Block] = []
    for label, text in (("system", system), ("pinned", spec.pinned)):
        if text:
            blocks.append(Block(label, "", count(text), "included", text=text))
    blocks.extend(Block("context", item.ref, count(item.text), "included", text=item.text) for item in fixed)
    blocks.append(Block("input", "", count(prompt), "included", text=prompt))
    used = sum(b.tokens for b in blocks)
    if used > spec.budget_tokens:
        raise ContextOverflow(
            f"context spec {spec.name!r}: the system prompt, pinned text and input take {used} "
            f"tokens, over budget_tokens {spec.budget_tokens}; raise it or shorten them"
        )
    left = spec.budget_tokens - used
    chosen: dict[int, list[tuple[Item, Block]]] = {}
    order = sorted(range(len(spec.sources)), key=lambda i: -spec.sources[i].priority)
    for index in order:
        source = spec.sources[index]
        placed, left = _fill(source, candidates.get(index, []), left, count, summarise)
        chosen[index] = placed
    for index in range(len(spec.sources)):  # the plan lists sources in the spec's order
        blocks.extend(block for _, block in chosen.get(index, []))
    return ContextPlan(
        spec.name, spec.version, spec.budget_tokens, blocks, _messages(spec, system, prompt, chosen, fixed)
    )


def _fill(
    source: SourceSpec, items: Sequence[Item], left: int, count: Counter, summarise: Summariser | None
) -> tuple[list[tuple[Item, Block]], int]:
    cap = min(source.max_tokens or left, left)
    reserve = 0  # room kept for the summary when a summarising source will not fit whole
    if source.overflow == "summarise" and sum(count(i.text) for i in items) > cap:
        reserve = min(cap, max(MIN_TRUNCATE, cap // 4))
        cap, left = cap - reserve, left - reserve
    placed: list[tuple[Item, Block]] = []
    overflow: list[Item] = []
    for item in items:
        tokens = count(item.text)
        why = (
            f"over the source's max_tokens ({cap} left of {source.max_tokens})"
            if source.max_tokens and cap < left
            else f"over the total budget ({cap} left)"
        )
        if tokens <= cap:
            placed.append((item, Block(source.label, item.ref, tokens, "included", text=item.text)))
            cap, left = cap - tokens, left - tokens
        elif source.overflow == "truncate" and cap >= MIN_TRUNCATE and source.kind != "history":
            text = _truncate(item.text, cap, count)
            used = count(text)
            placed.append(
                (
                    Item(item.ref, text),
                    Block(source.label, item.ref, used, "truncated", f"{why}: cut from {tokens} tokens", text),
                )
            )
            cap, left = cap - used, left - used
        elif source.overflow == "summarise":
            overflow.append(item)
            placed.append(
                (item, Block(source.label, item.ref, tokens, "dropped", f"{why}: summarised below", item.text))
            )
        else:
            reason = (
                why
                if source.overflow == "drop"
                else (
                    f"{why}; history turns are kept whole"
                    if source.kind == "history"
                    else f"{why}; under {MIN_TRUNCATE} tokens left to truncate into"
                )
            )
            placed.append((item, Block(source.label, item.ref, tokens, "dropped", reason, item.text)))
    cap, left = cap + reserve, left + reserve
    if overflow:
        texts = [i.text for i in reversed(overflow)] if source.kind == "history" else [i.text for i in overflow]
        if summarise is None or cap < MIN_TRUNCATE:
            why = "not run in a render" if summarise is None else f"only {cap} tokens left"
            placed.append(
                (
                    Item("summary", ""),
                    Block(source.label, "summary", 0, "dropped", f"summary of {len(texts)} items: {why}"),
                )
            )
        else:
            summary = _truncate(summarise(texts, cap), cap, count)
            used = count(summary)
            block = Block(source.label, "summary", used, "summarised", f"{len(texts)} items that did not fit", summary)
            placed.append((Item("summary", summary), block))
            left -= used
    return placed, left


def _truncate(text: str, tokens: int, count: Counter) -> str:
    words = text.split()
    keep = max(1, int(len(words) * tokens / max(1, count(text))))
    while keep > 1 and count(" ".join(words[:keep]) + " ...") > tokens:
        keep = max(1, int(keep * 0.9) - 1)
    return " ".join(words[:keep]) + (" ..." if keep < len(words) else "")


def _messages(
    spec: ContextSpec, system: str, prompt: str, chosen: dict[int, list[tuple[Item, Block]]], fixed: Sequence[Item]
) -> list[dict[str, Any]]:
    """System (rendered prompt, pinned, documents and tool results as [id] lines, memories), history, input."""
    parts = [p for p in (system, spec.pinned.strip()) if p]
    context = [_cited(item) if item.ref != "context" else item.text for item in fixed]
    memories: list[str] = []
    history: list[Item] = []
    summaries: list[str] = []
    for index, placed in sorted(chosen.items()):
        kind = spec.sources[index].kind
        for item, block in placed:
            if block.status == "dropped":
                continue
            if block.ref == "summary":
                summaries.append(f"Summary of earlier {kind}: {item.text}")
            elif kind in ("documents", "tools"):
                context.append(_cited(item))
            elif kind == "memory":
                memories.append(f"- {item.text}")
            elif kind == "history":
                history.append(item)
    if context:
        parts.append("Context:\n" + "\n".join(context))
    if memories:
        parts.append("What you remember:\n" + "\n".join(memories))
    parts.extend(summaries)
    messages: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(parts)}] if parts else []
    for item in sorted(history, key=lambda i: int(i.ref.removeprefix("turn ")) if i.ref.startswith("turn ") else 0):
        messages.extend(item.messages or [])
    messages.append({"role": "user", "content": prompt})
    return messages


def _cited(item: Item) -> str:
    """``[id] text`` on one line; a leading markdown heading becomes ``Heading:``."""
    text = _HEADING.sub(r"\1: ", item.text.strip(), count=1)
    return f"[{item.ref}] {' '.join(text.split())}"
