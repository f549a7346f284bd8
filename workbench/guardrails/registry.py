"""The scanner registry: built-in scanners, ones registered in code, and ones installed as plug-ins.

A scanner is a name, the stages it can run at, and a function ``(text, ScanContext) ->
list[Finding]``. A stage's policy in ``[guardrails]`` names the scanners to run there.
Packages add scanners through the ``workbench.scanners`` entry-point group (each entry
point names a :class:`Scanner`); they are loaded the first time a policy names a scanner
that is not known yet, so ``import workbench`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from workbench.guardrails.scanners import Finding

ENTRY_POINT_GROUP = "workbench.scanners"
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


_REGISTRY: dict[str, Scanner] = {}
_loaded_plugins = False


def register_scanner(scanner: Scanner) -> Scanner:
    """Add (or replace) a scanner; a stage's policy can then name it."""
    unknown = set(scanner.stages) - ALL_STAGES
    if unknown:
        raise ValueError(f"scanner {scanner.name!r}: unknown stages {sorted(unknown)}; use {sorted(ALL_STAGES)}")
    _REGISTRY[scanner.name] = scanner
    return scanner


def get_scanner(name: str) -> Scanner | None:
    """The scanner called ``name``, loading installed plug-ins once if it isn't registered yet."""
    global _loaded_plugins
    if name not in _REGISTRY and not _loaded_plugins:
        _loaded_plugins = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            found = ep.load()
            if isinstance(found, Scanner):
                register_scanner(found)
    return _REGISTRY.get(name)


def scanners() -> dict[str, Scanner]:
    """Every registered scanner by name."""
    return dict(_REGISTRY)
