"""The offline models' answers: what ``local/echo``, ``local/extractive``, ``local/scripted`` and a plug-in
``local/...`` model say, cut at ``max_tokens``, with their token usage — in plain Python, no litellm.

Two callers: litellm's custom provider ``local`` (:mod:`workbench.serving.local`, so ``litellm.completion(
model="local/echo")`` works in any code), and the router, which answers a local deployment by calling
:func:`respond` directly: ``import litellm`` (seconds) is then never paid by a kernel that only uses local
models. Both give the same answer, usage and finish reason; ``tests/serving/test_offline.py`` records the
same calls both ways and compares them.
"""

from __future__ import annotations

import re
from typing import Any

from workbench.config import Scripted
from workbench.plugins import REGISTRY
from workbench.serving import extractive, scripted, tokens
from workbench.serving.scripted import ScriptedTurn
from workbench.serving.types import LOCAL_MODELS

PROVIDER = "local"
USAGE_MODEL = "gpt-4o"  # the tokenizer local models' usage is counted with (o200k_base)
_PIECE = re.compile(r"\s*\S+\s*")


def knows(model: str) -> bool:
    """Whether ``model`` is a local model that answers (built in, or a registered plug-in)."""
    return model in LOCAL_MODELS or (model.startswith(f"{PROVIDER}/") and REGISTRY.get("model", model) is not None)


def _echoed(messages: list[dict[str, Any]]) -> str:
    """The last user message as it came: its text, and each image part described (size, format, hash)."""
    from workbench.serving.images import describe

    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            return extractive._text_of(content)
        return "".join(
            describe(part["image_url"].get("url", "")) if part.get("type") == "image_url" else part.get("text", "")
            for part in content
            if isinstance(part, dict)
        )
    return ""


def respond(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> ScriptedTurn | None:
    """What the local model ``model`` answers to ``messages``, cut at ``max_tokens`` like a real model
    (``None``: no such local model).
    """
    turn = _respond(model, messages, params)
    limit = params.get("max_tokens")
    if turn is not None and limit and turn.text and not turn.tool:
        encoded = tokens.encode(USAGE_MODEL, turn.text)
        if len(encoded) > limit:
            return ScriptedTurn(tokens.decode(USAGE_MODEL, list(encoded[:limit])), truncated=True)
    return turn


def _respond(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> ScriptedTurn | None:
    name = model.removeprefix(f"{PROVIDER}/")
    if name == "echo":
        return ScriptedTurn(_echoed(messages))
    if name == "extractive":
        return ScriptedTurn(extractive.answer(messages))
    if name == "scripted":
        return scripted.respond(messages, params.get("local_scripted") or Scripted())
    plugin = REGISTRY.get("model", f"{PROVIDER}/{name}")
    if plugin is not None:  # a plug-in model: fn(messages, params) -> text
        return ScriptedTurn(str(plugin(messages, params)))
    return None


def usage(messages: list[dict[str, Any]], turn: ScriptedTurn) -> dict[str, int]:
    """Real token usage of a turn: the messages and the reply (text, else the tool call's arguments)."""
    prompt = tokens.count_messages(USAGE_MODEL, messages)
    reply = turn.text or (turn.tool_call()["function"]["arguments"] if turn.tool else "")
    completion = tokens.count_text(USAGE_MODEL, reply) if reply else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def pieces(text: str) -> list[str]:
    """A streamed answer's pieces: word by word, each with the spaces around it (together, ``text``)."""
    return _PIECE.findall(text) or [""]
