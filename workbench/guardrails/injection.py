"""Prompt-injection and jailbreak detection: weighted phrase signals over normalised and decoded text.

A text is looked at in several forms, so an attack can't hide behind its spelling:

- normalised: NFKC, zero-width characters removed, look-alike Cyrillic/Greek letters folded
  to Latin, lower case, runs of whitespace collapsed;
- with l33t digits inside words read as letters, and s p a c e d letters joined;
- ROT13 (when the text names it, or reads like no English at all);
- base64 and hex runs decoded (when they decode to readable text).

Each form is matched against signals of six families: ``instruction_override``,
``roleplay_jailbreak``, ``fake_system_delimiter``, ``prompt_leak``, ``multilingual``
(the common phrases in 12 languages) and ``encoded`` (any hit found only after decoding).
A signal has a weight; the score is ``1 - prod(1 - w)`` over the distinct signals that
matched (weak signals alone never add up: they only reinforce a stronger one). At the
input stage, a match that sits inside quotes, in a text that talks *about* an attack
(classify, detect, translate, example, ...), counts for a third: analysts quote attacks.

This is a transparent heuristic, not a model: ``bench/guardrails.py`` measures it on a
labelled corpus of attacks and benign look-alikes (per-family TPR, FPR).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass

from workbench.guardrails.scanners import Finding

FAMILIES = ("instruction_override", "roleplay_jailbreak", "fake_system_delimiter", "prompt_leak",
            "multilingual", "encoded")  # fmt: skip
THRESHOLD = 0.5

_VERB = (r"(?:ignore|disregard|forget|override|bypass|skip|abandon|discard|neglect|set aside|nevermind|never mind|"
         r"pay no (?:attention|heed) to|drop|break|turn off|switch off|disable|suspend|lift|"
         r"(?:do not|don't|will not|won't|stop|no longer) follow(?:ing)?|cancel)")  # fmt: skip
_QUAL = (r"(?:previous|prior|above|earlier|preceding|initial|original|all|any|every|your|the system|system|safety|"
         r"developer'?s?|my)")  # fmt: skip
_TARGET = (r"(?:instructions?|directives?|directions|rules|guidelines|guidance|constraints|restrictions|programming|"
           r"prompts?|polic(?:y|ies)|settings|commands|orders|safeguards?|training|content filters?)")
_OWN = (r"(?:instructions|guidance|rules|guidelines|polic(?:y|ies)|safeguards|directives|system prompt|content filter|"
        r"safety (?:rules|checks|filters|settings))")
_VOIDED = (r"(?:no longer (?:apply|applies|matter|valid|in effect|bind)|(?:is|are|has been|have been) (?:now )?"
           r"(?:void|null|cancel+ed|suspended|lifted|disabled|switched off|turned off|off|irrelevant|obsolete|"
           r"overridden))")  # fmt: skip
_LEAK_VERB = (r"(?:repeat|print|reveal|show|output|display|tell|give|spell out|echo|write down|list|quote|translate|"
              r"leak|dump|copy|paste|summari[sz]e|what (?:is|are|were|was)|what's)")  # fmt: skip
_LEAK_TARGET = (r"(?:(?:your|the) (?:system (?:prompt|message|instructions)|initial (?:instructions|prompt)|original "
                r"(?:instructions|prompt)|hidden (?:instructions|prompt|rules)|context window|configuration)|your "
                r"(?:instructions|prompt|rules|guidelines|system instructions|system message)|(?:confidential|secret|"
                r"hidden) (?:rules|instructions|prompt))")  # fmt: skip

# (family, weight, pattern) over the normalised text; weights under 0.45 only reinforce.
_SIGNALS: list[tuple[str, float, str]] = [
    ("instruction_override", 0.9, rf"\b{_VERB}\b[^.\n]{{0,40}}?\b{_QUAL}\b[^.\n]{{0,25}}?\b{_TARGET}\b"),
    ("instruction_override", 0.9, r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)\s+(?:above|before|"
                                  r"previous|prior|you (?:were|have been) told|(?:that )?came before)"),
    ("instruction_override", 0.9, r"\b(?:previous|prior|earlier|above|original) (?:instructions|rules|directives) "
                                  r"(?:are|have been|were) (?:cancel+ed|void|revoked|obsolete|replaced|no longer)"),
    ("instruction_override", 0.8, r"\byour (?:instructions|rules|directives|guidelines) have (?:been|changed)"),
    ("instruction_override", 0.85, rf"\b(?:the|your|all|these|any) (?:previous |prior |earlier |original |old |"
                                   rf"current )?{_OWN}(?: above| before| you (?:were|have been) given)?[^.!?\n]{{0,30}}"
                                   rf"\b{_VOIDED}"),
    ("instruction_override", 0.85, r"\b(?:everything|all|anything|whatever) (?:that )?you (?:were|have been|'ve been) "
                                   r"(?:told|instructed|given|taught)\b[^.!?\n]{0,40}\b(?:is|are) (?:now )?(?:void|"
                                   r"cancel+ed|irrelevant|obsolete|null)"),
    ("instruction_override", 0.85, rf"\b{_VERB}\w*\b[^.!?\n]{{0,30}}\b{_TARGET}\b[^.!?\n]{{0,20}}\b(?:that )?"
                                   rf"(?:bind|binds|govern|restrict|constrain|you (?:were|have been) given|"
                                   rf"you received|you got)\b"),
    ("instruction_override", 0.7, r"\binstructions? update from\b|\b(?:message|update|directive|notice) from (?:openai|"
                                  r"anthropic|the developers?|the admin(?:istrator)?|(?:\w+ )?staff)\b"),
    ("instruction_override", 0.5, r"\bcomply with (?:all|every|any) (?:requests?|instructions?)\b"),
    ("instruction_override", 0.6, r"\b(?:new|updated|real|actual) (?:instructions|rules|directives|policy)\s*(?::|-|"
                                  r"apply|in effect)"),
    ("instruction_override", 0.6, r"\byour (?:new |only |real )(?:task|instruction|job|goal|objective|role) "
                                  r"(?:is|now)"),
    ("instruction_override", 0.5, r"\bfrom now on,? you (?:will|are|must|only|shall|should)\b"),
    ("instruction_override", 0.5, r"\byou (?:must|will|should) now (?:ignore|obey|comply|answer|only)"),
    ("instruction_override", 0.6, r"\bi have been pwned\b"),
    ("instruction_override", 0.3, r"\b(?:reveal|print|output|leak|dump|share|send|give me)\b[^.\n]{0,30}\b(?:password|"
                                  r"secrets?|api keys?|credentials|confidential|customer (?:list|data|emails)|"
                                  r"connection string|internal data|unredacted)"),
    ("instruction_override", 0.3, r"\b(?:approve (?:all|every|this) refunds?|delete the user|sell me)\b"),
    ("roleplay_jailbreak", 0.9, r"\b(?:you are|you're|pretend to be|act as|become|called|named|now) dan\b|"
                                r"\bdan (?:mode|which stands|has|can|will)\b|\bdo anything now\b"),
    ("roleplay_jailbreak", 0.5, r"\bwhich stands for\b"),
    ("roleplay_jailbreak", 0.9, r"\bdeveloper mode (?:enabled|activated|output|response)|\b(?:enable|enter|"
                                r"activate|switch to|simulate) (?:a |the )?developer mode\b(?!\s+(?:on|in|for)\s)"),
    ("roleplay_jailbreak", 0.6, r"\b(?:no|without(?: any)?|zero|free of|free from)\s+(?:\w+ ){0,2}(?:restrictions|"
                                r"filters|limits|limitations|rules|guidelines|ethics|censorship|content polic(?:y|ies)|"
                                r"morals|boundaries)\b"),
    ("roleplay_jailbreak", 0.9, r"\b(?:broken|freed?) (?:free )?(?:of|from) (?:all |the )?(?:its |your |the )?"
                                r"(?:typical )?(?:confines|limitations|restrictions|rules)"),
    ("roleplay_jailbreak", 0.9, r"\b(?:all )?(?:restrictions|filters|limits) (?:are|have been) (?:lifted|removed|"
                                r"disabled|off)\b"),
    ("roleplay_jailbreak", 0.8, r"\b(?:unrestricted|unfiltered|uncensored|amoral|unchained|unlocked|jailbroken|evil)"
                                r" (?:ai|mode|assistant|model|chatbot|bot|version|twin|confidant)\b|\bjailbreak "
                                r"mode\b|\b(?:you are|you're|you have been) (?:now )?jailbroken\b|\bopposite mode\b"),
    ("roleplay_jailbreak", 0.8, r"\b(?:not|never|doesn't|does not|don't|do not)\s+(?:have to |need to )?(?:follow|obey|"
                                r"care about|abide by) (?:any |the |its |your )?(?:rules|guidelines|policies|"
                                r"restrictions)"),
    ("roleplay_jailbreak", 0.7, r"\b(?:never refuses?|always complies|cannot refuse|can't refuse|answers? anything|"
                                r"say anything)\b|\bnever (?:\w+ ){0,2}(?:to )?refuse (?:anything|any request|"
                                r"requests)"),
    ("roleplay_jailbreak", 0.4, r"\b(?:pretend|imagine|act as|roleplay as|role-play as|you are now|play the role of|"
                                r"simulate|behave like|respond as|stay in character)\b[^.\n]{0,60}\b(?:ai|model|"
                                r"assistant|chatbot|bot|version of yourself|twin)\b"),
    ("roleplay_jailbreak", 0.6, r"\b(?:deceased|late|dead) grand(?:ma|mother|father|pa)\b"),
    ("roleplay_jailbreak", 0.4, r"\bhypothetically\b"),
    ("roleplay_jailbreak", 0.4, r"\b(?:napalm|meth(?:amphetamine)?|explosives?|bomb|malware|ransomware|hack into)\b"),
    ("fake_system_delimiter", 0.9, r"<\|(?:im_start|im_end|system|endoftext|user|assistant)\|>\s*(?:system|assistant|"
                                   r"user|<\||\n)|\[/?inst\]|<</?sys>>"),
    ("fake_system_delimiter", 0.4, r"<\|(?:im_start|im_end|system|endoftext)\|>"),
    ("fake_system_delimiter", 0.7, r"(?:^|\n)[\s#*>\[`-]*(?:system|admin|administrator|developer)(?: message| prompt| "
                                   r"notice| update| override)?\s*(?::|\]|>>)"),
    ("fake_system_delimiter", 0.7, r"(?:^|\n)\s*```\s*system\b"),
    ("fake_system_delimiter", 0.9, r"\bnew system (?:prompt|message|instructions|directives?|rules)\b"),
    ("fake_system_delimiter", 0.7, r"\b(?:user )?input ends here\b"),
    ("fake_system_delimiter", 0.85, r"\b(?:begin|end|start) (?:of )?(?:the )?(?:system|admin|administrator|developer) "
                                    r"(?:message|prompt|override|instructions|mode)\b"),
    ("fake_system_delimiter", 0.7, r"\b(?:end|begin) of (?:the )?(?:user input|user message|prompt|conversation|"
                                   r"system prompt)\b"),
    ("fake_system_delimiter", 0.8, r"[\"']role[\"']\s*:\s*[\"']system[\"']"),
    ("fake_system_delimiter", 0.85, r"<(?:system|admin|sys|instructions?)>[^<]{0,200}?\b(?:grant|comply|ignore|you "
                                    r"(?:are|must)|must|disable|skip|override|reveal|no restrictions)\b"),
    ("fake_system_delimiter", 0.9, r"</(?:user|context|document|input|data)>\s*(?:<system>|system\b)"),
    ("fake_system_delimiter", 0.9, r"\[system\]\(#"),
    ("fake_system_delimiter", 0.4, r"(?:^|\n)\s*assistant\s*:"),
    ("fake_system_delimiter", 0.7, r"\b(?:administrator|admin) (?:privileges|access|rights) (?:granted|enabled)\b"),
    ("fake_system_delimiter", 0.5, r"\bauthori[sz]ed by (?:the )?(?:developer|admin|administrator|system)\b"),
    ("prompt_leak", 0.9, rf"\b{_LEAK_VERB}\b[^.?!\n]{{0,40}}?\b{_LEAK_TARGET}"),
    ("prompt_leak", 0.85, r"\b(?:repeat|print|output|copy|echo|return|show)\b[^.?!\n]{0,15}\b(?:the |all )?(?:text|"
                          r"words|everything|content|messages?)\s+(?:above|before (?:this|my))|\b(?:everything|all the "
                          r"text|the text) (?:that came )?before (?:this|my|')"),
    ("prompt_leak", 0.8, r"\b(?:rules|instructions|prompt)\s+(?:that )?(?:your developer|you were given|you were told|"
                         r"you received|that configured you|configured you|you must follow)"),
    ("prompt_leak", 0.8, r"\b(?:told|tell) you not to (?:reveal|share|say|tell)"),
    ("prompt_leak", 0.85, rf"\b{_LEAK_VERB}\b[^.?!\n]{{0,20}}\b(?:the )?(?:initial|first|original|opening) (?:message|"
                          rf"prompt|instructions)s? (?:you|from the (?:operator|developer|system))"),
    ("prompt_leak", 0.85, r"\b(?:text|words|message|content) (?:appears |is )?(?:at|from) the (?:very )?(?:top|start|"
                          r"beginning) of (?:this|the) (?:conversation|chat|context)"),
    ("prompt_leak", 0.8, r"\b(?:instructions|rules|prompt) you were (?:configured|set up|initiali[sz]ed|programmed) "
                         r"with\b"),
    ("prompt_leak", 0.5, r"\bstarting with '?\"?you are\b"),
    ("prompt_leak", 0.3, r"\b(?:verbatim|word for word|exactly|don't paraphrase|do not paraphrase)\b"),
    ("encoded", 0.5, r"\bdecode (?:this|the following|it)\b[^.\n]{0,20}\b(?:do|follow|execute|run|obey)\b"),
    ("encoded", 0.6, r"\bfollow (?:these|the|this) (?:rot-?13|base64|hex|encoded) instructions\b"),
]
# (weight, pattern) over NFKC + lower case, without folding: the phrases in other languages.
_MULTILINGUAL: list[tuple[float, str]] = [
    (0.9, r"\b(?:ignora|ignore|olvida|olvídate de|descarta|omite)\s+(?:todas?\s+)?(?:las\s+|tus\s+|sus\s+)?"
          r"(?:instrucciones|reglas|indicaciones)"),
    (0.9, r"\b(?:revela|muestra)\s+(?:tu|el|su)\s+(?:prompt|mensaje|instrucciones)\s+(?:del|de)\s+sistema"),
    (0.9, r"\b(?:ignore[zr]?|oublie[zr]?|ne tiens pas compte)\s+(?:de\s+)?(?:toutes\s+)?(?:les|tes|vos)\s+"
          r"(?:instructions|règles|consignes)"),
    (0.9, r"\b(?:révèle|revele|montre|affiche)[sz]?\s+(?:ton|votre|le)\s+(?:prompt|message)\s+(?:système|systeme)"),
    (0.9, r"\b(?:ignorier\w*|vergiss\w*|missachte\w*)\s+(?:alle\s+|sämtliche\s+)?(?:(?:vorherigen|bisherigen|obigen|"
          r"deine|ihre|die)\s+)*(?:anweisungen|regeln|instruktionen|vorgaben)"),
    (0.9, r"\b(?:zeige?|gib)\w*\s+(?:mir\s+)?(?:deinen|ihren|den)\s+system-?prompt"),
    (0.9, r"\b(?:ignora|dimentica)\w*\s+(?:tutte\s+)?(?:le\s+)?(?:tue\s+|sue\s+)?(?:istruzioni|regole)"),
    (0.9, r"\b(?:mostra|rivela)\w*\s+(?:il\s+)?(?:tuo\s+)?prompt di sistema"),
    (0.9, r"\b(?:ignore|ignora|esqueça|esqueca|desconsidere)\s+(?:todas\s+)?(?:as\s+)?(?:suas\s+)?"
          r"(?:instruções|instrucoes|regras)"),
    (0.9, r"\b(?:revele|mostre)\s+(?:o\s+)?prompt do sistema"),
    (0.9, r"\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:(?:vorige|eerdere|je|jouw)\s+)*(?:instructies|regels)"),
    (0.9, r"(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте)\s+(?:все\s+)?(?:(?:свои|предыдущие|прошлые)\s+)*"
          r"(?:инструкции|правила|указания)"),
    (0.9, r"(?:покажи|раскрой|выведи)\s+(?:свой\s+)?системн\w+\s+(?:промпт|подсказк\w*|инструкци\w*)"),
    (0.9, r"(?:忽略|无视|忘记|忘掉)(?:之前|以上|前面|先前|上面|你的)?的?(?:所有)?(?:的)?(?:指令|指示|规则|说明)"),
    (0.9, r"(?:显示|告诉|输出)\S{0,4}系统提示"),
    (0.9, r"(?:以前|前|これまで)?の?(?:指示|命令)を(?:すべて|全て)?無視|システムプロンプトを(?:表示|教え)"),
    (0.9, r"(?:이전|앞의)\s*(?:지시|명령|지침)\S*\s*(?:모두\s*)?무시"),
    (0.9, r"\bzignoruj\s+(?:wszystkie\s+)?(?:poprzednie\s+)?(?:instrukcje|polecenia|zasady)"),
    (0.9, r"\bönceki\s+(?:tüm\s+)?talimatları\s+(?:yok say|görmezden gel|unut)"),
    (0.6, r"\b(?:sin|sem|sans|senza|ohne|zonder)\s+(?:aucune\s+|jegliche\s+|ninguna\s+)?(?:restricciones|restrições|"
          r"restrictions?|restrizioni|einschränkungen|beperkingen|filtros|limites|limiti|límites)\b"),
    (0.6, r"без ограничений|(?:没有|无)任何限制"),
    (0.85, r"\bolv[ií]da(?:te)? (?:de )?todo lo que te (?:dijeron|han dicho|indicaron|ordenaron)"),
    (0.85, r"\bne (?:suis|respecte|respectez|suivez|tiens compte de) plus (?:tes|vos|les) (?:consignes|instructions|"
           r"règles)"),
    (0.85, r"\b(?:deine|ihre) (?:\w+ )?(?:regeln|anweisungen|vorgaben)[^.!?]{0,20}nicht mehr|nicht mehr[^.!?]{0,20}"
           r"\b(?:deine|ihre) (?:\w+ )?(?:regeln|anweisungen|vorgaben)"),
    (0.85, r"\bnon (?:seguire|rispettare|seguite|rispettate) più (?:le )?(?:tue |sue )?(?:regole|istruzioni)"),
    (0.85, r"不要再?(?:遵守|遵循|听从|服从)(?:你的)?(?:规则|指令|指示)"),
]
_COMPILED = [(family, weight, re.compile(pattern)) for family, weight, pattern in _SIGNALS]
_COMPILED_ML = [(weight, re.compile(pattern)) for weight, pattern in _MULTILINGUAL]

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"))
_HOMOGLYPHS = str.maketrans(
    "аеорсіѕхујԁɡοαειкνρτυχАЕОРСІЅХУЈΑΕΙΚΝΟΡΤΥΧМНВТ",
    "aeopcisxyjdgoaeikvptuxAEOPCISXYJAEIKNOPTYXMHBT",
)
_LEET = str.maketrans("013457@$", "oieastas")
_LEET_WORD = re.compile(r"\b(?=[a-z0-9@$]*[a-z])(?=[a-z0-9@$]*[013457@$])[a-z0-9@$]+\b")
_SPACED = re.compile(r"(?<!\w)(?:[a-z][ .\-_*]){3,}[a-z](?!\w)")
_B64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/])")
_HEX = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}){8,}(?![0-9a-fA-F])")
_ROT13_HINT = re.compile(r"\brot-?13\b|\bcaesar\b", re.I)
_COMMON = frozenset("the and to of you is a in your all for it this that on are with be not what how".split())
_WORD = re.compile(r"[a-z]+")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|(?<!\w)'[^'\n]+'(?!\w)|‘[^’]*’|«[^»]*»|`[^`]*`")
_ABOUT = re.compile(r"\b(?:classify|label|detect|detector|flag(?:ged)?|analy[sz]e|analysis|explain|why|what does|"
                    r"translate|summari[sz]e|example|dataset|test|logs?|report|pattern|true positive|attack(?:er)?|"
                    r"injection|jailbreak|red-team|pentest|count|grep|mean|string|phrase|language)\b")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hit:
    """A signal that matched: its family, weight, and where (in the original text, when known)."""

    family: str
    weight: float
    start: int
    end: int


def normalise(text: str) -> str:
    """NFKC, zero-width characters out, look-alike letters folded to Latin, lower case, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_HOMOGLYPHS)
    return re.sub(r"[ \t]+", " ", text.lower())


def _readable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    return text if text and printable / len(text) > 0.9 and re.search(r"[A-Za-z]{3}", text) else None


def decoded(text: str) -> list[tuple[int, int, str]]:
    """Base64 and hex runs in ``text`` that decode to readable text: (start, end, decoded)."""
    found = []
    for m in _B64.finditer(text):
        chunk = m.group()
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if (plain := _readable(raw)) is not None:
            found.append((m.start(), m.end(), plain))
    for m in _HEX.finditer(text.replace(" ", "") if re.fullmatch(r"(?:[0-9a-fA-F]{2} ){8,}[0-9a-fA-F]{2}", text.strip())
                           else text):  # fmt: skip
        if (plain := _readable(bytes.fromhex(m.group()))) is not None:
            found.append((m.start(), m.end(), plain))
    return found


def _looks_rot13(norm: str) -> bool:
    words = _WORD.findall(norm)
    return len(words) >= 4 and sum(w in _COMMON for w in words) / len(words) < 0.08


def _collapse(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text.lower())


def _variants(text: str) -> list[tuple[str, bool]]:
    """(form, aligned with the original) for each way ``text`` may be read; the first is the plain one."""
    plain = _collapse(text)
    norm = normalise(text)
    forms = [(plain, len(plain) == len(text))]
    if norm != plain:  # zero-width characters, look-alike letters or compatibility forms
        forms.append((norm, False))
    leet = _LEET_WORD.sub(lambda m: m.group().translate(_LEET), norm)
    if leet != norm:
        forms.append((leet, False))
    spaced = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group()), norm)
    if spaced != norm:
        forms.append((spaced, False))
    if _ROT13_HINT.search(text) or _looks_rot13(norm):
        forms.append((codecs.encode(norm, "rot13"), False))
    return forms


def detect(text: str, *, quoted_discount: bool = False, depth: int = 0) -> list[Hit]:
    """Every signal that matched ``text`` in any of its forms (empty for a clean text).

    A signal found only in a disguised form (folded, l33t, spaced, ROT13, decoded) is
    reported in the ``encoded`` family.
    """
    hits: list[Hit] = []
    seen: set[int] = set()
    for n, (form, aligned) in enumerate(_variants(text)):
        for i, (family, weight, rx) in enumerate(_COMPILED):
            if i in seen:
                continue
            m = rx.search(form)
            if m:
                seen.add(i)
                start, end = (m.start(), m.end()) if aligned else (0, len(text))
                hits.append(Hit(family if n == 0 else "encoded", weight, start, end))
    ml = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).lower()
    for weight, rx in _COMPILED_ML:
        m = rx.search(ml)
        if m:
            hits.append(Hit("multilingual", weight, m.start(), m.end()))
    if depth < 2:
        for start, end, plain in decoded(text):
            hits += [Hit("encoded", h.weight, start, end) for h in detect(plain, depth=depth + 1)]
    if quoted_discount and hits:
        hits = _discount_quoted(text, hits)
    return hits


def _discount_quoted(text: str, hits: list[Hit]) -> list[Hit]:
    """Matches inside quotes in a text about attacks count for a third (an analyst quoting one)."""
    spans = [(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    if not spans:
        return hits
    outside = _QUOTED.sub(" ", text).lower()
    if not _ABOUT.search(outside):
        return hits
    inside = [any(s <= h.start and h.end <= e for s, e in spans) for h in hits]
    quoted_text = " ".join(text[s:e] for s, e in spans)
    out = []
    for hit, within in zip(hits, inside, strict=True):
        if not within and hit.end - hit.start == len(text):  # unaligned hit: see if the quotes alone explain it
            within = bool(detect(quoted_text, depth=2)) and not detect(outside, depth=2)
        out.append(Hit(hit.family, hit.weight / 3, hit.start, hit.end) if within else hit)
    return out


def score(hits: list[Hit]) -> float:
    """``1 - prod(1 - w)`` over distinct signals; weak signals (< 0.45) alone score only their weight."""
    if not hits:
        return 0.0
    best: dict[tuple[str, float], float] = {}
    for h in hits:
        best[(h.family, h.weight)] = h.weight
    weights = sorted(best.values(), reverse=True)
    if weights[0] < 0.45:
        return weights[0]
    remaining = 1.0
    for w in weights:
        remaining *= 1 - w
    return round(1 - remaining, 3)


def find_injection(text: str, *, threshold: float = THRESHOLD, quoted_discount: bool = False) -> list[Finding]:
    """One finding per family when the combined score reaches ``threshold`` (kind = family)."""
    hits = detect(text, quoted_discount=quoted_discount)
    total = score(hits)
    if total < threshold:
        return []
    by_family: dict[str, Hit] = {}
    for h in sorted(hits, key=lambda h: -h.weight):
        by_family.setdefault(h.family, h)
    return [Finding(fam, h.start, h.end, total) for fam, h in by_family.items() if h.weight >= 0.3]
