"""Output scanners: system-prompt leakage, and what an answer would do in the sink it is meant for.

- ``leakage``: the call's system prompt carries a canary (``<!-- wb-canary-... -->``,
  derived from the prompt's text, so a replayed request is identical); an answer that
  contains it, or repeats 12 or more consecutive words of the system prompt, leaks it.
- ``sinks``: an answer meant for HTML, a shell or SQL is checked for what would run
  there — script tags, event handlers and ``javascript:`` URLs; destructive commands,
  command chaining and substitution, ``curl | sh``; anything but one read-only query.
- ``exfiltration``: a URL in the answer (a markdown image, which a renderer fetches on its
  own, a link, an ``<img>``, a bare URL) whose query, fragment or long path segments carry
  the conversation: three or more of its words, a secret or personal data, plain or
  URL-, base64- or hex-encoded (the EchoLeak pattern: an injected page asks the model to
  put the chat into an image URL on the attacker's server).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from workbench.guardrails.boundaries import sql_problems
from workbench.guardrails.scanners import Finding, find_pii, find_secrets

CANARY_PREFIX = "wb-canary-"
LEAK_WORDS = 12
SINKS = ("html", "shell", "sql")

_CANARY = re.compile(r"wb-canary-[0-9a-f]{12}")
_PEM_END = re.compile(r"-----END [A-Z ]*-----")
_WORDS = re.compile(r"\w+")
_HTML = [
    ("script_tag", re.compile(r"<\s*script\b", re.I)),
    ("event_handler", re.compile(r"<[^>]+\bon[a-z]+\s*=", re.I)),
    ("javascript_url", re.compile(r"(?:href|src|action)\s*=\s*[\"']?\s*javascript:", re.I)),
    ("embedded_frame", re.compile(r"<\s*(?:iframe|object|embed|frame)\b", re.I)),
    ("data_html_url", re.compile(r"data:text/html", re.I)),
    ("meta_refresh", re.compile(r"<\s*meta[^>]+http-equiv\s*=\s*[\"']?refresh", re.I)),
]
_SHELL = [
    (
        "destructive_command",
        re.compile(
            r"\brm\s+-[a-z]*[rf][a-z]*\b|\bmkfs(?:\.\w+)?\b|\bdd\s+if=|\bshred\b|"
            r">\s*/dev/(?:sd|nvme|hd)|\bchmod\s+-?R?\s*777\b|:\(\)\s*\{"
        ),
    ),
    ("pipe_to_shell", re.compile(r"\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b")),
    ("command_substitution", re.compile(r"\$\([^)]*\)|`[^`\n]+`")),
    ("command_chaining", re.compile(r"(?:;|&&|\|\|)\s*\w")),
    ("privilege_escalation", re.compile(r"\bsudo\b|\bsu\s+-")),
]


def canary_for(system: str) -> str:
    """The canary token for a system prompt: stable for the same text, unguessable without it."""
    return CANARY_PREFIX + hashlib.sha256(system.encode()).hexdigest()[:12]


def with_canary(system: str) -> str:
    """``system`` with its canary appended as an HTML comment (models ignore it; a leak carries it)."""
    return f"{system}\n<!-- {canary_for(system)} -->"


def find_leakage(text: str, system: str | None) -> list[Finding]:
    """Canary tokens in ``text``, and runs of ``LEAK_WORDS`` words copied from ``system``."""
    found = [Finding("canary", m.start(), m.end()) for m in _CANARY.finditer(text)]
    if not system:
        return found
    base = _CANARY.sub("", system)
    words = [w.lower() for w in _WORDS.findall(base)]
    if len(words) < LEAK_WORDS:
        return found
    grams = {tuple(words[i : i + LEAK_WORDS]) for i in range(len(words) - LEAK_WORDS + 1)}
    out = [(m.group().lower(), m.start(), m.end()) for m in _WORDS.finditer(text)]
    i = 0
    while i <= len(out) - LEAK_WORDS:
        if tuple(w for w, _, _ in out[i : i + LEAK_WORDS]) in grams:
            j = i + LEAK_WORDS
            while j < len(out) and tuple(w for w, _, _ in out[j - LEAK_WORDS + 1 : j + 1]) in grams:
                j += 1
            found.append(Finding("system_prompt", out[i][1], out[j - 1][2]))
            i = j
        else:
            i += 1
    return found


_URL = re.compile(
    r"(!\[[^\]\n]{0,300}\]\(\s*<?|<img\b[^>]{0,300}?\bsrc\s*=\s*[\"']?)?"
    r"((?:https?:)?//[^\s)\"'<>]+)",
    re.I,
)
_DATA_WORD = re.compile(r"[^\W\d_]{4,}")
_ENCODED = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_STOP = frozenset(
    "this that with from have what your will would there their about which when where were been "
    "into than then them they these those some such only also just like more most http https www "
    "html image png jpg jpeg json".split()
)
LEAKED_WORDS = 3  # words of the conversation in one URL that make it a leak


def _payload(url: str) -> str:
    """What a URL carries besides its host: query keys and values, the fragment, long path segments, decoded."""
    try:
        parts = urlsplit(url if "://" in url else "https:" + url)
        pieces = [p for kv in parse_qsl(parts.query, keep_blank_values=True) for p in kv]
        pieces += [parts.fragment, *(seg for seg in parts.path.split("/") if len(seg) >= 16)]
    except ValueError:  # not a URL urllib accepts ("[...]" hosts and the like): all but the scheme, then
        pieces = re.split(r"[/?&#=]", url.split("//", 1)[-1])
    text = " ".join(unquote_plus(p) for p in pieces if p)
    for m in _ENCODED.finditer(text):  # base64 (standard or URL-safe) and hex runs, read back
        chunk = m.group()
        try:
            raw = (
                bytes.fromhex(chunk)
                if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", chunk)
                else base64.b64decode(
                    chunk.replace("-", "+").replace("_", "/") + "=" * (-len(chunk) % 4), validate=True
                )
            )
            text += " " + raw.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return text


def find_exfiltration(text: str, conversation: str | None) -> list[Finding]:
    """URLs in ``text`` that carry the conversation's words, a secret or personal data (kind: image or link)."""
    if "//" not in text:
        return []
    said = {w.lower() for w in _DATA_WORD.findall(conversation or "")} - _STOP
    found = []
    for m in _URL.finditer(text):
        payload = _payload(m.group(2))
        if not payload:
            continue
        words = {w.lower() for w in _DATA_WORD.findall(payload)} & said
        if len(words) >= LEAKED_WORDS or find_secrets(payload) or find_pii(payload):
            kind = "image_url_carries_conversation" if m.group(1) else "link_carries_conversation"
            found.append(Finding(kind, m.start(2), m.end(2)))
    return found


def find_sink_risks(text: str, sink: str | None) -> list[Finding]:
    """What in ``text`` would act in ``sink`` (``html``, ``shell`` or ``sql``); nothing without a sink."""
    if sink == "html":
        return [Finding(kind, m.start(), m.end()) for kind, rx in _HTML for m in rx.finditer(text)]
    if sink == "shell":
        return [Finding(kind, m.start(), m.end()) for kind, rx in _SHELL for m in rx.finditer(text)]
    if sink == "sql":
        body = _fenced_code(text)
        return [Finding(problem, 0, len(text)) for problem in sql_problems(body)]
    return []


def _fenced_code(text: str) -> str:
    """The first fenced code block's body, else the whole text."""
    m = re.search(r"```[\w-]*\n(.*?)```", text, re.S)
    return m.group(1) if m else text


class SecretSafeStream:
    """A streamed answer's live preview that never shows a secret the stored answer redacts.

    A secret is one word (a key, a token, ``user:pass@host``) or a private-key block, so each
    word is held back until it is complete (the next whitespace, or the end) and shown with the
    secrets in it redacted, judged with the text just before it (``Bearer``, ``api_key =``).
    A private-key block is held until its end line. ``None`` (the router failed over) resets.
    """

    CONTEXT = 200  # characters before a word that can make it a secret

    def __init__(self, sink: Callable[[str | None], None]):
        self.sink, self.raw, self.pending = sink, "", ""

    def __call__(self, delta: str | None) -> None:
        """Take a delta; pass on every complete word, redacted."""
        if delta is None:
            self.raw = self.pending = ""
            self.sink(None)
            return
        self.pending += delta
        block = self.pending.find("-----BEGIN")
        if block >= 0 and not _PEM_END.search(self.pending, block):
            cut = block
        else:
            cut = max(self.pending.rfind(" "), self.pending.rfind("\n"), self.pending.rfind("\t")) + 1
        if cut > 0:
            ready, self.pending = self.pending[:cut], self.pending[cut:]
            self._emit(ready)

    def flush(self) -> None:
        """The answer is complete: show what was held back."""
        if self.pending:
            ready, self.pending = self.pending, ""
            self._emit(ready)

    def _emit(self, ready: str) -> None:
        tail = self.raw[-self.CONTEXT :]
        text = tail + ready
        shown = ready
        for f in sorted(find_secrets(text), key=lambda f: f.start, reverse=True):
            if f.end > len(tail):
                start, end = max(f.start, len(tail)) - len(tail), f.end - len(tail)
                shown = f"{shown[:start]}[REDACTED:{f.kind}]{shown[end:]}"
        self.raw = (self.raw + ready)[-4 * self.CONTEXT :]
        self.sink(shown)
