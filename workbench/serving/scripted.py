"""``local/scripted``: follow rules (regex -> reply text, or -> a tool call with JSON args)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from workbench.config import Scripted


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    """What the scripted model says: text, or one tool call."""

    text: str
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    truncated: bool = False  # cut at max_tokens
    more: tuple[tuple[str, dict[str, Any]], ...] = ()  # further tool calls of the same turn (parallel calls)

    def tool_call(self) -> dict[str, Any]:
        """The (first) tool call in OpenAI's shape, with an id derived from its content."""
        return self.tool_calls()[0]

    def tool_calls(self) -> list[dict[str, Any]]:
        """Every tool call of the turn in OpenAI's shape, ids derived from their content."""
        out = []
        for i, (tool, arguments) in enumerate(((self.tool, self.arguments), *self.more)):
            args = json.dumps(arguments or {}, sort_keys=True)
            key = f"{tool}:{args}" if i == 0 else f"{i}:{tool}:{args}"  # the first keeps the id it always had
            digest = hashlib.sha256(key.encode()).hexdigest()[:12]
            out.append({"id": f"call_{digest}", "type": "function", "function": {"name": tool, "arguments": args}})
        return out


def _expand(match: re.Match[str], value: Any) -> Any:
    if isinstance(value, str):
        return match.expand(value)
    if isinstance(value, dict):
        return {k: _expand(match, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(match, v) for v in value]
    return value


def respond(messages: list[dict[str, Any]], script: Scripted) -> ScriptedTurn:
    """Apply the first rule whose pattern matches the last message of the rule's role.

    After a step of tool calls, a ``tool`` rule reads every result of that step, one per line in
    the order they were called, so a reply can use all of them ("compare the team and business plans").
    """
    last = messages[-1] if messages else {"role": "user", "content": ""}
    role = "tool" if last.get("role") == "tool" else "user"
    trailing = [last]
    if role == "tool":
        trailing = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            trailing.insert(0, message)
    texts = [m.get("content") or "" for m in trailing]
    content = "\n".join(t if isinstance(t, str) else json.dumps(t) for t in texts)
    for rule in script.rules:
        if rule.role != role:
            continue
        match = re.search(rule.pattern, content)
        if match is None:
            continue
        if rule.tool is not None:
            return ScriptedTurn("", rule.tool, _expand(match, rule.arguments))
        if rule.calls:
            first, *rest = [(c["tool"], _expand(match, c.get("arguments", {}))) for c in rule.calls]
            return ScriptedTurn("", first[0], first[1], more=tuple(rest))
        return ScriptedTurn(match.expand(rule.reply or ""))
    return ScriptedTurn(script.default)
