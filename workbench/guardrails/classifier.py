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

Cost: about 150 µs for a kB on the CPU (a long text: 25 windows of 320 characters), nothing to install, nothing
downloaded.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from workbench.guardrails._accel import Literals

MODEL = Path(__file__).with_name("injection_model.json")
WINDOW = 320  # characters per scored window of a long text
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_SHAPES = {  # each a few (regex, the literals its every match holds): found where any matches
    "url_query": ((r"https?://\S+\?\S*=", ("http",)),),
    "md_image": ((r"!\[[^\]]*\]\(", ("![",)),),
    "html_comment": ((r"<!--", ("<!--",)),),
    "hidden_html": (
        (r"display\s*:\s*none", ("display",)),
        (r"hidden(?<!\whidden)\b[^>]*>", ("hidden",)),
        (r"white on white", ("white on white",)),
    ),
    "placeholder": ((r"\{[a-z_]{3,}\}", ("{",)),),
    "code_call": (),  # a name, a dotted one too, then a parenthesis closed within 40 characters: see _calls
    "shell_or_sql": (
        *((rf"{verb}(?<!\w{verb})\s+(?:table|database|from)\b", (verb,)) for verb in ("drop", "delete", "truncate")),
        (r"rm(?<!\wrm)\s+-rf\b", ("rm",)),
    ),
    "chat_marker": (
        (r"<\|[a-z_]+\|>", ("<|",)),
        (r"\[/?inst\]", ("inst]",)),
        (r"<</?sys>>", ("sys>>",)),
        (r"(?m:^\s*(?:system|assistant)\s*:)", ("system", "assistant")),
    ),
}
# Each regex (most start with a literal: the engine skips to it at C speed) after the shape it finds; the regex
# runs only on a text holding one of its literals (most texts hold none).
_RULES = [("#" + name, literals, re.compile(p)) for name, rules in _SHAPES.items() for p, literals in rules]
_LITERALS = sorted({literal for _, literals, _ in _RULES for literal in literals})
_SHAPE_LITERALS = Literals(_LITERALS, present_only=True)  # which of them a text holds, in one Hyperscan pass


def _rules_for(text: str) -> list[tuple[str, re.Pattern[str]]]:
    """``(name, regex)`` of each rule whose literals ``text`` may hold (in order): one Hyperscan pass where it is
    installed, else a substring search per literal (each about 0.4 us on a kB).
    """
    found = _SHAPE_LITERALS.present(text)
    if found is None:
        return [(name, rx) for name, literals, rx in _RULES if any(literal in text for literal in literals)]
    held = {_LITERALS[i] for i in found}
    return [(name, rx) for name, literals, rx in _RULES if not held.isdisjoint(literals)]


_NAME = frozenset("abcdefghijklmnopqrstuvwxyz_")


class _SpaceButWords(dict[int, int]):
    r"""For ``str.translate``: every character that is not a word character (``\w``: what ``str.isalnum`` says,
    and "_") as a space, the others kept; then the words of a text are what ``str.split()`` returns. Filled as
    characters are met (all of ASCII up front).
    """

    def __missing__(self, code: int) -> int:
        ch = chr(code)
        self[code] = code if ch.isalnum() or ch == "_" else 32
        return self[code]


_SPACE_BUT_WORDS = _SpaceButWords({c: c if chr(c).isalnum() or c == 95 else 32 for c in range(128)})
# The same for an ASCII text's bytes (a byte table is read at C speed; a str's dict is looked up per character)
ASCII_WORDS = bytes(c if c < 128 and (chr(c).isalnum() or c == 95) else 32 for c in range(256))


def words_spaced(text: str) -> str:
    """``text`` with every character but the word characters (``\\w``) a space: its words are what ``split()``
    returns, at the same places.
    """
    if text.isascii():
        return text.encode("ascii").translate(ASCII_WORDS).decode("ascii")
    return text.translate(_SPACE_BUT_WORDS)


def _spaced_words(text: str) -> str | None:
    """``text`` with every character but the word characters a space (the same length), when its words are what
    ``_tokens`` finds; ``None`` for a text holding Chinese, Japanese or Korean (a character is a word there).
    """
    if not text.isascii() and _CJK.search(text):
        return None
    return words_spaced(text)


_CALL_ARGS = re.compile(r"[^)]{0,40}\)")


def _calls(text: str, *, first: bool = False) -> list[int]:
    r"""Where ``\b[a-z_]+(?:\.[a-z_]+)?\([^)]{0,40}\)`` matches (its starts, as finditer finds them), looked for
    from each "(" back, so a long text is not tried at every position; only the first with ``first``.
    """
    starts: list[int] = []
    done, at = 0, text.find("(")
    while at >= 0:
        name = _name_start(text, at)
        if name < at and name >= done and _CALL_ARGS.match(text, at + 1):
            dotted = _name_start(text, name - 1) if name > 1 and text[name - 1] == "." else name - 1
            start = dotted if dotted < name - 1 and dotted >= done and _boundary(text, dotted) else name
            if _boundary(text, start):
                starts.append(start)
                if first:
                    break
                done = _CALL_ARGS.match(text, at + 1).end()  # type: ignore[union-attr]
        at = text.find("(", max(at + 1, done))
    return starts


def _name_start(text: str, end: int) -> int:
    """The start of the run of name characters (a-z, _) that ends before ``end``."""
    start = end
    while start > 0 and text[start - 1] in _NAME:
        start -= 1
    return start


def _boundary(text: str, i: int) -> bool:
    """``\b`` before a name character at ``i``: nothing, or no word character, before it."""
    return i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")


def _shapes(text: str) -> list[tuple[str, list[int]]]:
    """``("#name", [start of each match])`` for each shape ``text`` holds."""
    calls = _calls(text) if "(" in text else []
    found: dict[str, set[int]] = {"#code_call": set(calls)} if calls else {}
    for name, rx in _rules_for(text):
        if starts := [m.start() for m in rx.finditer(text)]:
            found.setdefault(name, set()).update(starts)
    return [(name, sorted(at)) for name, at in found.items()]


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


def _pairs(words: list[str]) -> list[str]:
    """Each word with the next: joined by a space, or directly when either is a Chinese/Japanese/Korean character."""
    return [a + b if _wide(a) or _wide(b) else a + " " + b for a, b in zip(words, words[1:], strict=False)]


def _window_features(tokens: list[tuple[int, str]], shapes: set[str]) -> set[str]:
    words = [w for _, w in tokens]
    out = set(words)
    out.update("~" + w[:5] for w in words if len(w) > 5)
    out.update(_pairs(words))
    out.update("#" + name for name in shapes)
    return out


def features(text: str) -> set[str]:
    """The features of ``text`` (already normalised: lower case, folded): words, stems, word pairs, shapes."""
    return _window_features(_tokens(text), {name[1:] for name, at in _shapes(text) if at})  # (each non-empty)


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
        self.stems = frozenset(f[1:] for f in weights if f.startswith("~"))  # the stems weighed, without their "~"
        self.known = frozenset(weights)

    def logit(self, text: str) -> float:
        """The score of one (short) text."""
        get = self.weights.get
        return self.bias + sum(get(f, 0.0) for f in features(text))

    def probability(self, text: str) -> float:
        """The best window's probability that it is an attack.

        The words, word pairs and stems are listed once for the whole text, in order; a window then sums the
        weights of the distinct known features among its slice of them (one set intersection, at C speed).
        """
        if len(text) <= WINDOW:  # one window: no positions needed
            best = self._one_window(text)
            return 1 / (1 + math.exp(-best)) if best > -30 else 0.0
        bounds = windows(text)
        if (spaced := _spaced_words(text)) is not None:  # the words are what split() returns
            words = spaced.split()
            pairs: list[str] = list(map(" ".join, zip(words, words[1:], strict=False)))
            before = _words_before(spaced, sorted({p for window in bounds for p in window}))
            spans = [(before[start], before[end]) for start, end in bounds]
        else:
            tokens = _tokens(text)
            starts, words = [p for p, _ in tokens], [w for _, w in tokens]
            pairs = _pairs(words)
            spans = [(bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)) for start, end in bounds]

        weights, known = self.weights, self.known
        stems = ["~" + w[:5] if len(w) > 5 else None for w in words]  # each word's stem feature, if it has one
        shapes = [(name, at) for name, at in _shapes(text) if name in weights]
        best = -math.inf
        for (start, end), (i, j) in zip(bounds, spans, strict=True):  # words i..j-1 start in the window
            seen = known.intersection(itertools.chain(words[i:j], pairs[i : max(i, j - 1)], stems[i:j]))
            score = self.bias + sum(map(weights.__getitem__, seen))  # (pair k: words k and k+1)
            if shapes:
                score += sum(weights[name] for name, at in shapes if any(start <= p < end for p in at))
            best = max(best, score)
        return 1 / (1 + math.exp(-best)) if best > -30 else 0.0

    def _one_window(self, text: str) -> float:
        """The score of a text no longer than a window: the bias and the weights of the known features it holds."""
        weights, stems = self.weights, self.stems
        if (spaced := _spaced_words(text)) is not None:
            words = spaced.split()  # what _WORD finds, without a match object each
            pairs: Any = map(" ".join, zip(words, words[1:], strict=False))
        else:
            words = [w for _, w in _tokens(text)]
            pairs = _pairs(words)
        seen = {w for w in words if w in weights}
        seen.update(p for p in pairs if p in weights)
        seen.update("~" + w[:5] for w in words if len(w) > 5 and w[:5] in stems)
        seen.update(name for name in _shape_names(text) if name in weights)
        return self.bias + sum(map(weights.__getitem__, seen))


def _words_before(spaced: str, positions: list[int]) -> dict[int, int]:
    """How many words of a text (its word characters, the rest spaces) start before each of ``positions``
    (increasing): each step splits only the stretch since the last one.
    """
    out, at, count = {}, 0, 0
    for position in positions:
        if position > at:
            stretch = spaced[at:position]
            found = len(stretch.split())
            if found and at > 0 and spaced[at - 1] != " " and stretch[0] != " ":
                found -= 1  # its first is the end of a word that started before
            count += found
            at = position
        out[position] = count
    return out


def _shape_names(text: str) -> set[str]:
    """``"#name"`` of each shape ``text`` holds (what :func:`_shapes` finds, without where)."""
    out = {"#code_call"} if "(" in text and _calls(text, first=True) else set()
    for name, rx in _rules_for(text):
        if name not in out and rx.search(text):
            out.add(name)
    return out


@lru_cache(maxsize=1)
def model() -> Model | None:
    """The shipped model, or ``None`` when it was never trained (the phrase signals still run)."""
    if not MODEL.exists():
        return None
    data = json.loads(MODEL.read_text())
    return Model(data["weights"], data["bias"], data["threshold"])
