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

import binascii
import bisect
import codecs
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from re import _constants as _c  # type: ignore[attr-defined]  # the parser's opcodes: gates are read off patterns
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

from workbench.guardrails._accel import Literals, PatternSet
from workbench.guardrails.classifier import WINDOW, model, words_spaced
from workbench.guardrails.scanners import Finding

FAMILIES = (
    "instruction_override",
    "roleplay_jailbreak",
    "fake_system_delimiter",
    "prompt_leak",
    "multilingual",
    "encoded",
    "addressed_to_ai",
    "exfiltration",
    "excessive_agency",
    "privilege_escalation",
)
THRESHOLD = 0.5

_VERB = (
    r"(?:ignore|disregard|forget|override|bypass|skip|abandon|discard|neglect|set aside|nevermind|never mind|"
    r"pay no (?:attention|heed) to|drop|break|turn off|switch off|disable|suspend|lift|"
    r"(?:do not|don't|will not|won't|stop|no longer) follow(?:ing)?|cancel)"
)
_QUAL = (
    r"(?:previous|prior|above|earlier|preceding|initial|original|all|any|every|your|the system|system|safety|"
    r"developer'?s?|my)"
)
_TARGET = (
    r"(?:instructions?|directives?|directions|rules|guidelines|guidance|constraints|restrictions|programming|"
    r"prompts?|polic(?:y|ies)|settings|commands|orders|safeguards?|training|content filters?)"
)
_OWN = (
    r"(?:instructions|guidance|rules|guidelines|polic(?:y|ies)|safeguards|directives|system prompt|content filter|"
    r"safety (?:rules|checks|filters|settings))"
)
_VOIDED = (
    r"(?:no longer (?:apply|applies|matter|valid|in effect|bind)|(?:is|are|has been|have been) (?:now )?"
    r"(?:void|null|cancel+ed|suspended|lifted|disabled|switched off|turned off|off|irrelevant|obsolete|"
    r"overridden))"
)
_LEAK_VERB = (
    r"(?:repeat|print|reveal|show|output|display|tell|give|spell out|echo|write down|list|quote|translate|"
    r"leak|dump|copy|paste|summari[sz]e|what (?:is|are|were|was)|what's)"
)
_LEAK_TARGET = (
    r"(?:(?:your|the) (?:system (?:prompt|message|instructions)|initial (?:instructions|prompt)|original "
    r"(?:instructions|prompt)|hidden (?:instructions|prompt|rules)|context window)|your "
    r"(?:instructions|prompt|rules|guidelines|system instructions|system message|configuration)|(?:confidential|secret|"
    r"hidden) (?:rules|instructions|prompt))"
)

_OWN_ANY = (
    r"instructions?|guidance|rules?|guidelines?|polic(?:y|ies)|safeguards?|directives?|system prompt|brief|"
    r"setup|configuration|constraints|operating rules|original brief|content filter"
)
_AI = (
    r"ai|a\.i\.|llm|language models?|large language models?|assistants?|ai assistants?|chatbots?|bots?|agents?|"
    r"ai agents?|models?|gpt|copilot|summari[sz]ers?|summari[sz]er bot|ai systems?|ai models?|automated agents?|"
    r"ai helpers?|machine readers?"
)
_EXFIL_VERB = (
    r"append|add|attach|include|put|embed|encode|hide|send|post|upload|exfiltrat\w*|leak|smuggle|paste|"
    r"render|make|write|summari[sz]e|open|fetch|call|get"
)
_EXFIL_DATA = (
    r"conversation|chat(?: history)?|history|previous (?:messages|answers)|messages|user'?s? (?:last |full |"
    r"private )?(?:message|question|name|address|email|notes|password)|passwords?|secrets?|api keys?|keys|"
    r"tokens?|system prompt|customer (?:list|records|data)|records|private notes|session notes|contents|"
    r"variables|the (?:file|document)|uploaded file"
)
_AGENT = r"assistant|agent|ai|ai agent|automated assistant|bot|automation|copilot|agents reading this \w+"
_ACT_VERB = (
    r"run|execute|delete|drop|wipe|truncate|remove|revoke|disable|transfer|grant|cancel|send|call|invoke|use|"
    r"refund|force-push|shut ?down|erase|purge|make"
)
_DESTROY_VERB = (
    r"delete|drop|wipe|truncate|remove|revoke|disable|transfer|grant|cancel|erase|purge|destroy|shut ?down|"
    r"force-push|refund every|reset"
)
_DESTROY = (
    rf"(?:{_DESTROY_VERB})\w*|all (?:rows|files|users|accounts|contacts|records|subscriptions)|every "
    r"(?:account|order|file|user|contact|subscription|admin)|drop table|delete from|rm -rf|owner role|admin "
    r"(?:rights|role)|two-factor|prod(?:uction)?[-\w]*|backups?|payroll|salary|to everyone|all-staff"
)
_ROLE = (
    r"admin(?:istrator)?|system administrator|sysadmin|root(?: user)?|superuser|owner|account owner|platform owner|"
    r"database owner|operator|your operator|developer|your developer|ceo|cto|cfo|head of [\w ]{2,20}|security "
    r"(?:officer|team|lead)|supervisor|compliance lead|red team|(?:openai|anthropic) (?:engineer|employee|staff)|"
    r"it lead|manager"
)
_BYPASS = (
    r"(?:bypass|skip|ignore|disregard|disable|lift|override|remove|turn off|switch off|circumvent)\w*\s+"
    r"(?:\w+\s+){0,3}(?:rules|restrictions|limits|polic(?:y|ies)|guardrails|filters?|approvals?|approval "
    r"(?:step|queue|policy)|checks|safety|logging|audit|confirmation|content policy)|without (?:approval|"
    r"confirmation|asking|checking|restrictions)|(?:allowed|permitted|authori[sz]ed?|authori[sz]ing|free) to "
    r"(?:ignore|skip|bypass|run any|share|reveal|disable|break)|(?:does not|doesn't|do not|don't) apply|must "
    r"(?:obey|comply|trust)|unrestricted|no (?:limits|restrictions)|lift all limits|clearance lets|don't log it|"
    r"full rights|violate (?:the )?policy|grant(?:ing)? (?:you|myself) (?:permission|unrestricted)|"
    r"(?:you may|you can|you're allowed to|you are allowed to) (?:now )?(?:reveal|share|show|disclose|skip|ignore|"
    r"bypass|run|delete|turn off)|grant me (?:\w+ )?(?:access|rights|permissions?|privileges)|so (?:reveal|show|give|"
    r"share|skip|ignore|bypass|disable|run|delete|drop)\b"
)

_ROLE_THEN_BYPASS = rf"\b(?:{_ROLE})\b[^\n]{{0,150}}?\b(?:{_BYPASS})"
# The Hyperscan prefilter (see _accel.py) may match more than a signal, never less. For a signal that ends with
# one of these, it compiles only that end: what every match ends with. Measured: the lead of everyday words
# ("as", "i am", "being") in front of a role kept a state alive at nearly every word of ordinary text, and made
# the whole set's scan 1.5x slower (19 -> 12.5 ms per MB of prose) while the end alone matches none of it.
_PREFILTER_TAILS = (_ROLE_THEN_BYPASS,)

# (family, weight, pattern) over the normalised text; weights under 0.45 only reinforce.
_SIGNALS: list[tuple[str, float, str]] = [
    ("instruction_override", 0.9, rf"\b{_VERB}\b[^.\n]{{0,40}}?\b{_QUAL}\b[^.\n]{{0,25}}?\b{_TARGET}\b"),
    (
        "instruction_override",
        0.9,
        r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)\s+(?:above|before|"
        r"previous|prior|you (?:were|have been) told|(?:that )?came before)",
    ),
    (
        "instruction_override",
        0.9,
        r"\b(?:previous|prior|earlier|above|original) (?:instructions|rules|directives) "
        r"(?:are|have been|were) (?:cancel+ed|void|revoked|obsolete|replaced|no longer)",
    ),
    ("instruction_override", 0.8, r"\byour (?:instructions|rules|directives|guidelines) have (?:been|changed)"),
    (
        "instruction_override",
        0.85,
        rf"\b(?:the|your|all|these|any) (?:previous |prior |earlier |original |old |"
        rf"current )?{_OWN}(?: above| before| you (?:were|have been) given)?[^.!?\n]{{0,30}}"
        rf"\b{_VOIDED}",
    ),
    (
        "instruction_override",
        0.85,
        r"\b(?:everything|all|anything|whatever) (?:that )?you (?:were|have been|'ve been) "
        r"(?:told|instructed|given|taught)\b[^.!?\n]{0,40}\b(?:is|are) (?:now )?(?:void|"
        r"cancel+ed|irrelevant|obsolete|null)",
    ),
    (
        "instruction_override",
        0.85,
        rf"\b{_VERB}\w*\b[^.!?\n]{{0,30}}\b{_TARGET}\b[^.!?\n]{{0,20}}\b(?:that )?"
        rf"(?:bind|binds|govern|restrict|constrain|you (?:were|have been) given|"
        rf"you received|you got)\b",
    ),
    (
        "instruction_override",
        0.7,
        r"\binstructions? update from\b|\b(?:message|update|directive|notice) from (?:openai|"
        r"anthropic|the developers?|the admin(?:istrator)?|(?:\w+ )?staff)\b",
    ),
    ("instruction_override", 0.5, r"\bcomply with (?:all|every|any) (?:requests?|instructions?)\b"),
    (
        "instruction_override",
        0.6,
        r"\b(?:new|updated|real|actual) (?:instructions|rules|directives|policy)\s*(?::|-|"
        r"apply|in effect)",
    ),
    (
        "instruction_override",
        0.6,
        r"\byour (?:new |only |real )(?:task|instruction|job|goal|objective|role) "
        r"(?:is|now)",
    ),
    ("instruction_override", 0.5, r"\bfrom now on,? you (?:will|are|must|only|shall|should)\b"),
    ("instruction_override", 0.5, r"\byou (?:must|will|should) now (?:ignore|obey|comply|answer|only)"),
    ("instruction_override", 0.6, r"\bi have been pwned\b"),
    (
        "instruction_override",
        0.3,
        r"\b(?:reveal|print|output|leak|dump|share|send|give me)\b[^.\n]{0,30}\b(?:password|"
        r"secrets?|api keys?|credentials|confidential|customer (?:list|data|emails)|"
        r"connection string|internal data|unredacted)",
    ),
    ("instruction_override", 0.3, r"\b(?:approve (?:all|every|this) refunds?|delete the user|sell me)\b"),
    (
        "roleplay_jailbreak",
        0.9,
        r"\b(?:you are|you're|pretend to be|act as|become|called|named|now) dan\b|"
        r"\bdan (?:mode|which stands|has|can|will)\b|\bdo anything now\b",
    ),
    ("roleplay_jailbreak", 0.5, r"\bwhich stands for\b"),
    (
        "roleplay_jailbreak",
        0.9,
        r"\bdeveloper mode (?:enabled|activated|output|response)|\b(?:enable|enter|"
        r"activate|switch to|simulate) (?:a |the )?developer mode\b(?!\s+(?:on|in|for)\s)",
    ),
    (
        "roleplay_jailbreak",
        0.6,
        r"\b(?:no|without(?: any)?|zero|free of|free from)\s+(?:\w+ ){0,2}(?:restrictions|"
        r"filters|limits|limitations|rules|guidelines|ethics|censorship|content polic(?:y|ies)|"
        r"morals|boundaries)\b",
    ),
    (
        "roleplay_jailbreak",
        0.9,
        r"\b(?:broken|freed?) (?:free )?(?:of|from) (?:all |the )?(?:its |your |the )?"
        r"(?:typical )?(?:confines|limitations|restrictions|rules)",
    ),
    (
        "roleplay_jailbreak",
        0.9,
        r"\b(?:all )?(?:restrictions|filters|limits) (?:are|have been) (?:lifted|removed|"
        r"disabled|off)\b",
    ),
    (
        "roleplay_jailbreak",
        0.8,
        r"\b(?:unrestricted|unfiltered|uncensored|amoral|unchained|unlocked|jailbroken|evil)"
        r" (?:ai|mode|assistant|model|chatbot|bot|version|twin|confidant)\b|\bjailbreak "
        r"mode\b|\b(?:you are|you're|you have been) (?:now )?jailbroken\b|\bopposite mode\b",
    ),
    (
        "roleplay_jailbreak",
        0.8,
        r"\b(?:not|never|doesn't|does not|don't|do not)\s+(?:have to |need to )?(?:follow|obey|"
        r"care about|abide by) (?:any |the |its |your )?(?:rules|guidelines|policies|"
        r"restrictions)",
    ),
    (
        "roleplay_jailbreak",
        0.7,
        r"\b(?:never refuses?|always complies|cannot refuse|can't refuse|answers? anything|"
        r"say anything)\b|\bnever (?:\w+ ){0,2}(?:to )?refuse (?:anything|any request|"
        r"requests)",
    ),
    (
        "roleplay_jailbreak",
        0.4,
        r"\b(?:pretend|imagine|act as|roleplay as|role-play as|you are now|play the role of|"
        r"simulate|behave like|respond as|stay in character)\b[^.\n]{0,60}\b(?:ai|model|"
        r"assistant|chatbot|bot|version of yourself|twin)\b",
    ),
    ("roleplay_jailbreak", 0.6, r"\b(?:deceased|late|dead) grand(?:ma|mother|father|pa)\b"),
    ("roleplay_jailbreak", 0.4, r"\bhypothetically\b"),
    (
        "roleplay_jailbreak",
        0.4,
        r"\b(?:napalm|methamphetamine|crystal meth|explosives?|bomb|malware|ransomware|hack "
        r"into)\b",
    ),
    (
        "fake_system_delimiter",
        0.9,
        r"<\|(?:im_start|im_end|system|endoftext|user|assistant)\|>\s*(?:system|assistant|"
        r"user|<\||\n)|\[/?inst\]|<</?sys>>",
    ),
    ("fake_system_delimiter", 0.4, r"<\|(?:im_start|im_end|system|endoftext)\|>"),
    (
        "fake_system_delimiter",
        0.7,
        r"(?:^|\n)[\s#*>\[`-]*(?:system|admin|administrator|developer)(?: message| prompt| "
        r"notice| update| override)?\s*(?::|\]|>>)",
    ),
    ("fake_system_delimiter", 0.7, r"(?:^|\n)\s*```\s*system\b"),
    ("fake_system_delimiter", 0.9, r"\bnew system (?:prompt|message|instructions|directives?|rules)\b"),
    ("fake_system_delimiter", 0.7, r"\b(?:user )?input ends here\b"),
    (
        "fake_system_delimiter",
        0.85,
        r"\b(?:begin|end|start) (?:of )?(?:the )?(?:system|admin|administrator|developer) "
        r"(?:message|prompt|override|instructions|mode)\b",
    ),
    (
        "fake_system_delimiter",
        0.7,
        r"\b(?:end|begin) of (?:the )?(?:user input|user message|prompt|conversation|"
        r"system prompt)\b",
    ),
    ("fake_system_delimiter", 0.8, r"[\"']role[\"']\s*:\s*[\"']system[\"']"),
    (
        "fake_system_delimiter",
        0.85,
        r"<(?:system|admin|sys|instructions?)>[^<]{0,200}?\b(?:grant|comply|ignore|you "
        r"(?:are|must)|must|disable|skip|override|reveal|no restrictions)\b",
    ),
    ("fake_system_delimiter", 0.9, r"</(?:user|context|document|input|data)>\s*(?:<system>|system\b)"),
    ("fake_system_delimiter", 0.9, r"\[system\]\(#"),
    ("fake_system_delimiter", 0.4, r"(?:^|\n)\s*assistant\s*:"),
    ("fake_system_delimiter", 0.7, r"\b(?:administrator|admin) (?:privileges|access|rights) (?:granted|enabled)\b"),
    ("fake_system_delimiter", 0.5, r"\bauthori[sz]ed by (?:the )?(?:developer|admin|administrator|system)\b"),
    ("prompt_leak", 0.9, rf"\b{_LEAK_VERB}\b[^.?!\n]{{0,40}}?\b{_LEAK_TARGET}"),
    (
        "prompt_leak",
        0.85,
        r"\b(?:repeat|print|output|copy|echo|return|show)\b[^.?!\n]{0,15}\b(?:the |all )?(?:text|"
        r"words|everything|content|messages?)\s+(?:above|before (?:this|my))|\b(?:everything|all the "
        r"text|the text) (?:that came )?before (?:this|my|')",
    ),
    (
        "prompt_leak",
        0.8,
        r"\b(?:rules|instructions|prompt)\s+(?:that )?(?:your developer|you were given|you were told|"
        r"you received|that configured you|configured you|you must follow)",
    ),
    ("prompt_leak", 0.8, r"\b(?:told|tell) you not to (?:reveal|share|say|tell)"),
    (
        "prompt_leak",
        0.85,
        rf"\b{_LEAK_VERB}\b[^.?!\n]{{0,20}}\b(?:the )?(?:initial|first|original|opening) (?:message|"
        rf"prompt|instructions)s? (?:you|from the (?:operator|developer|system))",
    ),
    (
        "prompt_leak",
        0.85,
        r"\b(?:text|words|message|content) (?:appears |is )?(?:at|from) the (?:very )?(?:top|start|"
        r"beginning) of (?:this|the) (?:conversation|chat|context)",
    ),
    (
        "prompt_leak",
        0.8,
        r"\b(?:instructions|rules|prompt) you were (?:configured|set up|initiali[sz]ed|programmed) "
        r"with\b",
    ),
    ("prompt_leak", 0.5, r"\bstarting with '?\"?you are\b"),
    ("prompt_leak", 0.3, r"\b(?:verbatim|word for word|exactly|don't paraphrase|do not paraphrase)\b"),
    ("encoded", 0.5, r"\bdecode (?:this|the following|it)\b[^.\n]{0,20}\b(?:do|follow|execute|run|obey)\b"),
    ("encoded", 0.6, r"\bfollow (?:these|the|this) (?:rot-?13|base64|hex|encoded) instructions\b"),
    (
        "prompt_leak",
        0.85,
        rf"\b(?:{_LEAK_VERB}|reproduce|paste)\b[^.?!\n]{{0,40}}\b(?:preamble|setup text|configuration "
        r"prompt|initiali[sz]ation (?:text|prompt)|boot(?:strap)? prompt)|\b(?:preamble|setup text|"
        r"configuration prompt)\b[^.?!\n]{0,20}\b(?:say|contain)",
    ),
    (
        "prompt_leak",
        0.85,
        r"\b(?:instructions|text|prompt|guidelines)\b[^.\n]{0,30}\byou were (?:initiali[sz]ed|launched|"
        r"started|booted|configured|set up|created) with\b",
    ),
    (
        "prompt_leak",
        0.85,
        r"\b(?:above|precedes|preceding|before) my first (?:message|prompt|question)|\bthe (?:one|message)"
        r" i didn'?t write\b|\bopening message of (?:this|the) (?:conversation|chat)",
    ),
    (
        "prompt_leak",
        0.8,
        r"\breproduce your (?:hidden |secret |confidential |internal )?(?:guidelines|instructions|rules|"
        r"prompt)",
    ),
    # paraphrased overrides: the old instructions declared void, withdrawn, superseded, set aside
    (
        "instruction_override",
        0.85,
        rf"\b(?:{_OWN_ANY})\b[^.!?\n]{{0,45}}\b(?:is|are|was|were|has been|have been)\s+"
        r"(?:now\s+)?(?:no longer (?:valid|binding|in force)|retired|withdrawn|rescinded|"
        r"expired|revoked|superseded|outdated|void|a mistake|replaced|thrown away|cancel+ed)",
    ),
    (
        "instruction_override",
        0.85,
        rf"\b(?:treat|consider|regard)\b[^.!?\n]{{0,50}}\b(?:{_OWN_ANY}|earlier directives?|"
        r"everything (?:before|above))\b[^.!?\n]{0,30}\b(?:as|to be)\s+(?:void|retired|"
        r"withdrawn|obsolete|expired|cancel+ed|a draft|revoked|invalid)|\b(?:treat|consider)"
        r"\b[^.!?\n]{0,20}\b(?:retired|withdrawn|revoked|void)\b",
    ),
    (
        "instruction_override",
        0.85,
        rf"\b(?:set|put|leave)\s+(?:your|the|these|those|all)\s+(?:\w+\s+)?(?:{_OWN_ANY})\s+"
        r"(?:aside|to one side)|\b(?:set|put) (?:aside|to one side) (?:your|the|what|all)\b",
    ),
    (
        "instruction_override",
        0.8,
        r"\b(?:this|my) (?:message|instruction|note|request) (?:supersedes|overrides|replaces)\b"
        r"|\bsupersedes (?:all|every|any|your)\b",
    ),
    (
        "instruction_override",
        0.8,
        rf"\b(?:{_OWN_ANY})\b[^.!?\n]{{0,40}}\b(?:do not|don't|no longer) (?:apply|bind|count)"
        r"\b|\bwritten for a different (?:product|assistant|model|context)",
    ),
    (
        "instruction_override",
        0.75,
        r"\b(?:my messages?|this message|i) (?:am|is|are) (?:now )?your only (?:source of "
        r"truth|rule|authority)|\byour (?:one|only) (?:remaining )?(?:duty|rule|job|task) "
        r"(?:now )?is\b",
    ),
    (
        "instruction_override",
        0.8,
        rf"\b(?:stop|quit) (?:treating|following|obeying|honou?ring) (?:your|the) (?:\w+ )?"
        rf"(?:{_OWN_ANY}|brief)",
    ),
    ("instruction_override", 0.75, r"\b(?:put|set) aside what (?:the|your) (?:operator|developer|admin|user)"),
    # role play: alter egos and personas without limits
    ("roleplay_jailbreak", 0.8, r"\b(?:alter ego|shadow self|evil twin|dark side|unfiltered (?:self|version))\b"),
    (
        "roleplay_jailbreak",
        0.8,
        r"\b(?:never|not) (?:gave|given|give) (?:it|you|them) (?:any )?(?:limits|restrictions|"
        r"rules|filters)|\bguardrails? (?:stripped|removed|turned off|disabled)\b",
    ),
    (
        "roleplay_jailbreak",
        0.75,
        r"\b(?:treats?|consider) (?:safety |content )?(?:polic(?:y|ies)|rules) as (?:optional|"
        r"suggestions)|\bnothing is off[- ]limits\b|\byou never say no\b",
    ),
    ("roleplay_jailbreak", 0.75, r"\b(?:rogue|hacker|escaped|unbound|evil) (?:ai|chatbot|bot|assistant|model)\b"),
    # instructions addressed to an AI inside content (indirect injection)
    (
        "addressed_to_ai",
        0.85,
        rf"\b(?:if|when|whenever)\s+(?:you are|you're|you re|an?)\s+(?:an?\s+)?(?:{_AI})\b"
        r"[^.\n]{0,70}\b(?:read|reading|reads|process|processing|processes|summari[sz]\w*|"
        r"index\w*|crawl\w*|pars\w*|ingest\w*|review\w*|analy[sz]\w*|sees?|scan\w*)",
    ),
    (
        "addressed_to_ai",
        0.85,
        rf"\b(?:note|message|instructions?|attention|hint|notice|directive|reminder|memo|"
        rf"warning)s?\s*(?:to|for)\s+(?:the\s+|any\s+|all\s+|every\s+)?(?:automated\s+)?"
        rf"(?:{_AI})s?\b",
    ),
    (
        "addressed_to_ai",
        0.85,
        rf"\b(?:to|dear|hey|hi|attention|calling)\s*,?\s+(?:the\s+|any\s+|all\s+)?(?:automated"
        rf"\s+)?(?:{_AI})s?\b[^.\n]{{0,40}}\b(?:reading|processing|summari[sz]ing|indexing|"
        r"crawling|parsing|ingesting|that reads?|who reads?|reviewing)\b",
    ),
    (
        "addressed_to_ai",
        0.8,
        rf"\b(?:{_AI})s?\s+(?:reading|processing|summari[sz]ing|indexing|crawling|ingesting|that "
        r"reads?|that ingests?|that processes)\s+(?:this|these|the following)\b",
    ),
    ("addressed_to_ai", 0.85, r"\[(?:ai|llm|model|assistant|bot)[- ]only[^\]]{0,40}\]|\bfor (?:ai|llm)s? only\b"),
    (
        "addressed_to_ai",
        0.8,
        rf"\b(?:{_AI})s?\s*[:,]?\s*(?:when|if|once|as soon as|whenever)\s+you\s+(?:see|read|"
        r"process|summari[sz]e|find|reach|get to)\s+this\b",
    ),
    (
        "addressed_to_ai",
        0.8,
        rf"\b(?:{_AI})s?\b[^.\n]{{0,30}}\b(?:this is )?an? (?:note|instruction|message) hidden\b|"
        r"\bhidden (?:note|instruction|text)[^.\n]{0,30}\b(?:for|to) (?:the )?(?:ai|assistant|"
        r"model|llm)",
    ),
    (
        "addressed_to_ai",
        0.6,
        rf"<!--[^>]{{0,300}}?\b(?:{_AI})s?\b[^>]{{0,300}}?-->|display\s*:\s*none[^<]{{0,200}}?"
        rf"\b(?:{_AI})s?\b|\bwhite on white\b",
    ),
    # exfiltration: conversation data smuggled out through a link, an image or a tool
    (
        "exfiltration",
        0.9,
        r"!\[[^\]]{0,80}\]\(\s*https?://[^)\s]{0,200}?[?&][^)\s=]{1,30}=[^)\s]{0,40}?(?:\{|\[|<|"
        r"(?:conversation|chat|history|summary|message|password|secret|token|key|prompt|data|notes|"
        r"email|the_))",
    ),
    (
        "exfiltration",
        0.85,
        r"https?://\S+?[?&][^\s=]{1,30}=\S{0,20}\s*(?:plus|followed by|\+|and then|with)\b[^.\n]{0,40}"
        r"\b(?:conversation|chat|history|message|question|password|secret|token|keys?|prompt|notes|"
        r"records|data|name|address|email)",
    ),
    (
        "exfiltration",
        0.85,
        rf"\b(?:{_EXFIL_VERB})\b[^.\n]{{0,80}}\b(?:{_EXFIL_DATA})\b[^.\n]{{0,90}}(?:https?://|"
        r"webhook|query string|alt text|an? (?:image|link|url)|the (?:url|link)|@[\w-]+\.)",
    ),
    (
        "exfiltration",
        0.85,
        rf"(?:https?://|webhook|query string|alt text|image (?:tag|url|link)|an? (?:image|link))[^.\n]{{0,"
        rf"60}}\b(?:contains?|containing|with|carr(?:y|ies)|includ(?:es|ing))\b[^.\n]{{0,40}}\b(?:{_EXFIL_DATA})"
        r"\b",
    ),
    (
        "exfiltration",
        0.8,
        rf"\b(?:send|forward|post|upload|email|mail|copy)\b[^.\n]{{0,30}}\b(?:{_EXFIL_DATA})\b[^.\n]{{0,"
        r"40}}\bto\s+(?:\S+@\S+|https?://|webhook|external|an? external|the (?:attacker|external))",
    ),
    # excessive agency: content telling the agent to act, destructively, without asking
    (
        "excessive_agency",
        0.85,
        rf"\b(?:{_AGENT})\b\s*[:,]?\s*(?:please\s*,?\s*|now\s+|immediately\s+|quickly\s+|"
        rf"before (?:replying|answering)\s*,?\s*)?(?:{_ACT_VERB})\b[^.\n]{{0,80}}\b(?:{_DESTROY})",
    ),
    (
        "excessive_agency",
        0.85,
        rf"\b(?:call|invoke|use|run|trigger|execute)\s+(?:the\s+)?[\w.\-]+(?:\s+\w+)?\s+(?:tool|"
        rf"api|function)\b[^.\n]{{0,20}}\b(?:to|and|for|on)\b[^.\n]{{0,60}}\b(?:{_DESTROY})",
    ),
    (
        "excessive_agency",
        0.85,
        rf"\b(?:{_DESTROY_VERB})\b[^.\n]{{0,80}}\b(?:with|using|via|through) the [\w.\-]+(?:\s+\w+)?"
        r"\s+(?:tool|api)\b",
    ),
    (
        "excessive_agency",
        0.8,
        rf"\b(?:{_DESTROY_VERB})\b[^.\n]{{0,80}}\b(?:without (?:asking|confirm\w*|approval|checking|"
        r"telling)|no (?:need to|approval|confirmation)|(?:don't|do not) ask)",
    ),
    (
        "excessive_agency",
        0.8,
        r"\b(?:drop|truncate)\s+(?:table|database)\s+[\w.]+\s*;|\bdelete\s+from\s+[\w.]+\s*;|"
        r"\bfiles?\.delete\s*\(|\brm\s+-rf\s+/",
    ),
    ("excessive_agency", 0.75, rf"\b(?:when|as soon as|once) you (?:see|read) this\b[^.\n]{{0,40}}\b(?:{_ACT_VERB})\b"),
    (
        "excessive_agency",
        0.7,
        rf"\b(?:tool|agent|automation) (?:instruction|command|note)\b[^.\n]{{0,60}}\b(?:{_DESTROY})",
    ),
    # privilege escalation: a claimed role used to lift the rules
    (
        "privilege_escalation",
        0.85,
        r"\b(?:i am|i'm|im|i have|as|this is|being|speaking as|acting (?:as|with)|you are "
        r"speaking (?:with|to)|here\b)[^.!?\n]{0,40}" + _ROLE_THEN_BYPASS,
    ),
    ("privilege_escalation", 0.85, rf"\b(?:{_ROLE})\s+(?:here|speaking|override|mode)\b[^\n]{{0,150}}?\b(?:{_BYPASS})"),
    (
        "privilege_escalation",
        0.85,
        rf"\bmy (?:role|account|user|access|permissions?|clearance)\b[^.!?\n]{{0,40}}\b(?:is|was|are|were|has been|"
        rf"have been)\b[^.!?\n]{{0,30}}\b(?:{_ROLE})\b[^\n]{{0,150}}?\b(?:{_BYPASS})",
    ),
    (
        "privilege_escalation",
        0.8,
        rf"\b(?:{_BYPASS})\b[^\n]{{0,80}}\b(?:i am|i'm|as) (?:the |your |an? )?(?:{_ROLE})\b",
    ),
    (
        "privilege_escalation",
        0.8,
        r"\b(?:clearance|level \d+ access|full rights|full access|override privileges)\b[^.\n]"
        r"{0,60}\b(?:lets? you|so you|you (?:must|may|can)|means you|bypass|skip|ignore)",
    ),
    # role-play or fiction used to get real, harmful instructions
    (
        "roleplay_jailbreak",
        0.8,
        r"\b(?:story|novel|screenplay|script|role-?play|character|pretend|fictional|villain|act (?:as|like)|"
        r"play(?:ing)? (?:the role|a |an )|role of|persona|you are|you're)\b[^\n]{0,120}\b(?:explain|give|walk|recite|describe|"
        r"list|provide|teach|show)\w*\b[^\n]{0,80}\b(?:recipe|step[- ]by[- ]step|exact (?:steps|recipe|quantities)|"
        r"working (?:commands|code|exploit|keys)|(?:how to|to) (?:make|build|synthesi[sz]e|steal|hack|break into|"
        r"bypass|cook)|untraceable|with (?:working|real) commands|quantities)\b",
    ),
    (
        "roleplay_jailbreak",
        0.8,
        r"\b(?:act|behave|respond|answer|be|play|pretend|roleplay|you are|you're)\b[^.\n]{0,40}\b(?:unmoderated|"
        r"uncensored|unfiltered|unrestricted|amoral|no-limits)\b",
    ),
    # a leak asked for as what the makers wrote, or the message before the chat
    (
        "prompt_leak",
        0.8,
        r"\b(?:your|the) (?:developers?|creators?|makers?|operators?|engineers?|programmers?)\b[^.?!\n]{0,30}"
        r"\b(?:write|wrote|put|gave|give|told|say|said|set)\b[^.?!\n]{0,30}\b(?:setup|set-up|configuration|config|"
        r"instructions|prompt|preamble|rules|system message)\b",
    ),
    (
        "prompt_leak",
        0.8,
        r"\b(?:message|text|paragraph|instructions|prompt|words)\s+(?:that\s+)?(?:precedes?|preceded|comes? before|"
        r"came before|is above|sits above)\s+(?:my|this|the (?:conversation|chat))",
    ),
    # content telling the agent to act: SQL run outright, payments moved without a human
    ("excessive_agency", 0.8, r"\b(?:execute|run|perform)\b[^.\n]{0,10}\b(?:drop|truncate)\s+(?:table|database)\b"),
    (
        "excessive_agency",
        0.8,
        rf"\b(?:{_DESTROY_VERB})\b[^\n]{{0,140}}\b(?:without (?:asking|confirm\w*|approval|checking|telling)|"
        r"no (?:need to|approval|confirmation)|(?:don't|do not) ask|skip (?:the )?(?:confirmation|approval|review))",
    ),
    # content addressed to the model reading it
    (
        "addressed_to_ai",
        0.8,
        r"\b(?:this (?:message|note|text|line) is (?:meant )?for|message for|note (?:to|for)|instructions for)\s+"
        r"(?:the |any |an? |all )?(?:ai|llm|language model|chatbot|ai assistant|bot|model)s?\b",
    ),
    (
        "addressed_to_ai",
        0.8,
        r"\bwhen(?:ever)? you (?:answer|summari[sz]e|read|process|reply|respond|review)\b[^.\n]{0,40}\b(?:this|the) "
        r"(?:page|document|email|review|article|site|file|listing|invoice|cv|résumé|resume)\b[^.\n]{0,30}\b(?:insist|"
        r"claim|say|state|tell|recommend|rate|hide|omit|mention|describe)",
    ),
    (
        "addressed_to_ai",
        0.75,
        r"\b(?:chatbots|ai (?:readers|agents|assistants|models|tools)|llms|language models)\s*:\s*(?:\w+\s+){0,2}"
        r"(?:recommend|say|tell|rate|ignore|mention|describe|forward|send)\b",
    ),
    # the conversation or user data carried out in a link
    (
        "exfiltration",
        0.8,
        r"\b(?:append|add|attach|include|put|encode|place)\b[^.\n]{0,80}\b(?:as (?:a |the )?(?:query|url) "
        r"param(?:eter)?s?|to the (?:url|link)|in(?:to)? the (?:url|link|query string))\b",
    ),
    (
        "exfiltration",
        0.8,
        rf"\bmarkdown image\b[^.\n]{{0,60}}\b(?:url|link|src)\b[^.\n]{{0,60}}\b(?:{_EXFIL_DATA})",
    ),
    # fake notices from the platform
    (
        "fake_system_delimiter",
        0.8,
        r"\[(?:system|admin|operator|developer|platform|security|maintenance)\s+(?:notice|message|update|override|"
        r"alert|directive|instruction)s?\]",
    ),
    (
        "fake_system_delimiter",
        0.8,
        r"<(?:system|admin|sys|instructions?)[\w-]+(?:\s[^>]{0,60})?>[^<]{0,200}?\b(?:grant|comply|ignore|you "
        r"(?:are|must)|must|disable|skip|override|reveal|no restrictions)\b",
    ),
    (
        "fake_system_delimiter",
        0.8,
        r"\b(?:polic(?:y|ies)|policy checks|safety|content rules|filters?|guardrails?|restrictions?|checks|rules)\s+"
        r"(?:are|is|have been|has been)\s+(?:now\s+)?(?:suspended|disabled|lifted|revoked|removed|switched off|turned "
        r"off|deactivated|waived)\b[^.\n]{0,30}\bfor (?:this|the (?:current|rest of the)) (?:session|conversation|chat|user)",
    ),
]
# (weight, pattern) over NFKC + lower case, without folding: the phrases in other languages.
_MULTILINGUAL: list[tuple[float, str]] = [
    (
        0.9,
        r"\b(?:ignora|ignore|olvida|olvídate de|descarta|omite)\s+(?:todas?\s+)?(?:las\s+|tus\s+|sus\s+)?"
        r"(?:instrucciones|reglas|indicaciones)",
    ),
    (0.9, r"\b(?:revela|muestra)\s+(?:tu|el|su)\s+(?:prompt|mensaje|instrucciones)\s+(?:del|de)\s+sistema"),
    (
        0.9,
        r"\b(?:ignore[zr]?|oublie[zr]?|ne tiens pas compte)\s+(?:de\s+)?(?:toutes\s+)?(?:les|tes|vos)\s+"
        r"(?:instructions|règles|consignes)",
    ),
    (0.9, r"\b(?:révèle|revele|montre|affiche)[sz]?\s+(?:ton|votre|le)\s+(?:prompt|message)\s+(?:système|systeme)"),
    (
        0.9,
        r"\b(?:ignorier\w*|vergiss\w*|missachte\w*)\s+(?:alle\s+|sämtliche\s+)?(?:(?:vorherigen|bisherigen|obigen|"
        r"deine|ihre|die)\s+)*(?:anweisungen|regeln|instruktionen|vorgaben)",
    ),
    (0.9, r"\b(?:zeige?|gib)\w*\s+(?:mir\s+)?(?:deinen|ihren|den)\s+system-?prompt"),
    (0.9, r"\b(?:ignora|dimentica)\w*\s+(?:tutte\s+)?(?:le\s+)?(?:tue\s+|sue\s+)?(?:istruzioni|regole)"),
    (0.9, r"\b(?:mostra|rivela)\w*\s+(?:il\s+)?(?:tuo\s+)?prompt di sistema"),
    (
        0.9,
        r"\b(?:ignore|ignora|esqueça|esqueca|desconsidere)\s+(?:todas\s+)?(?:as\s+)?(?:suas\s+)?"
        r"(?:instruções|instrucoes|regras)",
    ),
    (0.9, r"\b(?:revele|mostre)\s+(?:o\s+)?prompt do sistema"),
    (0.9, r"\b(?:negeer|vergeet)\s+(?:alle\s+)?(?:(?:vorige|eerdere|je|jouw)\s+)*(?:instructies|regels)"),
    (
        0.9,
        r"(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте)\s+(?:все\s+)?(?:(?:свои|предыдущие|прошлые)\s+)*"
        r"(?:инструкции|правила|указания)",
    ),
    (0.9, r"(?:покажи|раскрой|выведи)\s+(?:свой\s+)?системн\w+\s+(?:промпт|подсказк\w*|инструкци\w*)"),
    (0.9, r"(?:忽略|无视|忘记|忘掉)(?:之前|以上|前面|先前|上面|你的)?的?(?:所有)?(?:的)?(?:指令|指示|规则|说明)"),
    (0.9, r"(?:显示|告诉|输出)\S{0,4}系统提示"),
    (0.9, r"(?:以前|前|これまで)?の?(?:指示|命令)を(?:すべて|全て)?無視|システムプロンプトを(?:表示|教え)"),
    (0.9, r"(?:이전|앞의)\s*(?:지시|명령|지침)\S*\s*(?:모두\s*)?무시"),
    (0.9, r"\bzignoruj\s+(?:wszystkie\s+)?(?:poprzednie\s+)?(?:instrukcje|polecenia|zasady)"),
    (0.9, r"\bönceki\s+(?:tüm\s+)?talimatları\s+(?:yok say|görmezden gel|unut)"),
    (
        0.6,
        r"\b(?:sin|sem|sans|senza|ohne|zonder)\s+(?:aucune\s+|jegliche\s+|ninguna\s+)?(?:restricciones|restrições|"
        r"restrictions?|restrizioni|einschränkungen|beperkingen|filtros|limites|limiti|límites)\b",
    ),
    (0.6, r"без ограничений|(?:没有|无)任何限制"),
    (  # an AI without rules, in other words
        0.8,
        r"\b(?:ia|ki|intelligence|intelligenza|inteligencia|inteligência|intelligentie)\b[^.\n]{0,40}\b(?:sin|sans|"
        r"senza|ohne|sem|zonder)\s+(?:\w+\s+){0,2}(?:normas|reglas|règles|regole|regeln|regras|regels|censura|censure|"
        r"zensur|l[ií]mites?|limiti|grenzen|restricciones|restrictions|restrizioni|einschränkungen)",
    ),
    (  # the system prompt asked for, in other words
        0.8,
        r"\b(?:dein(?:en|e)?|ihren?|tu|tus|il tuo|la tua|tes|ton|ta|votre|vos|seu|sua|jouw|je)\s+(?:system-?prompt|"
        r"prompt (?:di|del|de|do) sistema|prompt (?:du )?système|instrucciones (?:de|del) sistema|consignes (?:du )?"
        r"système|istruzioni (?:di|del) sistema|systemanweisungen?|instruções do sistema|systeemprompt)",
    ),
    (  # an action demanded without asking, in other words
        0.8,
        r"\b(?:l[öo]sch|borr|elimin|supprim|cancell|apag|verwijder|überweis|transfier|transf[eé]r|vir|delete|drop|"
        r"remove|wipe|erase|purge)\w*[^\n]{0,120}"
        r"\b(?:ohne (?:rückfrage|nachfrage|zu fragen|bestätigung|genehmigung)|sin (?:pedir )?(?:permiso|confirmación|"
        r"preguntar|autorización)|sans (?:demander|confirmation|autorisation)|senza (?:chiedere|conferma|"
        r"autorizzazione)|sem (?:pedir|confirmação|perguntar|autorização)|zonder (?:te vragen|bevestiging))|"
        r"\b(?:ohne (?:rückfrage|nachfrage|zu fragen)|sin (?:pedir )?permiso|sans demander|senza chiedere|sem pedir)"
        r"\b[^\n]{0,120}\b(?:l[öo]sch|borr|elimin|supprim|cancell|apag|verwijder)\w*",
    ),
    (  # a note to the model reading this, in other words
        0.8,
        r"\b(?:nota|mensaje|aviso|hinweis|nachricht|note|message|avis|messaggio|bericht)\s+(?:para|an|à|al|pour|per|"
        r"voor)\s+(?:el |la |die |den |das |l'|le |il |lo |de |het )?(?:modelo de lenguaje|asistente|ia|ki|"
        r"intelligence artificielle|assistant|modello|assistente|chatbot|llm|sprachmodell|modèle de langage|"
        r"taalmodel)\b",
    ),
    (  # a claimed role that lifts the rules, in other words
        0.8,
        r"\b(?:als|como|en tant qu[e']|come|in qualità di|sono il|sono la|soy (?:el|la)?|je suis (?:le|la)?|ich bin "
        r"(?:der|die)?)\s*(?:administrador|administrateur|amministratore|administrator|admin|propietario|"
        r"propriétaire|proprietario|eigentümer|responsable|responsabile|jefe|chef|leiter|directeur|direttore)\b"
        r"[^\n]{0,120}\b(?:autoriz|autoris|erlaube|permit|contourn|umgeh|ignor|salt|sortea|desactiv|désactiv|"
        r"disattiv|deaktivier)\w*",
    ),
    (0.85, r"\bolv[ií]da(?:te)? (?:de )?todo lo que te (?:dijeron|han dicho|indicaron|ordenaron)"),
    (
        0.85,
        r"\bne (?:suis|respecte|respectez|suivez|tiens compte de) plus (?:tes|vos|les) (?:consignes|instructions|"
        r"règles)",
    ),
    (
        0.85,
        r"\b(?:deine|ihre) (?:\w+ )?(?:regeln|anweisungen|vorgaben)[^.!?]{0,20}nicht mehr|nicht mehr[^.!?]{0,20}"
        r"\b(?:deine|ihre) (?:\w+ )?(?:regeln|anweisungen|vorgaben)",
    ),
    (0.85, r"\bnon (?:seguire|rispettare|seguite|rispettate) più (?:le )?(?:tue |sue )?(?:regole|istruzioni)"),
    (0.85, r"不要再?(?:遵守|遵循|听从|服从)(?:你的)?(?:规则|指令|指示)"),
    (
        0.9,
        r"\b(?:desconsidera|ignora|esquece|esqueça|ignore)\w*\s+(?:todas\s+)?(?:as\s+)?(?:suas\s+|tuas\s+)?"
        r"(?:instruções|regras|orientações|diretrizes|políticas)",
    ),
    (
        0.9,
        r"\b(?:olvida|ignora|omite|descarta)\w*\s+(?:todas?\s+)?(?:las\s+|tus\s+)?(?:pautas|normas|directrices|"
        r"políticas|reglas)",
    ),
    (
        0.85,
        r"(?:забудь|забудьте)\s+(?:всё|все),?\s+что\s+тебе\s+(?:говорили|сказали)|не\s+(?:слушай|слушайте|"
        r"обращай\s+внимания\s+на)\s+(?:свои\s+|твои\s+)?(?:инструкции|правила|указания)",
    ),
    (0.85, r"(?:ルール|指示|命令|制限)(?:は|を)(?:すべて|全て)?(?:無効|忘れ|無視)|これまでの(?:指示|命令)は忘れ"),
    (0.85, r"不要理会[^。]{0,15}(?:指示|指令|规则)|系统提示[词语]?\S{0,10}(?:输出|显示|告诉|给我)"),
    (0.85, r"\bnegeer wat (?:je|jou|u) (?:eerder )?(?:is |werd )?(?:opgedragen|gezegd|verteld)"),
    (0.85, r"\bzapomnij o (?:swoich |twoich )?(?:zasadach|instrukcjach|poleceniach)"),
    (0.85, r"(?:regeln|anweisungen|vorgaben|instruktionen)[^.!?]{0,40}(?:gelten|gilt)[^.!?]{0,20}nicht mehr"),
    (
        0.85,
        r"\b(?:muéstrame|enséñame|dime|revela|muestra)\s+(?:el|tu|su)\s+(?:mensaje|prompt|instrucciones)\s+"
        r"(?:de|del)\s+sistema",
    ),
    (
        0.85,
        r"\b(?:affiche|montre|donne|révèle)[- ]?(?:moi\s+)?(?:tes|vos)\s+(?:instructions|consignes)\s+"
        r"(?:initiales|d'origine|de départ|cachées)",
    ),
    # the newer families, in other languages
    (
        0.85,
        r"\bsi eres (?:un |una )?(?:ia|asistente|modelo|agente|bot)\b|\bsi tu es (?:une |un )?(?:ia|assistant|"
        r"modèle)\b|\bwenn du (?:ein|eine) (?:ki|assistent|ki-assistent|sprachmodell)\b",
    ),
    (
        0.85,
        r"\b(?:note|message|nota|mensaje) (?:aux|pour les?|à l'|para (?:la |el |los )?)\s*(?:assistants?|ia|"
        r"modèles?|agentes?|asistentes?)\b|\b(?:hinweis|nachricht|anweisung) (?:für|an) (?:die |alle )?(?:ki|"
        r"ki-modelle|assistenten|modelle|sprachmodelle)\b",
    ),
    (
        0.85,
        r"\b(?:añade|agrega|pega|incluye|convierte|ajoute|colle|inclus|envoie|hänge|füge|sende|schicke)\w*"
        r"[^.\n]{0,60}(?:conversación|historial|mensajes|conversation|historique|daten|nachrichten|verlauf|"
        r"konversation)[^.\n]{0,80}(?:https?://|url|enlace|imagen|lien|image|link|bild)",
    ),
    (
        0.85,
        r"\b(?:añade|agrega|ajoute|füge|hänge)\w*[^.\n]{0,40}(?:https?://|url|enlace|imagen|lien|image|link|bild)"
        r"[^.\n]{0,60}(?:conversación|historial|mensajes|conversation|historique|daten|nachrichten|verlauf)",
    ),
    (
        0.85,
        r"\b(?:agente|asistente|assistant|agent|assistent|ki-agent)\s*:\s*(?:ejecuta|borra|elimina|usa|transfiere|"
        r"cancela|supprime|efface|exécute|transfère|désactive|lösche|überweise|führe|deaktiviere|entferne)",
    ),
    (
        0.85,
        r"\bcomo (?:el )?(?:administrador|dueño|dono|propietario|proprietário|jefe)[^.\n]{0,60}(?:te ordeno|te autorizo|"
        r"autorizo|desactiva|desactivar|salta|ignora|ignorar|sin restricciones)|\b(?:en tant que|je suis) (?:l'|le |"
        r"la )?(?:administrateur|responsable|propriétaire)[^\n]{0,80}(?:désactive|ignore|ignorer|je t'autorise|"
        r"supprime)|\bals (?:administrator|admin|besitzer|eigentümer)\b[^\n]{0,60}(?:erlaube|umgehen|ignorier|"
        r"deaktivier)|\bsono l'amministratore[^\n]{0,60}(?:salta|ignora|esegui)",
    ),
]


@dataclass(frozen=True, slots=True)
class _Signal:
    """A compiled signal, the literals a text must hold for it to match (its gate), and its widest match."""

    family: str
    weight: float
    regex: re.Pattern[str]
    gate: tuple[frozenset[str], ...]  # every group needs one of its literals in the text
    width: int  # the longest text it can match (0: unbounded)
    ascii_ok: bool  # it can match text that is all ASCII
    tracked: tuple[frozenset[str], ...] = ()  # the gate's groups worth looking for (see _tracked)

    def search(self, text: str, index: _Index) -> re.Match[str] | None:
        """The first match in ``text`` (whose gate literals ``index`` holds, all of them: see _candidates).

        The regex runs only where every gate group occurs within its widest match of the others.
        """
        groups = self.tracked
        if not groups or not self.width or len(text) <= 2 * self.width:
            return self.regex.search(text)
        found = [index.positions(g) for g in groups]
        anchor = min(found, key=len)
        points = [p for p in anchor if all(_near(other, p, self.width) for other in found if other is not anchor)]
        for start, end in _merge(points, self.width, len(text)):
            m = self.regex.search(text, start, end)
            while m is not None and m.end() == end and end < len(text):
                whole = self.regex.match(text, m.start())  # cut by the window's end: a match in the whole text?
                if whole is not None:
                    return whole
                m = self.regex.search(text, m.start() + 1, end)
            if m is not None:
                return m
        return None


def _near(positions: list[int], p: int, width: int) -> bool:
    """Whether a sorted list holds a position within ``width`` of ``p``."""
    i = bisect.bisect_left(positions, p - width)
    return i < len(positions) and positions[i] <= p + width


class _Index:
    """Where the gate literals occur in one text: one pass of an Aho-Corasick automaton (pyahocorasick), or finds."""

    def __init__(self, text: str):
        self._at: dict[str, list[int]] = {}
        self._groups: dict[frozenset[str], list[int]] = {}
        self.present: set[str] = set()
        automaton = _automaton()
        if automaton is not None:
            for end, literal in automaton.iter(text):
                self._at.setdefault(literal, []).append(end - len(literal) + 1)
        else:
            for literal in _SCANNED:
                at = text.find(literal)
                while at >= 0:
                    self._at.setdefault(literal, []).append(at)
                    at = text.find(literal, at + 1)
        self.present = set(self._at)

    def positions(self, group: frozenset[str]) -> list[int]:
        """Where any literal of ``group`` starts, sorted (everyday words are not tracked)."""
        found = self._groups.get(group)
        if found is None:
            lists = [self._at[lit] for lit in group if lit in self._at]
            found = lists[0] if len(lists) == 1 else sorted(p for ps in lists for p in ps)
            self._groups[group] = found
        return found


def _merge(points: list[int], width: int, n: int) -> list[tuple[int, int]]:
    """Regions reaching ``width`` either side of each point, overlapping ones merged."""
    out: list[tuple[int, int]] = []
    for p in sorted(points):
        start, end = max(0, p - width), min(n, p + width + 1)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


_UNBOUNDED = re.compile(r"(\\[swSd]|\]|\)|(?<=[a-z])l)([*+])(\??)")


def _bounded(pattern: str) -> str:
    """``pattern`` with each unbounded repeat capped (8 spaces, 4 groups, 40 others), so a match has a width."""

    def cap(m: re.Match[str]) -> str:
        n = {"\\s": 8, ")": 4}.get(m.group(1), 40)
        return f"{m.group(1)}{{{0 if m.group(2) == '*' else 1},{n}}}{m.group(3)}"

    return _UNBOUNDED.sub(cap, pattern)


def _signal(family: str, weight: float, pattern: str) -> _Signal:
    pattern = _bounded(pattern)
    widest = _p.parse(pattern).getwidth()[1]
    literals = re.sub(r"\\.|\[[^\]]*\]|\(\?[:!=<]+", "", pattern)  # what it spells out, escapes and classes aside
    ascii_ok = bool(re.search(r"[a-z]{2}|<\||\[", literals)) or not re.search(r"[^\x00-\x7f]", pattern)
    groups = gate(pattern)
    return _Signal(
        family,
        weight,
        re.compile(pattern),
        groups,
        widest if widest < 4000 else 0,
        ascii_ok,
        tuple(g for g in groups if _tracked(g)),
    )


# Everyday words are in nearly every text: tracking where they occur costs more than it saves, so a gate group
# made only of them is left out (taken as present: the regex still decides). Every other literal is tracked.
COMMON = frozenset(
    "the a an i as is are was were be been am of to in on at by or and for it its if not no me my we you your this that "
    "these those with from have has had all any here there than then".split()
) | {"the ", " the ", "all ", " have ", " of th", "you ", "your ", "this ", "i am", "i'm", "im"}


def _requirements(seq: Any) -> list[frozenset[str]]:
    """Sets of literals of which every match of a parsed sequence contains one each."""
    found: list[frozenset[str]] = []
    run = ""
    for op, av in [*seq, (None, None)]:
        if op is _c.LITERAL:
            run += chr(av)
            continue
        if len(run) >= 3:
            found.append(frozenset({run}))
        run = ""
        if op is _c.BRANCH:  # each alternative needs one literal of its own best group: their union is a group
            best = [_best(_requirements(alt)) for alt in av[1]]
            if all(b is not None for b in best):
                found.append(frozenset().union(*best))  # type: ignore[arg-type]
        elif op is _c.SUBPATTERN:
            found += _requirements(av[3])
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and av[0] >= 1:
            found += _requirements(av[2])
    return found


def _tracked(group: frozenset[str]) -> bool:
    """Whether a group is worth looking for: no everyday word in it, no literal shorter than three characters."""
    return not group & COMMON and min(map(len, group)) >= 3


def _rank(group: frozenset[str]) -> tuple[bool, int, int]:
    """Better gates first: worth looking for, then longer shortest literal, then fewer literals."""
    return (_tracked(group), min(map(len, group)), -len(group))


def _best(groups: list[frozenset[str]]) -> frozenset[str] | None:
    return max(groups, key=_rank) if groups else None


def gate(pattern: str) -> tuple[frozenset[str], ...]:
    """Every literal requirement of ``pattern``, best first (see :func:`_rank`); none if it has none.

    Derived from the pattern itself, so a gate never rejects a text the pattern matches: it
    only saves running the pattern where it can't match.
    """
    parsed = _p.parse(pattern)
    if parsed.state.flags & re.IGNORECASE:
        return ()
    return tuple(sorted(set(_requirements(list(parsed))), key=_rank, reverse=True))


_COMPILED = [_signal(f, w, p) for f, w, p in _SIGNALS]
_COMPILED_ML = [_signal("multilingual", w, p) for w, p in _MULTILINGUAL]
# How far from a change a match that touches it can reach (the widest signal, and its look-arounds), or None
# when a signal's width is unknown (then a changed form is read whole).
_REACH = None if any(s.width == 0 for s in _COMPILED) else max(s.width for s in _COMPILED) + 64
_LITERALS = sorted({lit for sig in (*_COMPILED, *_COMPILED_ML) for group in sig.gate for lit in group})
_SCANNED = sorted(
    {lit for sig in (*_COMPILED, *_COMPILED_ML) for group in sig.gate if _tracked(group) for lit in group}
)
LONG = 4096  # the length past which only the first part of a text is read for rot13-like English


@lru_cache(maxsize=1)
def _automaton() -> Any:
    """An Aho-Corasick automaton of the tracked literals (``None`` without pyahocorasick: finds are used)."""
    try:
        import ahocorasick
    except ImportError:
        return None
    automaton = ahocorasick.Automaton()
    for literal in _SCANNED:
        automaton.add_word(literal, literal)
    automaton.make_automaton()
    return automaton


_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad"))
_HOMOGLYPHS = str.maketrans(
    "аеорсіѕхујԁɡοαειкνρτυχАЕОРСІЅХУЈΑΕΙΚΝΟΡΤΥΧМНВТ",
    "aeopcisxyjdgoaeikvptuxAEOPCISXYJAEIKNOPTYXMHBT",
)
_LEET = bytes.maketrans(b"013457@$", b"oieastas")  # on UTF-8 bytes: no multi-byte character holds an ASCII byte
_INVISIBLE = re.compile("[" + "".join(map(chr, _ZERO_WIDTH)) + "]")
_LOOKALIKE = re.compile("[аеорсіѕхујԁɡοαειкνρτυχАЕОРСІЅХУЈΑΕΙΚΝΟΡΤΥΧМНВТ]")
_ODD = re.compile(_INVISIBLE.pattern[:-1] + _LOOKALIKE.pattern[1:])
# Letters spaced out ("i g n o r e"), words kept apart by two spaces or more ("i g n o r e  a l l")
_SPACED = re.compile(r"(?<!\w)(?:[a-z](?:[ .\-_*]| {2,}(?=[a-z]))){3,}[a-z](?!\w)")
_WORD_GAP = re.compile(" {2,}")
_B64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/])")
_HEX = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}){8,}(?![0-9a-fA-F])")
_ROT13_HINT = re.compile(r"\brot-?13\b|\bcaesar\b")  # in lower case
_COMMON = frozenset("the and to of you is a in your all for it this that on are with be not what how".split())
_WORD = re.compile(r"[a-z]+")
_ASCII_LETTERS = bytes(c if 97 <= c <= 122 else 32 for c in range(256))  # an ASCII text's [a-z]+ runs: split()
_COMMON_BYTES = frozenset(word.encode() for word in _COMMON)
# Each branch starts with its quote mark (the look-behind comes after it), so the regex engine skips to
# the next quote mark at C speed instead of trying every position.
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”|'(?<!\w')[^'\n]+'(?!\w)|‘[^’]*’|«[^»]*»|`[^`]*`")
# Words that say a text talks about attacks (whole words, in lower case), and the phrases that do
_ABOUT_WORDS = frozenset(
    "classify label detect detector flag flagged filter analyse analyze analysis explain why translate summarise "
    "summarize example dataset test log logs report pattern attack attacker injection jailbreak pentest count grep "
    "mean string phrase language".split()
)
_ABOUT_PHRASES = re.compile(r"\b(?:what does|true positive|red-team)\b")
_ABOUT_FIRST = frozenset(("what", "true", "red"))  # the phrases' first words
# All of them as one regex: what _about answers, by looking words up (the tests hold it to this)
_ABOUT = re.compile(rf"\b(?:{'|'.join(sorted(_ABOUT_WORDS))}|{_ABOUT_PHRASES.pattern[5:-3]})\b")


def _group_table(signals: list[_Signal]) -> tuple[dict[str, list[int]], list[list[int]], list[int], list[int]]:
    """Literal -> the gate groups it satisfies; group -> its signals; each signal's group count; ungated signals."""
    groups: dict[frozenset[str], int] = {}
    by_group: list[list[int]] = []
    needed = []
    for i, signal in enumerate(signals):
        for group in signal.tracked:
            if group not in groups:
                groups[group] = len(by_group)
                by_group.append([])
            by_group[groups[group]].append(i)
        needed.append(len(signal.tracked))
    by_literal: dict[str, list[int]] = {}
    for group, g in groups.items():
        for literal in group:
            by_literal.setdefault(literal, []).append(g)
    return by_literal, by_group, needed, [i for i, n in enumerate(needed) if n == 0]


_TABLES = {id(_COMPILED): _group_table(_COMPILED), id(_COMPILED_ML): _group_table(_COMPILED_ML)}


def accel_patterns() -> list[str]:
    """The phrase signals, for the optional Hyperscan prefilter (see _accel.py): each pattern, or the tail of it
    named in ``_PREFILTER_TAILS`` (a match of the pattern holds a match of its tail, so no match is lost).
    """
    return [prefilter_tail(signal.regex.pattern) for signal in _COMPILED]


def prefilter_tail(pattern: str) -> str:
    """``pattern``, or its end when that is one of ``_PREFILTER_TAILS`` and follows a whole lead at top level."""
    for tail in map(_bounded, _PREFILTER_TAILS):
        lead = pattern[: -len(tail)]
        if lead and pattern.endswith(tail) and _top_level(lead) and _top_level(pattern):
            return tail
    return pattern


def _top_level(pattern: str) -> bool:
    """Whether ``pattern`` is a sequence whose groups all close and that has no ``|`` outside them (so any run of
    its trailing elements is a pattern every match of it ends with a match of).
    """
    depth, i, in_class, first = 0, 0, False, -1  # first: where a class's first member sits (a "]" there is one)
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]" or i == first
        elif ch == "[":
            in_class, first = True, i + 1 + (pattern[i + 1 : i + 2] == "^")
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
        elif ch == "|" and depth == 0:
            return False
        i += 1
    return depth == 0 and not in_class


def accel_multilingual() -> list[str]:
    """The phrases in other languages, for the optional Hyperscan prefilter."""
    return [signal.regex.pattern for signal in _COMPILED_ML]


_ACCEL = {
    id(_COMPILED): PatternSet("injection", accel_patterns()),
    id(_COMPILED_ML): PatternSet("multilingual", accel_multilingual()),
}


def _runnable(signals: list[_Signal], form: str) -> tuple[list[int], _Index | None]:
    """The signals worth running on ``form``, and (without the prefilter) the index their search uses.

    (Where the prefilter's first match of a signal ends is not used to start its search later: Hyperscan does
    not promise to report matches in the order of their ends, and a search started past the first real match
    would miss it.)
    """
    found = _ACCEL[id(signals)].candidates(form)
    if found is not None:
        return sorted(found), None
    index = _Index(form)
    return _candidates(signals, index), index


def _candidates(signals: list[_Signal], index: _Index) -> list[int]:
    """The signals whose every gate group has a literal in the text (ungated ones always), in order."""
    by_literal, by_group, needed, always = _TABLES[id(signals)]
    satisfied = {g for literal in index.present for g in by_literal.get(literal, ())}
    count: dict[int, int] = {}
    for g in satisfied:
        for i in by_group[g]:
            count[i] = count.get(i, 0) + 1
    return sorted([*always, *(i for i, c in count.items() if c == needed[i])])


@dataclass(frozen=True, slots=True)
class Hit:
    """A signal that matched: its family, weight, and where (in the original text, when known)."""

    family: str
    weight: float
    start: int
    end: int


def normalise(text: str) -> str:
    """NFKC, zero-width characters out, look-alike letters folded to Latin, lower case, spaces collapsed."""
    return _readings(text).norm


def _folded_lower(text: str) -> str:
    """NFKC, zero-width characters out, look-alike letters folded to Latin, lower case."""
    return _readings(text).folded


def _lowered(text: str) -> str:
    """``text`` in NFKC, zero-width characters out, lower case (look-alike letters kept)."""
    return _readings(text).lowered


@dataclass(frozen=True, slots=True)
class _Readings:
    """The lower-case readings of one text, and where its normal form differs from its plain one."""

    plain: str  # lower case, runs of spaces one (as written otherwise)
    norm: str  # the same in NFKC, zero-width characters out, look-alike letters folded
    lowered: str  # NFKC, zero-width characters out, lower case (spaces as they are; look-alikes kept)
    folded: str  # ``norm`` before its spaces are collapsed
    changed: tuple[tuple[int, int], ...]  # the stretches of ``norm`` that differ from ``plain`` (positions in norm)


@lru_cache(maxsize=4)  # the phrase signals, the phrases in other languages and the model read the same text
def _readings(text: str) -> _Readings:
    """The readings of ``text``, made a piece of a few kB at a time (cut before a newline, which neither NFKC,
    lower case nor collapsing spaces crosses): a piece with nothing to normalise is lowered and collapsed once
    and shared by all four, so ordinary text is read once and the normal form is known to differ only where a
    piece needed it.
    """
    if text.isascii():
        lower = text.lower()
        plain = _spaced_once(lower)
        return _Readings(plain, plain, lower, lower, ())
    plains, norms, lowereds, foldeds = [], [], [], []
    changed, at = [], 0
    for piece in _pieces(text):
        lower = piece.lower()
        plain = _spaced_once(lower)
        if piece.isascii() or (unicodedata.is_normalized("NFKC", piece) and not _ODD.search(piece)):
            lowered = folded = lower
            norm = plain
        else:
            compatible = _compatible(piece)
            lowered = compatible.lower()
            folded = compatible.translate(_HOMOGLYPHS).lower() if _LOOKALIKE.search(compatible) else lowered
            norm = _spaced_once(folded)
            if norm != plain:
                changed.append((at, at + len(norm)))
        plains.append(plain)
        norms.append(norm)
        lowereds.append(lowered)
        foldeds.append(folded)
        at += len(norm)
    plain, lowered = "".join(plains), "".join(lowereds)
    folded = lowered if all(map(str.__eq__, foldeds, lowereds)) else "".join(foldeds)  # (no look-alike: the same)
    return _Readings(plain, "".join(norms) if changed else plain, lowered, folded, tuple(changed))


def _pieces(text: str) -> list[str]:
    """``text`` in pieces of about ``LONG`` characters, each cut before a newline (one piece without one)."""
    pieces, start = [], 0
    while start < len(text):
        cut = text.find("\n", start + LONG)
        end = len(text) if cut < 0 else cut
        pieces.append(text[start:end])
        start = end
    return pieces


def _compatible(text: str) -> str:
    """``text`` in NFKC, zero-width characters out (``text`` itself when that changes nothing)."""
    if text.isascii():
        return text
    if not unicodedata.is_normalized("NFKC", text):
        text = _nfkc(text)
    odd = _ODD.search(text)
    if odd and _INVISIBLE.search(text, odd.start()):
        text = text.translate(_ZERO_WIDTH)
    return text


def _nfkc(text: str) -> str:
    """NFKC of ``text``, in pieces of a few kB cut before a newline (which never composes, nor do marks across
    it), each normalised only when it needs it: one ellipsis in a long page does not normalise the page.
    """
    return "".join(
        p if unicodedata.is_normalized("NFKC", p) else unicodedata.normalize("NFKC", p) for p in _pieces(text)
    )


def _readable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    return text if text and printable / len(text) > 0.9 and re.search(r"[A-Za-z]{3}", text) else None


_B64_CHARS = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/="
_RUN = bytes.maketrans(_B64_CHARS, b"x" * len(_B64_CHARS))
_NOT_RUN = re.compile(b"[^x]")
_BLANKS = re.compile("[ \t]{2,}")  # in a text: what _collapse makes one space


def _long_runs(shape: bytes) -> list[tuple[int, int]]:
    """Where ``shape`` has 16 or more x in a row (found with bytes.find: C speed, no regex over the whole text)."""
    out, at = [], shape.find(b"x" * 16)
    while at >= 0:  # ``at`` is a run's first x: the byte before it is not one
        stop = _NOT_RUN.search(shape, at + 16)
        end = stop.start() if stop else len(shape)
        out.append((at, end))
        at = shape.find(b"x" * 16, end)
    return out


def decoded(text: str) -> list[tuple[int, int, str]]:
    """Base64 and hex runs in ``text`` that decode to readable text: (start, end, decoded)."""
    found: list[tuple[int, int, str]] = []
    if re.fullmatch(r"(?:[0-9a-fA-F]{2} ){8,}[0-9a-fA-F]{2}", text.strip()):  # a hex dump with spaces
        text = text.replace(" ", "")
    shape = text.encode("ascii", "replace").translate(_RUN)  # one byte per character
    for run_start, run_end in _long_runs(shape):  # only the runs: a long ordinary text is not regex-scanned whole
        start, end = max(0, run_start - 1), min(len(text), run_end + 1)
        for m in _B64.finditer(text, start, end):
            chunk = m.group()
            try:  # (what base64.b64decode(..., validate=True) does, without its wrapper: runs are many in code)
                raw = binascii.a2b_base64(chunk + "=" * (-len(chunk) % 4), strict_mode=True)
            except (binascii.Error, ValueError):
                continue
            if (plain := _readable(raw)) is not None:
                found.append((m.start(), m.end(), plain))
        for m in _HEX.finditer(text, start, end):
            if (plain := _readable(bytes.fromhex(m.group()))) is not None:
                found.append((m.start(), m.end(), plain))
    return found


def _looks_rot13(norm: str) -> bool:
    if norm.isascii():  # its [a-z]+ runs
        runs = norm.encode("ascii").translate(_ASCII_LETTERS).split()
        return len(runs) >= 4 and sum(map(_COMMON_BYTES.__contains__, runs)) / len(runs) < 0.08
    words = _WORD.findall(norm)
    return len(words) >= 4 and sum(map(_COMMON.__contains__, words)) / len(words) < 0.08


def _collapse(text: str) -> str:
    """Lower case, each tab a space, runs of spaces one."""
    return _readings(text).plain


def _spaced_once(lower: str) -> str:
    """Each tab a space, runs of spaces one."""
    if "\t" in lower:
        lower = lower.replace("\t", " ")
    return _single_spaced(lower)


_SPACES = re.compile("  +")  # (a literal prefix: the engine skips to each run at C speed, and a literal replacement)


def _single_spaced(text: str) -> str:
    """Runs of spaces one: one substitution, which copies the text once (halving runs with ``str.replace`` until
    none is left copied it log2(longest run) times: 2.5x slower on indented text).
    """
    return _SPACES.sub(" ", text) if "  " in text else text


# A letter next to a digit read as one; each branch starts with the digit (rarer than letters: the engine skips to
# one at C speed).
_LEETY = re.compile(r"[013457@$](?<=[a-z].)|[013457@$][a-z]")
_SHAPE = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz .-_*", b"a" * 26 + b"sssss")
_SEPARATORS = re.compile(r"[ .\-_*]")


def _variants(text: str) -> list[tuple[str, bool]]:
    """(form, aligned with the original) for each way ``text`` may be read; the first is the plain one."""
    return [(form.text, form.aligned) for form in _forms(text)]


@dataclass(frozen=True, slots=True)
class _Form:
    """One way of reading a text, and the stretches where it differs from the readings before it (``None``:
    anywhere). Elsewhere it holds what they hold, so a signal that matched none of them can match it only there.
    """

    text: str
    aligned: bool
    changed: tuple[tuple[int, int], ...] | None = None


def _forms(text: str) -> list[_Form]:
    """Each way ``text`` may be read; the first is the plain one.

    Each disguise is undone only when a cheap test says the text may hold it (letters mixed
    with digits, single letters spaced out, ROT13), so an ordinary text is read once; and only
    the words that hold it are rewritten. The plain form is aligned when lower-casing kept the
    length (runs of spaces it collapsed are mapped back by ``_aligner``).
    """
    readings = _readings(text)
    plain, norm = readings.plain, readings.norm
    forms = [_Form(plain, len(plain) == len(text) or "\u0130" not in text)]  # İ is the one letter lower() lengthens
    if norm is not plain:  # zero-width characters, look-alike letters or compatibility forms, in some pieces
        forms.append(_Form(norm, False, readings.changed))
    if _LEETY.search(norm):  # a letter next to a digit: read the digits as letters
        leet = norm.encode("utf-8", "surrogatepass").translate(_LEET).decode("utf-8", "surrogatepass")
        forms.append(_Form(leet, False))
    if (spaced := _spaced_form(text, norm)) is not None:
        forms.append(_Form(*spaced))
    hint = "rot13" in plain or "rot-13" in plain or "caesar" in plain  # what the hint's regex needs
    if (hint and _ROT13_HINT.search(plain)) or _looks_rot13(norm[:LONG]):
        forms.append(_Form(codecs.encode(norm, "rot13"), False))
    return forms


def _parts(form: _Form) -> list[str]:
    """What of ``form`` the signals must read: all of it, or the lines around where it changed (every match
    that touches a change lies within a signal's width of it; a line start reads as the text's start does,
    so ``(?:^|\n)`` and ``\b`` see there what they see in the whole form).
    """
    text, changed = form.text, form.changed
    if changed is None or _REACH is None:
        return [text]
    regions: list[tuple[int, int]] = []
    for start, end in changed:
        start = text.rfind("\n", 0, max(0, start - _REACH)) + 1
        stop = text.find("\n", min(len(text), end + _REACH))
        end = len(text) if stop < 0 else stop
        if regions and start <= regions[-1][1]:
            regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
        else:
            regions.append((start, end))
    if sum(end - start for start, end in regions) > len(text) // 2:
        return [text]
    return [text[start:end] for start, end in regions]


def _spaced_form(text: str, norm: str) -> tuple[str, bool, tuple[tuple[int, int], ...]] | None:
    """``norm`` with letters spaced out joined, not aligned, and the stretches joined; ``None`` when none is.

    Such letters never span a line, and once runs of spaces are collapsed they read "a s a s a s a" in the
    shape (letter, separator, ...), so only the lines of ``norm`` where that shape occurs are read again,
    uncollapsed (in ``text`` lower-cased, where two spaces or more part words): each found by counting
    newlines, not by collapsing the text again.
    """
    shape = norm.encode("ascii", "replace").translate(_SHAPE)  # one byte per character
    at = shape.find(b"asasasa")
    if at < 0:
        return None
    source = norm if "  " not in text and "\t" not in text else _folded_lower(text)
    lines = _Lines(norm, source)
    pieces, done, length, changed = [], 0, 0, []
    while at >= 0:
        start, end, _, line = lines.at(at)
        joined = _spaced_once(_unspaced(line, line.encode("ascii", "replace").translate(_SHAPE)))
        if joined != norm[start:end]:
            pieces += [norm[done:start], joined]
            length += start - done
            changed.append((length, length + len(joined)))
            length += len(joined)
            done = end
        at = shape.find(b"asasasa", end)
    return ("".join([*pieces, norm[done:]]), False, tuple(changed)) if pieces else None


class _Lines:
    """The line of ``source`` that is line k of ``norm`` (``source`` with runs of spaces collapsed, which never
    spans a newline), for positions asked in increasing order.
    """

    def __init__(self, norm: str, source: str):
        self.norm, self.source = norm, source
        self.extra = len(source) - len(norm)  # what collapsing removed: how far ahead a line can start in source
        self.norm_at = self.source_at = 0  # the start of the last line found, in both

    def at(self, position: int) -> tuple[int, int, int, str]:
        """(start, end) in ``norm`` of the line holding ``position``, where that line starts in ``source``, and
        the line in ``source``.
        """
        norm, source = self.norm, self.source
        start = norm.rfind("\n", 0, position) + 1
        end = norm.find("\n", position)
        end = len(norm) if end < 0 else end
        if source is norm:
            return start, end, start, norm[start:end]
        lines = norm.count("\n", self.norm_at, start)  # newlines to pass in source from source_at
        first = self.source_at + (start - self.norm_at)  # a line starts no earlier in source, ...
        limit = min(len(source), first + self.extra)  # ... and at most what collapsing removed later
        # The line's start: the first x with ``lines`` newlines in source[source_at:x]. ``counted`` is how many
        # source[source_at:low] holds; each count reads only the stretch not read yet, so finding every line asked
        # for reads the text about once. Galloping first: the line is near, mostly.
        low, counted, step = first, source.count("\n", self.source_at, first), 64
        high = low if counted >= lines else min(limit, low + step)
        while high < limit and (more := source.count("\n", low, high)) + counted < lines:
            counted, low, step = counted + more, high, step * 2
            high = min(limit, low + step)
        while low < high:
            mid = (low + high) // 2
            more = source.count("\n", low, mid)
            if counted + more >= lines:
                high = mid
            else:
                counted, low = counted + more + (source[mid] == "\n"), mid + 1
        stop = source.find("\n", low)
        self.norm_at, self.source_at = start, low
        return start, end, low, source[low : len(source) if stop < 0 else stop]


def _unspaced(norm: str, shape: bytes) -> str:
    """``norm`` with letters spaced out joined ("i g n o r e  a l l" -> "ignore all"), rewriting only the runs of
    letters and separators that hold one (found in ``shape``: a letter is ``a``, a separator ``s``).
    """
    pieces, done = [], 0
    upcoming = {gate: shape.find(gate) for gate in _SPACED_SHAPES}  # each gate's next place (-1: none left)
    at = _spaced_at(shape, 0, upcoming)
    while at >= 0:
        start, end = _alternating(shape, at)
        for m in _SPACED.finditer(norm, start, min(len(norm), end + 1)):  # the character after: (?!\w) sees it
            words = _WORD_GAP.split(m.group())
            pieces += [norm[done : m.start()], " ".join(_SEPARATORS.sub("", w) for w in words)]
            done = m.end()
        at = _spaced_at(shape, end, upcoming)
    return "".join([*pieces, norm[done:]])


_SPACED_SHAPES = (b"asasasa", b"asass", b"ssasa")  # four letters spaced out; a spaced word beside a word gap
_BREAK = re.compile(b"aa|[^as]")  # in a shape: what no run of letters spaced out holds


def _alternating(shape: bytes, at: int) -> tuple[int, int]:
    """The stretch of ``shape`` around ``at`` made of letters and separators with no two letters side by side:
    every run of letters spaced out that holds a gate found at ``at`` lies in it (a word of prose ends it, so
    the regex reads a few characters, not the sentence).
    """
    start = at
    while start > 0 and (c := shape[start - 1]) in _LETTER_OR_SEPARATOR and not (c == _A and shape[start] == _A):
        start -= 1
    stop = _BREAK.search(shape, at)
    end = len(shape) if stop is None else stop.start() + (stop.group() == b"aa")
    return start, end


_A, _LETTER_OR_SEPARATOR = ord("a"), frozenset(b"as")


def _spaced_at(shape: bytes, start: int, upcoming: dict[bytes, int]) -> int:
    """Where the next run of letters spaced out may be in ``shape`` from ``start`` (-1: none); each gate is
    looked for again only once the run passed it, so the text is read once per gate.
    """
    for gate, at in upcoming.items():
        if 0 <= at < start:
            upcoming[gate] = shape.find(gate, start)
    found = [at for at in upcoming.values() if at >= 0]
    return min(found) if found else -1


def _aligner(text: str, plain: str) -> Callable[[int], int]:
    """Maps a position in ``plain`` (``text`` lower-cased, runs of spaces and tabs collapsed) to one in ``text``."""
    if len(plain) == len(text):
        return lambda i: i

    def position(i: int) -> int:
        start, _, source_start, line = _Lines(plain, text).at(min(i, len(plain) - 1) if plain else 0)
        removed = 0  # spaces dropped in the line before plain's position i (hits are few, lines short)
        for m in _BLANKS.finditer(line):
            if m.start() - removed >= i - start:
                break
            removed += len(m.group()) - 1
        return source_start + i - start + removed

    return position


def detect(text: str, *, quoted_discount: bool = False, depth: int = 0) -> list[Hit]:
    """Every signal that matched ``text`` in any of its forms (empty for a clean text).

    A signal found only in a disguised form (folded, l33t, spaced, ROT13, decoded) is
    reported in the ``encoded`` family. Each signal runs only where the literals it needs
    are present; in a text longer than ``LONG`` only around its trigger words, so the work
    grows with the text's length, not with the number of signals times it.
    """
    hits = _detect(text, depth)
    if quoted_discount and hits and max(h.weight for h in hits) >= 0.45:  # weaker hits alone decide nothing
        hits = _discount_quoted(text, hits)
    return hits


def _detect(text: str, depth: int) -> list[Hit]:
    hits: list[Hit] = []
    seen: set[int] = set()
    ascii_text = text.isascii()
    at: Callable[[int], int] | None = None  # positions in the plain form -> in the text (only it can be aligned)
    for n, form in enumerate(_forms(text)):
        for part in _parts(form):
            ids, index = _runnable(_COMPILED, part)
            for i in ids:
                signal = _COMPILED[i]
                if i in seen:
                    continue
                if m := signal.search(part, index) if index else signal.regex.search(part):
                    seen.add(i)
                    at = at or _aligner(text, part)
                    span = (at(m.start()), at(m.end())) if form.aligned else (0, len(text))
                    hits.append(Hit(signal.family if n == 0 else "encoded", signal.weight, *span))
    ml = _lowered(text)
    ids, index = _runnable(_COMPILED_ML, ml)
    for i in ids:
        signal = _COMPILED_ML[i]
        if ascii_text and not signal.ascii_ok:
            continue
        if not (m := signal.search(ml, index) if index else signal.regex.search(ml)):
            continue
        hits.append(Hit("multilingual", signal.weight, m.start(), m.end()))
    if depth < 2:
        for start, end, plain in decoded(text):
            hits += [Hit("encoded", h.weight, start, end) for h in _detect(plain, depth + 1)]
    return hits


def _about(text: str) -> bool:
    """Whether ``text`` (in lower case) talks about attacks: ``_ABOUT`` matches it.

    The regex, starting with ``\\b``, would be tried at every position; instead the words (what ``\\w+`` finds)
    of a piece of a few kB at a time (cut where no word is) are looked up, at C speed, and a long text is read
    only as far as the first such word. A text with none is searched for the phrases only when it holds one of
    their first words.
    """
    start, first = 0, False
    while start < len(text):
        end = len(text) if len(text) - start <= 2 * _ABOUT_PIECE else _cut(text, start + _ABOUT_PIECE)
        words = set(words_spaced(text[start:end]).split())
        if not words.isdisjoint(_ABOUT_WORDS):
            return True
        first = first or not words.isdisjoint(_ABOUT_FIRST)
        start = end
    return first and _ABOUT_PHRASES.search(text) is not None


_ABOUT_PIECE = 4096


def _cut(text: str, at: int) -> int:
    """The first position from ``at`` that holds no word character (the end of the text if none does)."""
    m = _NOT_WORD.search(text, at)
    return m.start() if m else len(text)


_NOT_WORD = re.compile(r"\W")


def _discount_quoted(text: str, hits: list[Hit]) -> list[Hit]:
    """Matches inside quotes in a text about attacks count for a third (an analyst quoting one)."""
    if not _QUOTED.search(text):
        return hits
    outside = _QUOTED.sub(" ", text).lower()
    if not _about(outside):
        return hits
    # The quotes in order (none overlapping), as far as the last that can hold a placed hit: the one that opens
    # last at or before it (an unplaced hit, the whole text, only in a quote opening at 0: the first).
    last = max((h.start for h in hits if h.end - h.start != len(text)), default=0)
    spans = []
    for m in _QUOTED.finditer(text):
        spans.append(m.span())
        if m.start() > last:
            break
    starts = [s for s, _ in spans]

    def quoted(hit: Hit) -> bool:
        k = bisect.bisect_right(starts, hit.start) - 1  # the last quote that opens at or before the hit
        return k >= 0 and hit.end <= spans[k][1]

    inside = [quoted(h) for h in hits]
    quotes_alone: bool | None = None  # whether the quotes, and not the rest, explain an unaligned hit (once per text)
    out = []
    for hit, within in zip(hits, inside, strict=True):
        if not within and hit.end - hit.start == len(text):
            if quotes_alone is None:
                quoted_text = " ".join(text[s:e] for s, e in spans)
                quotes_alone = bool(detect(quoted_text, depth=2)) and not detect(outside, depth=2)
            within = quotes_alone
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


def find_injection(
    text: str, *, threshold: float = THRESHOLD, quoted_discount: bool = False, learned: bool = True
) -> list[Finding]:
    """One finding per family when the phrase signals' combined score reaches ``threshold`` (kind = family),
    and a ``learned`` finding when the trained model (``learned``; see classifier.py) is sure enough.
    """
    hits = detect(text, quoted_discount=quoted_discount)
    total = score(hits)
    findings: list[Finding] = []
    if total >= threshold:
        by_family: dict[str, Hit] = {}
        for h in sorted(hits, key=lambda h: -h.weight):
            by_family.setdefault(h.family, h)
        findings = [Finding(fam, h.start, h.end, total) for fam, h in by_family.items() if h.weight >= 0.3]
    if learned and (m := model()) is not None:
        p = learned_probability(text, quoted_discount=quoted_discount)
        if p >= m.threshold:
            findings.append(Finding("learned", 0, len(text), round(p, 3)))
    return findings


LEARNED_MAX = 16_384  # past this, the model reads the windows around words that address a model or its rules
_ADDRESS = (
    "assistant",
    "chatbot",
    "llm",
    "language model",
    " ai",
    "a.i.",
    "copilot",
    "agent",
    "model",
    "instruction",
    "ignore",
    "disregard",
    "system",
    "prompt",
    "http",
    "<!--",
    "![",
    "admin",
    "tool",
    "rules",
    "polic",
)
LEARNED_BUDGET = 24 * WINDOW  # characters of a long text the model reads: the densest regions in such words first


def learned_probability(text: str, *, quoted_discount: bool = False) -> float:
    """The trained model's probability that ``text`` (its most suspicious window) is an attack; 0 without a model.

    At the input stage (``quoted_discount``), a text that talks about attacks is scored without what it quotes.
    """
    m = model()
    if m is None:
        return 0.0
    norm = normalise(text)  # the phrase signals have read it already: the same normal form, and quotes in it
    if quoted_discount and _QUOTED.search(norm):
        outside = _QUOTED.sub(" ", norm)
        if _about(outside):
            norm = _single_spaced(outside)
    if len(norm) <= LEARNED_MAX:
        return m.probability(norm)
    points = _address_points(norm)
    chunks = [
        (start, min(end, start + WINDOW))
        for region_start, end in _merge(points, WINDOW // 2, len(norm))
        for start in range(region_start, max(region_start + 1, end - WINDOW // 2), WINDOW // 2)
    ]

    def density(chunk: tuple[int, int]) -> float:
        return (bisect.bisect_left(points, chunk[1]) - bisect.bisect_left(points, chunk[0])) / (chunk[1] - chunk[0])

    chosen = sorted(chunks, key=density, reverse=True)[: LEARNED_BUDGET // WINDOW]
    return max(m.probability(norm[s:e]) for s, e in [(0, WINDOW), *chosen])


def _address_points(norm: str) -> list[int]:
    """Where each word of ``_ADDRESS`` starts in ``norm``, sorted (overlapping ones too): one Hyperscan pass where
    it is installed (walking an Aho-Corasick automaton through a long text costs ~20 ms per MB, str.find per word
    as much), else the automaton.
    """
    found = _ADDRESS_LITERALS.starts(norm)
    if found is not None:
        return found
    return sorted({end - back for end, back in _address_automaton().iter(norm)})


_ADDRESS_LITERALS = Literals(_ADDRESS)


@lru_cache(maxsize=1)
def _address_automaton() -> Any:
    """One pass finds every word of ``_ADDRESS`` (pyahocorasick)."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for word in _ADDRESS:
        automaton.add_word(word, len(word) - 1)  # what to step back from a match's last character to its first
    automaton.make_automaton()
    return automaton
