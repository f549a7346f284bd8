"""Scanners: secrets and personal data found in text, with their exact spans.

Each scanner returns :class:`Finding` spans; a finding keeps its kind and position,
never the matched text, so guard events can be stored without storing what they guard.

- ``secrets``: provider API keys (OpenAI, Anthropic, AWS access key ids and secret access
  keys, GitHub, Slack, Google, Stripe), private-key blocks, JSON web tokens, bearer tokens,
  passwords in connection strings (``postgres://user:pass@host``), and values assigned to
  key-like names (``api_key=``, ``token:``, ``"password": "…"``) that look like secrets:
  long and high-entropy for keys and tokens, not a plain word for passwords.
- ``pii``: e-mail addresses, phone numbers (9-15 digits, international or grouped),
  payment card numbers (13-19 digits passing the Luhn check), IBANs (passing the mod-97
  check), US social security numbers, UK national insurance numbers.
- ``max_length``: an input longer than ``max_input_chars``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from workbench.errors import WorkbenchError, shown

_Name = TypeVar("_Name", bound=str | None)

_SECRETS = {
    # "sk-(?<!\wsk-)" is "\bsk-" with the literal first, which lets the regex engine skip to each "sk-" at C speed
    "openai_key": r"sk-(?<!\wsk-)(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}",
    "anthropic_key": r"sk-ant-(?<!\wsk-ant-)[A-Za-z0-9_-]{20,}",
    "aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
    "slack_token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "google_api_key": r"\bAIza[0-9A-Za-z_-]{35}",
    "stripe_key": r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
    "private_key": r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)",
    "jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
}
# Secrets known by what surrounds them: the finding is the value (group 1), the name stays readable.
_VALUE = r"[\"']?([^\s\"',;)(\[\]{}<>`]{6,})"
_NAMED = {
    "aws_secret_key": r"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
    r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
    "bearer_token": r"(?i:\bbearer)\s+([A-Za-z0-9._~+/-]{16,}=*)",
    "password_in_url": r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@'\"]{1,100}:([^\s@/'\"]{1,200})@",
    "password": r"(?i:\b(?:passw(?:or)?d|passwd|pwd|passphrase)\b)[\"']?\s*[:=]\s*" + _VALUE,
    "generic_secret": r"(?i:\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|client[_-]?secret|access[_-]?token|"
    r"auth[_-]?token|refresh[_-]?token|token|private[_-]?key|access[_-]?key)\b)[\"']?\s*[:=]\s*" + _VALUE,
}
_SECRET = [(kind, re.compile(pattern)) for kind, pattern in _SECRETS.items()]
_NAMED_SECRET = [(kind, re.compile(pattern)) for kind, pattern in _NAMED.items()]
# What a text must hold for each pattern to match: cheap ``in`` tests decide which patterns run at all, so a
# text with no secret costs a lower-casing and a few substring searches, not a regex pass per pattern.
_NEEDS: dict[str, tuple[str, ...]] = {
    "openai_key": ("sk-",),
    "anthropic_key": ("sk-ant-",),
    "aws_access_key": ("AKIA", "ASIA"),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "slack_token": ("xox",),
    "google_api_key": ("AIza",),
    "stripe_key": ("k_live_", "k_test_"),
    "private_key": ("PRIVATE KEY-----",),
    "jwt": ("eyJ",),
}
_NAMED_NEEDS: dict[str, tuple[str, ...]] = {  # in the lower-cased text
    "aws_secret_key": ("key",),
    "bearer_token": ("bearer",),
    "password_in_url": ("://",),
    "password": ("pass", "pwd"),
    "generic_secret": ("key", "secret", "token"),
}
# Every literal a secret pattern needs (``_NEEDS``; ``_NAMED_NEEDS`` in any case): an ASCII text holding none of
# them has no secret, which a few substring searches (C speed, no regex alternation) decide for the ids, hashes,
# names and prose most scanned strings are.
_ANY_NEED = tuple(sorted({lit for lits in _NEEDS.values() for lit in lits}))
_ANY_NAMED_NEED = tuple(sorted({lit for lits in _NAMED_NEEDS.values() for lit in lits}))


def _may_hold_secret(text: str) -> bool:
    """Whether an ASCII ``text`` holds a literal some secret pattern needs (a non-ASCII one: always)."""
    if not text.isascii():
        return True
    if any(lit in text for lit in _ANY_NEED):
        return True
    lower = text.lower()
    return any(lit in lower for lit in _ANY_NAMED_NEED)


_ASSIGNED = {  # where a kind's name is assigned, in the case-folded text: each regex starts with a literal (the
    # engine skips to it at C speed), and the name's match starts at most so many characters before it
    kind: (reach, [re.compile(p + r"[\"']?\s*[:=]") for p in names])
    for kind, reach, names in (
        ("aws_secret_key", 4, [r"secret_?(?:access_?)?key"]),  # aws_
        ("password", 0, [r"pass(?:w(?:or)?d|phrase)\b", r"pwd\b"]),
        ("generic_secret", 9, [r"key\b", r"secret\b", r"token\b"]),  # refresh_, private_, client_ ...
    )
}
_SHORTEST_SECRET = 8  # "pwd=abc1" is the shortest a named secret gets
_DOTTED = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+$")  # settings.password, os.environ: names
_PLACEHOLDER = re.compile(
    r"^(?:\*+|x+|\.+|<[^>]*>|\$\{?\w+\}?|%\(?\w+\)?s?|\{\{?[^}]*\}?\}|"
    r"(?i:changeme|redacted|example|placeholder|your[-_]?\w*|none|null|true|false|required|"
    r"optional|secret|password|hidden|masked|string|str|env))$"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_PHONE = re.compile(r"(?<![\w+/-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,6}){1,4}(?!\w)")
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_DATE = re.compile(r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./]\d{1,2}\b")
_GENERIC_TLDS = frozenset(
    "com net org edu gov mil int info biz name pro aero coop museum io ai app dev me tv xyz online site tech store "
    "shop cloud email blog news live life today world global group company agency digital media solutions services "
    "network systems academy center studio design art club team work mobi asia jobs travel health bank insurance "
    "law legal finance capital consulting marketing software page wiki".split()
)
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_DIGIT_RUN = re.compile(r"[\d(+][\d .()+-]{8,}")  # every phone, card and SSN lies inside one such run
_CAPS_DIGITS = re.compile(r"[A-Z][A-Z] ?\d\d")  # every IBAN and UK NINO starts where this matches
_EXPANDING = re.compile(  # the characters whose case folding is longer than one character ("ß" -> "ss")
    "[\u00df\u0130\u0149\u01f0\u0390\u03b0\u0587\u1e96-\u1e9a\u1e9e\u1f50\u1f52\u1f54\u1f56\u1f80-\u1faf"
    "\u1fb2-\u1fb4\u1fb6-\u1fb7\u1fbc\u1fc2-\u1fc4\u1fc6-\u1fc7\u1fcc\u1fd2-\u1fd3\u1fd6-\u1fd7\u1fe2-\u1fe4"
    "\u1fe6-\u1fe7\u1ff2-\u1ff4\u1ff6-\u1ff7\u1ffc\ufb00-\ufb06\ufb13-\ufb17]"
)
_LOCAL_RUN = re.compile(r"[A-Za-z0-9._%+-]*")  # the characters an address has before its "@"
_DOMAIN_RUN = re.compile(r"[A-Za-z0-9.-]*")  # and after it
_NINO = re.compile(r"\b(?![DFIQUV])[A-CEGHJ-PR-TW-Z](?![DFIOQUV])[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")


@dataclass(frozen=True, slots=True)
class Finding:
    """Where something sensitive is: its kind and span (the text itself is never kept)."""

    kind: str
    start: int
    end: int
    score: float = 1.0  # how sure the scanner is (pattern scanners: 1.0)


def luhn(digits: str) -> bool:
    """The Luhn check of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def find_secrets(text: str) -> list[Finding]:
    """API keys, tokens, private keys, and secret values assigned to key-like names in ``text``."""
    if len(text) < _SHORTEST_SECRET or not _may_hold_secret(text):
        return []  # (an ASCII text without one of the literals every pattern needs)
    found = [
        Finding(kind, m.start(), m.end())
        for kind, rx in _SECRET
        if any(lit in text for lit in _NEEDS[kind])
        for m in rx.finditer(text)
    ]
    lower = text.casefold()  # what (?i:) matches: 'ſ' is an s, the Kelvin sign a k
    for kind, rx in _NAMED_SECRET:
        if not any(lit in lower for lit in _NAMED_NEEDS[kind]):
            continue
        for m in _named_matches(kind, rx, text, lower):
            code = text[m.end(1) : m.end(1) + 1] in ("(", "[")  # os.environ["PW"], get_pw(): code, not a value
            if not code and _looks_secret(kind, m.group(1)):
                found.append(Finding(kind, m.start(1), m.end(1)))
    return _without_overlaps(found)


def _named_matches(kind: str, rx: re.Pattern[str], text: str, lower: str) -> list[re.Match[str]]:
    """What ``rx.finditer(text)`` finds, tried only where a match can start: a few characters before each place the
    kind's name is assigned (found in the case-folded text), or before each "://" for a password in a URL.
    """
    if kind == "password_in_url":
        reach, names = 21, _positions(text, "://", limit=len(text) // 1024)
    elif kind in _ASSIGNED:
        reach, gates = _ASSIGNED[kind]
        names = [m.start() for g in gates for m in itertools.islice(g.finditer(lower), len(text) // 1024 + 1)]
    else:
        names = None
    if names is None or len(names) > len(text) // 1024:  # everywhere: one pass of the regex costs less than each try
        return list(rx.finditer(text))
    at = _unfolded(text, lower) if kind != "password_in_url" else lambda i: i
    starts = sorted({s for name in map(at, names) for s in range(max(0, name - reach), name + 1)})
    out: list[re.Match[str]] = []
    for start in starts:
        if (not out or start >= out[-1].end()) and (m := rx.match(text, start)):
            out.append(m)
    return out


def _unfolded(text: str, lower: str) -> Callable[[int], int]:
    """Maps a position in ``lower`` (``text`` case-folded) to one in ``text`` (a few letters fold to two or three)."""
    if len(lower) == len(text):
        return lambda i: i
    keys, shifts, shift = [], [], 0  # where each expanded letter ends in lower, and the growth up to there
    for m in _EXPANDING.finditer(text):
        shift += len(m.group().casefold()) - 1
        keys.append(m.start() + 1 + shift)
        shifts.append(shift)
    return lambda i: i - (shifts[k - 1] if (k := bisect.bisect_right(keys, i)) else 0)


def _positions(text: str, literal: str, limit: int) -> list[int]:
    """Where ``literal`` starts in ``text`` (at most ``limit`` + 1 of them)."""
    out: list[int] = []
    at = text.find(literal)
    while at >= 0 and len(out) <= limit:
        out.append(at)
        at = text.find(literal, at + 1)
    return out


def _looks_secret(kind: str, value: str) -> bool:
    """A named value that is a real secret, not a placeholder, a variable or a word."""
    if _PLACEHOLDER.match(value) or "[REDACTED:" in value or _DOTTED.match(value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
    if kind in ("aws_secret_key", "bearer_token"):
        return classes >= 2
    if kind == "password_in_url":
        return bool(value) and not set(value) <= {"*"}
    if kind == "password":
        return classes >= 2
    return len(value) >= 16 and classes >= 2 and _entropy(value) >= 3.0


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    import math
    from collections import Counter

    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def scrub(text: str | None) -> str | None:
    """``text`` with every secret replaced by ``[REDACTED:kind]``: for errors, reasons and notes that are stored."""
    if not text:
        return text
    found = find_secrets(text)
    return redact(text, found) if found else text


def scrub_clipped(text: str, limit: int) -> str:
    """``text`` scrubbed, then cut to at most ``limit`` characters ("…" last): in that order, since a cut through a
    key would leave a part of it no scanner recognises. For a reason or a note shown in a line or a cell.
    """
    text = scrub(text) or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def map_strings(value: Any, fn: Callable[[str], str], other: Callable[[Any], Any] | None = None) -> Any:
    """``value`` (dicts, lists, tuples of JSON values) with ``fn`` applied to every string in it, dict keys
    included, and ``other`` (if given) to every leaf that is not a string, number, bool or None. Parts left
    unchanged stay the same objects.
    """
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        items = [(map_strings(k, fn, other), map_strings(v, fn, other)) for k, v in value.items()]
        same = all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True))
        return value if same else dict(items)
    if isinstance(value, list | tuple):
        out = [map_strings(v, fn, other) for v in value]
        return value if all(a is b for a, b in zip(out, value, strict=True)) else type(value)(out)
    if other is None or value is None or isinstance(value, int | float):
        return value
    return other(value)


def _none_may_hold_secret(texts: Iterable[str]) -> bool:
    """Whether no text of ``texts`` can hold a secret (each ASCII, none holding a literal some pattern needs),
    decided in one pass over them all: the many short ids, names and numbers an audit entry or a call's spans
    carry need no scan of their own when this says so (then :func:`scrub` would give each back unchanged).
    """
    return not _may_hold_secret("\x00".join(texts))  # (no literal holds a NUL, so none spans two texts)


def _value_strings(value: Any) -> list[str]:
    """Every string :func:`scrub_values` scrubs in ``value`` (dict values, list and tuple items; not keys), in no
    particular order.
    """
    out: list[str] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            todo.extend(item)
    return out


def scrub_values(value: Any) -> Any:
    """``value`` with every secret in its strings replaced by ``[REDACTED:kind]`` (dicts and lists walked, as new
    dicts and lists). Whether any string can hold one is decided first in one pass over them all
    (:func:`_none_may_hold_secret`): the ids, names and numbers an audit entry carries then need no scan each.
    """
    return _scrubbed(value, scan=not _none_may_hold_secret(_value_strings(value)))


def _scrubbed(value: Any, scan: bool) -> Any:
    """``value`` rebuilt (dicts as dicts, lists and tuples as lists), its strings scrubbed when ``scan``."""
    if isinstance(value, str):
        found = find_secrets(value) if scan else None
        return redact(value, found) if found else value
    if isinstance(value, dict):
        return {k: _scrubbed(v, scan) if scan or isinstance(v, _CONTAINERS) else v for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v, scan) if scan or isinstance(v, _CONTAINERS) else v for v in value]
    return value


_CONTAINERS = (dict, list, tuple)  # (what scrub_values rebuilds; any other leaf is kept as it is)


def check_name(what: str, name: _Name) -> _Name:
    """``name`` (a session, user, task, agent or workflow name, a scope; ``None``: not given) if it holds no
    secret and no control or invisible character; else a one-line :class:`~workbench.errors.WorkbenchError`. A name
    is stored, shown and matched as written, so one holding a key is refused before anything is recorded:
    redacting it would file unrelated work under one ``[REDACTED:...]`` name (the error shows it redacted). So is
    one holding a newline, a terminal escape, a bidi override or a zero-width character: shown by the CLI, a
    report or the panel, it could forge a line ("approved by: root") or hide what it says.
    """
    if not isinstance(name, str):
        return name
    if len(name) > MAX_NAME:  # (stored in every row and index entry that names it)
        raise WorkbenchError(
            f"the {what} given is {len(name):,} characters: a name is at most {MAX_NAME:,}, so nothing was "
            "recorded; use a shorter name"
        )
    found = find_secrets(name)
    if found:
        raise WorkbenchError(
            f"{what} {shown(redact(name, found))} holds what looks like a secret ({found[0].kind}): names are "
            "stored and shown as written, so nothing was recorded; use a name without the key"
        )
    if not name.isprintable() and not name.replace("\u200d", "").isprintable():  # (an emoji's joiner is fine)
        at = next(i for i, ch in enumerate(name) if ch != "\u200d" and not ch.isprintable())
        raise WorkbenchError(
            f"{what} {shown(name)} holds a control or invisible character ({name[at]!r} at {at}): names are stored "
            "and shown as written, so nothing was recorded; use printable text"
        )
    return name


MAX_NAME = 4096  # characters in a name (a session, user, scope, route, a document's path or URL): as PATH_MAX


def find_pii(text: str) -> list[Finding]:
    """E-mail addresses, phone, card, IBAN and national id numbers in ``text``.

    The number patterns run only inside runs of digits and separators long enough to hold one, and the
    rest only when the text has what they need (an ``@``, two capitals before two digits), so an ordinary
    text is read a few times at C speed rather than once per pattern in Python's regex engine.
    """
    found = [Finding("email", m.start(), m.end()) for m in _emails(text) if _real_tld(m.group().rsplit(".", 1)[-1])]
    starts = [m.start() for m in _CAPS_DIGITS.finditer(text)]
    if starts:
        found += [
            Finding("iban", m.start(), m.end()) for m in _matches_at(_IBAN, text, starts) if iban_valid(m.group())
        ]
        found += [Finding("uk_nino", m.start(), m.end()) for m in _matches_at(_NINO, text, starts)]
    for run in _DIGIT_RUN.finditer(text):
        start, end = run.start(), min(len(text), run.end() + 1)  # one more: the look-aheads see what follows
        for m in _CARD.finditer(text, start, end):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and luhn(digits):
                found.append(Finding("card_number", m.start(), m.end()))
        found += [Finding("us_ssn", m.start(), m.end()) for m in _SSN.finditer(text, start, end)]
        found += [
            Finding("phone", m.start(), m.end()) for m in _PHONE.finditer(text, start, end) if _phone_like(m.group())
        ]
    return _without_overlaps(found)


def _emails(text: str) -> list[re.Match[str]]:
    """What ``_EMAIL.finditer(text)`` finds, searched only in the run of address characters around each ``@``."""
    if text.count("@") > len(text) // 256:  # addresses everywhere: one pass of the regex is cheaper
        return list(_EMAIL.finditer(text))
    out: list[re.Match[str]] = []
    at, done, backwards = text.find("@"), 0, ""
    while at >= 0:
        backwards = backwards or text[::-1]  # the run before an "@" is found by matching the reversed text
        start = max(done, at - _run(_LOCAL_RUN, backwards, len(text) - at))
        end = at + 1 + _run(_DOMAIN_RUN, text, at + 1)  # the character there ends any address: let \b see it
        for m in _EMAIL.finditer(text, start, end + 1):
            out.append(m)
            done = m.end()
        at = text.find("@", end)
    return out


def _run(rx: re.Pattern[str], text: str, at: int) -> int:
    """How many characters from ``at`` the run pattern ``rx`` (which may match nothing) covers."""
    m = rx.match(text, at)
    return m.end() - at if m else 0


def _matches_at(rx: re.Pattern[str], text: str, starts: list[int]) -> list[re.Match[str]]:
    """What ``rx.finditer(text)`` finds, when every match can only start at one of ``starts`` (ascending)."""
    out: list[re.Match[str]] = []
    for start in starts:
        if (not out or start >= out[-1].end()) and (m := rx.match(text, start)):
            out.append(m)
    return out


def _real_tld(tld: str) -> bool:
    """A country code or a common generic TLD (``name@domain.tld`` is a placeholder, not an address)."""
    return len(tld) == 2 or tld.lower() in _GENERIC_TLDS


def _phone_like(match: str) -> bool:
    """Enough digits for a phone number, and not an IP address, a date or a version."""
    digits = len(re.sub(r"\D", "", match))
    if match.count(".") == 3 and all(part.isdigit() and int(part) < 256 for part in match.split(".")):
        return False
    if _DATE.match(match):
        return False
    international = match.startswith("+") or "(" in match
    return (9 if international else 10) <= digits <= 15


def redact(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding replaced by ``[REDACTED:kind]``."""
    for f in sorted(findings, key=lambda f: f.start, reverse=True):
        text = f"{text[: f.start]}[REDACTED:{f.kind}]{text[f.end :]}"
    return text


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep the earliest, then longest, of overlapping findings (a card is not also a phone number)."""
    kept: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if not kept or f.start >= kept[-1].end:
            kept.append(f)
    return kept
