"""``local/extractive``: answer from the context given, citing source ids; no weights.

Context is every message before the last user message, plus all but the last
paragraph of that message; the question is its last paragraph. A line starting
with ``[id]`` opens a source with that id. Sentences are ranked by BM25 against
the question; the best ones are returned, each followed by its source id.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

NO_CONTEXT = "I was given no context to answer from."
NO_ANSWER = "The context I was given does not answer this question."

_SOURCE = re.compile(r"^\[([^\]\s]{1,80})\]\s*(.*)$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_WORD = re.compile(r"[a-z0-9]+")
STOP_WORDS = _STOP = frozenset(
    "a an and are as at be by can could did do does for from had has have how i in is it its"
    " me my of on or our so that the their them there these they this to was we were what"
    " when where which who whom why will with would you your about into than then".split()
)


@dataclass(frozen=True, slots=True)
class Sentence:
    """One candidate sentence with where it came from."""

    text: str
    source: str
    position: int


_SUFFIXES = ("ing", "ed", "es", "s")


@lru_cache(maxsize=65536)  # vocabularies repeat: stemming is most of the cost of terms()
def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    """Content words of ``text``, lower-cased and lightly stemmed (stop words dropped)."""
    return [_stem(t) for t in _WORD.findall(text.lower()) if t not in _STOP]


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def split_question(messages: list[dict]) -> tuple[list[tuple[str, str]], str]:
    """Return (context blocks as (default source, text), question)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    blocks: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        if i != last_user and message.get("role") in ("system", "user", "assistant", "tool"):
            blocks.append((str(message.get("role")), _text_of(message.get("content"))))
    question = ""
    if last_user >= 0:
        paragraphs = [p for p in re.split(r"\n\s*\n", _text_of(messages[last_user]["content"])) if p.strip()]
        if paragraphs:
            question = paragraphs[-1]
            if len(paragraphs) > 1:
                blocks.append(("prompt", "\n\n".join(paragraphs[:-1])))
    return blocks, question


def sentences(blocks: list[tuple[str, str]]) -> list[Sentence]:
    """Split context blocks into sentences, tracking ``[id]`` source markers."""
    out: list[Sentence] = []
    seen: set[str] = set()
    for default_source, text in blocks:
        source = default_source
        for line in text.splitlines():
            marker = _SOURCE.match(line.strip())
            if marker:
                source, line = marker.group(1), marker.group(2)
            for piece in _SENTENCE.split(line.strip()):
                piece = piece.strip()
                if piece not in seen and terms(piece):  # a repeated sentence is cited once, first source
                    seen.add(piece)
                    out.append(Sentence(piece, source, len(out)))
    return out


def rank(candidates: list[Sentence], question: str, k1: float = 1.2, b: float = 0.75) -> list[tuple[float, Sentence]]:
    """BM25 scores of the candidates against the question, best first (zero scores dropped)."""
    query = set(terms(question))
    docs = [Counter(terms(s.text)) for s in candidates]
    if not query or not docs:
        return []
    avg_len = sum(sum(d.values()) for d in docs) / len(docs)
    df = Counter(term for d in docs for term in d)
    scored = []
    for sentence, doc in zip(candidates, docs, strict=True):
        length = sum(doc.values())
        score = 0.0
        for term in query & doc.keys():
            idf = math.log(1 + (len(docs) - df[term] + 0.5) / (df[term] + 0.5))
            tf = doc[term]
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_len))
        if score > 0:
            scored.append((score, sentence))
    scored.sort(key=lambda pair: (-pair[0], pair[1].position))
    return scored


def answer(messages: list[dict], k: int = 2) -> str:
    """The extractive answer: top-k sentences, each followed by ``[source]``."""
    blocks, question = split_question(messages)
    candidates = sentences(blocks)
    if not candidates:
        return NO_CONTEXT
    best = rank(candidates, question)[:k]
    if not best:
        return NO_ANSWER
    return " ".join(f"{s.text} [{s.source}]" for _, s in best)
