"""Token counts with litellm's arithmetic, for models whose tokenizer is plain tiktoken, without importing litellm.

``import litellm`` costs seconds (2 s on a laptop, 6-7 s on a small 2-core machine): a kernel that only talks
to the offline models (``local/echo``, ``local/extractive``, ``local/scripted``, a plug-in ``local/...``)
should not pay it for a token count. litellm counts those with tiktoken's ``cl100k_base`` (its default
encoding) and ``gpt-4o`` with ``o200k_base``, in chunks of 1,024 characters, 3 tokens per message, 1 per
name, 3 to prime the reply, a tool call by its arguments; this module does the same sums with the same
encodings (the files litellm bundles), and hands every other model, and any message it does not read
the same way (a list of content parts, an unknown field), to ``litellm.token_counter`` itself.
``tests/serving/test_tokens.py`` holds the two to the same figures.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

_CHUNK = 1024  # litellm's TIKTOKEN_ENCODE_CHUNK_SIZE_CHARS (default): it encodes in pieces this long
_EXACT = 4_000_000  # its TOKEN_COUNTER_MAX_EXACT_CHARS: past this it extrapolates from samples (handed to it)
_OVERRIDES = ("TIKTOKEN_ENCODE_CHUNK_SIZE_CHARS", "TOKEN_COUNTER_MAX_EXACT_CHARS", "CUSTOM_TIKTOKEN_CACHE_DIR")
_PER_MESSAGE, _PER_NAME, _REPLY_PRIMER = 3, 1, 3
_PLAIN_KEYS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls"})


def encoding_name(model: str) -> str | None:
    """The tiktoken encoding litellm counts ``model`` with, when this module can count it too (else ``None``)."""
    if model.startswith("local/"):
        return "cl100k_base"  # an unknown name to litellm: its default encoding
    if model == "gpt-4o":
        return "o200k_base"
    return None


def _own(model: str) -> str | None:
    """The encoding to count ``model`` with here, or ``None`` to ask litellm (which a user may have tuned)."""
    if any(name in os.environ for name in _OVERRIDES):
        return None
    litellm = sys.modules.get("litellm")
    if litellm is not None and getattr(litellm, "disable_token_counter", False):
        return None
    return encoding_name(model) if _bundled() is not None else None


@cache
def _bundled() -> Path | None:
    """The folder of tiktoken files litellm ships, found without importing it (``None``: not where expected)."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


@cache
def encoding(name: str) -> Any:
    """The tiktoken encoding ``name``, from the files litellm ships (no download: litellm sets the same folder)."""
    bundled = _bundled()
    if bundled is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)  # what ``import litellm`` sets too
    import tiktoken

    return tiktoken.get_encoding(name)


def load(models: Iterable[str]) -> None:
    """Load the encodings that count ``models`` and the local models' usage (each ~0.5 s, once per process)."""
    for name in {*(encoding_name(m) for m in models), encoding_name("gpt-4o")} - {None}:
        encoding(name)


def _count(enc: Any, text: str) -> int:
    return sum(len(enc.encode(text[i : i + _CHUNK], disallowed_special=())) for i in range(0, len(text), _CHUNK))


def count_text(model: str, text: str) -> int:
    """``litellm.token_counter(model=model, text=text)``."""
    name = _own(model)
    if name is None or len(text) > _EXACT:
        return int(_litellm().token_counter(model=model, text=text))
    return _count(encoding(name), text)


def count_messages(model: str, messages: list[dict[str, Any]]) -> int:
    """``litellm.token_counter(model=model, messages=messages)``."""
    name = _own(model)
    if name is None or not all(_plain(m) for m in messages):
        return int(_litellm().token_counter(model=model, messages=messages))
    enc = encoding(name)
    total = _REPLY_PRIMER
    for message in messages:
        total += _PER_MESSAGE
        for key, value in message.items():
            if key == "tool_calls" and value is not None:
                total += sum(_count(enc, str(call["function"].get("arguments", ""))) for call in value)
            elif isinstance(value, str):
                total += _count(enc, value) + (_PER_NAME if key == "name" else 0)
    return total


def _plain(message: Any) -> bool:
    """A message litellm counts as this module does: text fields, and tool calls as dicts with a function."""
    if not isinstance(message, dict) or not message.keys() <= _PLAIN_KEYS:
        return False
    for key, value in message.items():
        if value is None:
            continue
        if key == "tool_calls":
            if not (
                isinstance(value, list)
                and all(isinstance(c, dict) and isinstance(c.get("function"), dict) for c in value)
            ):
                return False
        elif not isinstance(value, str) or len(value) > _EXACT:
            return False
    return True


def encode(model: str, text: str) -> list[int]:
    """``litellm.encode(model=model, text=text)`` for a model counted here (litellm encodes with its default)."""
    if _own(model) is None:
        return list(_litellm().encode(model=model, text=text))
    return encoding("cl100k_base").encode(text, disallowed_special=())


def decode(model: str, tokens: list[int]) -> str:
    """``litellm.decode(model=model, tokens=tokens)``, the inverse of :func:`encode`."""
    if _own(model) is None:
        return str(_litellm().decode(model=model, tokens=tokens))
    return str(encoding("cl100k_base").decode(tokens))


def _litellm() -> Any:
    from workbench.serving.router import litellm_module

    return litellm_module()
