"""The scanner registry: built-in scanners, ones registered in code, and ones installed as plug-ins.

A scanner is a name, the stages it can run at, and a function ``(text, ScanContext) ->
list[Finding]``. A stage's policy in ``[guardrails]`` names the scanners to run there.
Scanners live in the one plug-in registry (:mod:`workbench.plugins`, kind ``scanner``):
packages add them through the ``workbench`` entry-point group (the older
``workbench.scanners`` group, each entry a :class:`Scanner`, is still read); they are loaded
the first time a policy names a scanner that is not known yet, so ``import workbench`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.guardrails.scanners import Finding
from workbench.plugins import REGISTRY

ALL_STAGES = frozenset({"input", "output", "document", "tool_call", "tool_result"})


@dataclass(frozen=True)
class ScanContext:
    """What a scanner may need besides the text: the stage, the call's system prompt, sink, tool, settings."""

    stage: str
    system: str | None = None  # the system prompt the model was given (output stage)
    sink: str | None = None  # html | shell | sql: where the answer is going (output stage)
    tool: str | None = None  # tool_call / tool_result: the tool's name
    arguments: dict[str, Any] = field(default_factory=dict)  # tool_call: its arguments
    risk: str = "read"  # tool_call: read | write | destructive
    session: str | None = None
    agent: str | None = None
    guard: Any = None  # the Guard running the scan (settings, store)
    recheck: bool = False  # tool_call: edited arguments of a call already counted once
    conversation: str | None = None  # output: what the model was sent (its messages' text), for exfiltration


@dataclass(frozen=True)
class Scanner:
    """A named check that finds spans in a text at the stages it supports."""

    name: str
    scan: Callable[[str, ScanContext], list[Finding]]
    stages: frozenset[str] = ALL_STAGES
    description: str = ""


def register_scanner(scanner: Scanner, *, source: str | None = None) -> Scanner:
    """Add (or replace) a scanner; a stage's policy can then name it."""
    unknown = set(scanner.stages) - ALL_STAGES
    if unknown:
        raise ValueError(f"scanner {scanner.name!r}: unknown stages {sorted(unknown)}; use {sorted(ALL_STAGES)}")
    REGISTRY.add("scanner", scanner.name, scanner, source=source)
    return scanner


def get_scanner(name: str) -> Scanner | None:
    """The scanner called ``name``, loading installed plug-ins once if it isn't registered yet."""
    found = REGISTRY.get("scanner", name)
    return found if isinstance(found, Scanner) else None


def scanners() -> dict[str, Scanner]:
    """Every registered scanner by name (installed plug-ins included)."""
    return {name: e.obj for name, e in REGISTRY.table("scanner").items() if isinstance(e.obj, Scanner)}
