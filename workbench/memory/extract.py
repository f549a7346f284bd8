"""What a conversation writes to long-term memory when ``[memory] extract = "rules"``.

Transparent rules over the user's own words (never the model's): a sentence that states
a preference (``I prefer / like / love / hate / don't like …``) is a *preference*; one
that states a fact about the speaker (``my … is``, ``I am / work / live …``, ``remember
that …``) is a *fact*. Questions are never remembered.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["fact", "preference", "episode"]

_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_PREFERENCE = re.compile(r"\b(i|we)\s+(really\s+)?(prefer|like|love|hate|dislike|don't like|do not like|want)\b", re.I)
_FACT = re.compile(r"\b(my|our)\s+[\w' -]{1,40}?\s+(is|are|was)\b|\bi\s+(am|work|live|use)\b|\bremember that\b", re.I)


def extract(text: str) -> list[tuple[Kind, str]]:
    """``(kind, sentence)`` pairs worth remembering from a user's message."""
    found: list[tuple[Kind, str]] = []
    for sentence in (s.strip() for s in _SENTENCES.split(text)):
        if not sentence or sentence.endswith("?"):
            continue
        if _PREFERENCE.search(sentence):
            found.append(("preference", sentence))
        elif _FACT.search(sentence):
            found.append(("fact", re.sub(r"^(please\s+)?remember that\s+", "", sentence, flags=re.I)))
    return found
