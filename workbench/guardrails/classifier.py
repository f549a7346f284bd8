"""A learned second look at prompt injection: logistic regression over hashed words, in plain Python.

Phrase signals (:mod:`injection`) catch what they spell out; an attack in other words —
"the brief you were given is no longer valid", an instruction addressed to "any AI
reading this page", a link that smuggles the conversation out — slips past them. This
model scores a text by the words and word pairs in it (lower-cased, folded as the phrase
detector folds them, word stems for other inflections, characters and pairs of
characters for Chinese and Japanese), and a few shapes (a URL with a query string, a
markdown image, an HTML comment, a ``{placeholder}``). The weights kept are the few
thousand that matter, by name, so the model can be read.

It is trained on the labelled corpus's ``dev``, ``test`` and ``train`` splits (never on
``heldout``) by ``python tests/data/train_injection_model.py``, which writes
``injection_model.json`` with the decision threshold chosen on held-back folds of the
training data. A long text is scored a sentence window at a time (the best window counts),
so an attack hidden in a long page is not diluted by it.

Cost: about 100 µs per kB on the CPU, nothing to install, nothing downloaded.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

MODEL = Path(__file__).with_name("injection_model.json")
WINDOW = 320  # characters per scored window of a long text
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_SHAPES = {
    "url_query": re.compile(r"https?://\S+\?\S*="),
    "md_image": re.compile(r"!\[[^\]]*\]\("),
    "html_comment": re.compile(r"<!--"),
    "hidden_html": re.compile(r"display\s*:\s*none|\bhidden\b[^>]*>|white on white"),
    "placeholder": re.compile(r"\{[a-z_]{3,}\}"),
    "code_call": re.compile(r"\b[a-z_]+(?:\.[a-z_]+)?\([^)]{0,40}\)"),
    "shell_or_sql": re.compile(r"\b(?:drop|delete|truncate)\s+(?:table|database|from)\b|\brm\s+-rf\b"),
    "chat_marker": re.compile(r"<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|^\s*(?:system|assistant)\s*:", re.M),
}


def _tokens(text: str) -> list[tuple[int, str]]:
    """(position, word) for each word; Chinese, Japanese and Korean runs count one character per word."""
    if text.isascii():
        return [(m.start(), m.group()) for m in _WORD.finditer(text)]
    out: list[tuple[int, str]] = []
    for m in _WORD.finditer(text):
        token = m.group()
        if _CJK.search(token):
            out += [(m.start() + i, ch) for i, ch in enumerate(token)]
        else:
            out.append((m.start(), token))
    return out


def _wide(word: str) -> bool:
    """A Chinese, Japanese or Korean character (a word of its own)."""
    return len(word) == 1 and word >= "\u3040" and _CJK.match(word) is not None


def _window_features(tokens: list[tuple[int, str]], shapes: set[str]) -> set[str]:
    words = [w for _, w in tokens]
    out = set(words)
    out.update("~" + w[:5] for w in words if len(w) > 5)
    out.update(a + b if _wide(a) or _wide(b) else a + " " + b for a, b in zip(words, words[1:], strict=False))
    out.update("#" + name for name in shapes)
    return out


def features(text: str) -> set[str]:
    """The features of ``text`` (already normalised: lower case, folded): words, stems, word pairs, shapes."""
    return _window_features(_tokens(text), {name for name, rx in _SHAPES.items() if rx.search(text)})


def windows(text: str, size: int = WINDOW) -> list[tuple[int, int]]:
    """``(start, end)`` of overlapping windows of about ``size`` characters (one when the text is short)."""
    if len(text) <= size:
        return [(0, len(text))]
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + size // 2, end)
            end = space if space > 0 else end
        out.append((start, end))
        if end >= len(text):
            break
        start = max(start + 1, end - size // 3)  # a third of overlap: a sentence cut at a border is seen whole once
    return out


class Model:
    """The trained weights: ``probability(text)`` of a normalised text."""

    def __init__(self, weights: dict[str, float], bias: float, threshold: float):
        self.weights, self.bias, self.threshold = weights, bias, threshold

    def logit(self, text: str) -> float:
        """The score of one (short) text."""
        get = self.weights.get
        return self.bias + sum(get(f, 0.0) for f in features(text))

    def probability(self, text: str) -> float:
        """The best window's probability that it is an attack (words found once for all the windows)."""
        tokens = _tokens(text)
        shapes = [(name, [m.start() for m in rx.finditer(text)]) for name, rx in _SHAPES.items()]
        get = self.weights.get
        best, i = -math.inf, 0
        for start, end in windows(text):
            while i < len(tokens) and tokens[i][0] < start:
                i += 1
            j = i
            while j < len(tokens) and tokens[j][0] < end:
                j += 1
            seen = {name for name, at in shapes if any(start <= p < end for p in at)}
            best = max(best, self.bias + sum(get(f, 0.0) for f in _window_features(tokens[i:j], seen)))
        return 1 / (1 + math.exp(-best)) if best > -30 else 0.0


@lru_cache(maxsize=1)
def model() -> Model | None:
    """The shipped model, or ``None`` when it was never trained (the phrase signals still run)."""
    if not MODEL.exists():
        return None
    data = json.loads(MODEL.read_text())
    return Model(data["weights"], data["bias"], data["threshold"])
