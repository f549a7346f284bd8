"""How much of an answer is supported by the context it was given.

A sentence of the answer is *supported* when at least ``SUPPORT`` of its content words
(stop words dropped, lightly stemmed, citations like ``[handbook.md#2]`` removed) occur
in the retrieved chunks; the grounding score is the share of supported sentences. It is
a lexical check — it catches answers that bring in facts from nowhere, not paraphrases
that change the meaning — and is recorded per call as ``grounding``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from workbench.serving.extractive import terms

SUPPORT = 0.6
_CITATION = re.compile(r"\[[^\]\s]{1,80}\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def grounding(answer: str, sources: Iterable[str]) -> float | None:
    """The share (0..1) of the answer's sentences supported by ``sources``; ``None`` without both."""
    vocabulary = {t for text in sources for t in terms(text)}
    sentences = [s for s in (_CITATION.sub("", p).strip() for p in _SENTENCE.split(answer)) if terms(s)]
    if not vocabulary or not sentences:
        return None
    supported = 0
    for sentence in sentences:
        words = set(terms(sentence))
        supported += len(words & vocabulary) / len(words) >= SUPPORT
    return round(supported / len(sentences), 3)
