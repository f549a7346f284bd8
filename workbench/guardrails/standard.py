"""The scanners that ship with workbench, registered under the names a ``[guardrails]`` policy uses.

========================  ==============================================  =====================================
name                      finds                                           stages
========================  ==============================================  =====================================
``secrets``               API keys, tokens, private keys                  all
``pii``                   e-mail, phone, card (Luhn), IBAN, national ids  all
``max_length``            an input over ``max_input_chars``               input
``injection``             prompt injection and jailbreak phrases          input, document, tool_result
``injection_semantic``    the same by meaning (``embeddings`` extra)      input, document, tool_result
``leakage``               the system prompt's canary or its words         output
``sinks``                 HTML/JS, shell or SQL risks for the call's sink output
``exfiltration``          a URL in the answer carrying the conversation   output
``boundaries``            tool allowlists, argument checks, the           tool_call
                          destructive-call cap
========================  ==============================================  =====================================
"""

from __future__ import annotations

import fnmatch
import re

from workbench.guardrails.boundaries import allowed, get_check
from workbench.guardrails.injection import find_injection
from workbench.guardrails.output import find_exfiltration, find_leakage, find_sink_risks
from workbench.guardrails.registry import ALL_STAGES, ScanContext, Scanner, register_scanner
from workbench.guardrails.scanners import Finding, find_pii, find_secrets

_UNTRUSTED = frozenset({"input", "document", "tool_result"})


_REDACTED = re.compile(r"\[REDACTED:(\w+)\]")


def _secrets(text: str, ctx: ScanContext) -> list[Finding]:
    """Secrets; in a tool call's arguments also the marks of secrets removed from them (a key the tool can't get)."""
    found = find_secrets(text)
    if ctx.stage == "tool_call":
        found += [Finding(f"removed {m.group(1)}", m.start(), m.end()) for m in _REDACTED.finditer(text)]
    return found


def _max_length(text: str, ctx: ScanContext) -> list[Finding]:
    limit = ctx.guard.settings.max_input_chars
    return [Finding(f"over_{limit}_chars", limit, len(text))] if len(text) > limit else []


def _injection(text: str, ctx: ScanContext) -> list[Finding]:
    return find_injection(text, threshold=ctx.guard.settings.injection_threshold, quoted_discount=ctx.stage == "input")


def _injection_semantic(text: str, ctx: ScanContext) -> list[Finding]:
    from workbench.guardrails.semantic import find_injection_semantic

    return find_injection_semantic(
        text, threshold=ctx.guard.settings.semantic_threshold, quoted_discount=ctx.stage == "input"
    )


def _boundaries(text: str, ctx: ScanContext) -> list[Finding]:
    """Allowlists (everyone's, the agent's, the session's), argument checks, the destructive cap."""
    guard, tool = ctx.guard, ctx.tool or ""
    tools = guard.settings.tools
    found = []
    lists = [("allowlist", tools.allow)]
    if ctx.agent in tools.agents:
        lists.append((f"agent {ctx.agent}'s allowlist", tools.agents[ctx.agent]))
    if ctx.session in tools.sessions:
        lists.append((f"session {ctx.session}'s allowlist", tools.sessions[ctx.session]))
    found += [Finding(f"not in the {label}", 0, 0) for label, patterns in lists if not allowed(tool, patterns)]
    for rule in tools.arguments:
        if fnmatch.fnmatchcase(tool, rule.tool) and rule.argument in ctx.arguments:
            check = get_check(rule.check)
            problem: str | None
            if check is None:  # checked when the guard was built; if it is gone since, fail closed
                problem = f"the argument check {rule.check!r} is no longer registered"
            else:
                problem = check(ctx.arguments[rule.argument], guard.boundary_context)
            if problem:
                found.append(Finding(f"{rule.argument}: {problem}", 0, 0))
    if ctx.risk == "destructive" and tools.max_destructive is not None:
        done = guard.destructive_calls(ctx.session) - (1 if ctx.recheck else 0)
        if done >= tools.max_destructive:
            found.append(Finding(f"destructive cap reached ({done} of {tools.max_destructive} this session)", 0, 0))
    return found


for _scanner in (
    Scanner("secrets", _secrets, ALL_STAGES, "API keys, tokens, private keys, passwords and secret values"),
    Scanner("pii", lambda text, ctx: find_pii(text), ALL_STAGES, "e-mail, phone, card, IBAN and national ids"),
    Scanner("max_length", _max_length, frozenset({"input"}), "an input longer than max_input_chars"),
    Scanner("injection", _injection, _UNTRUSTED, "prompt injection: phrase signals and a trained model"),
    Scanner("injection_semantic", _injection_semantic, _UNTRUSTED, "prompt injection by meaning (embeddings)"),
    Scanner(
        "leakage",
        lambda text, ctx: find_leakage(text, ctx.system),
        frozenset({"output"}),
        "the system prompt's canary or 12+ of its words in a row",
    ),
    Scanner(
        "sinks",
        lambda text, ctx: find_sink_risks(text, ctx.sink),
        frozenset({"output"}),
        "HTML/JS, shell or SQL that would act in the answer's sink",
    ),
    Scanner(
        "exfiltration",
        lambda text, ctx: find_exfiltration(text, ctx.conversation),
        frozenset({"output"}),
        "a URL (image, link) carrying the conversation's words, a secret or personal data",
    ),
    Scanner(
        "boundaries",
        _boundaries,
        frozenset({"tool_call"}),
        "tool allowlists, argument checks and the destructive-call cap",
    ),
):
    register_scanner(_scanner, source="workbench")
