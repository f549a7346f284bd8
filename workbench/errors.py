"""The one error hierarchy users see.

::

    WorkbenchError            base: a user mistake or a failure the user can act on
    ├── UnknownOption         an option ask() does not take (also a TypeError, as Python's own would be)
    ├── ConfigError           malformed workbench.toml / [tool.workbench] / WORKBENCH_* value
    ├── UnknownModel          -m names neither a route nor a model litellm knows
    ├── TemplateError         {name} in a prompt that the namespace does not define
    ├── ProviderError         every deployment of a route failed (attempts attached)
    ├── ReplayMiss            replay mode found no recorded call for a request
    ├── BudgetExceeded        the call's worst case does not fit a budget (nothing was sent)
    ├── KillSwitchActive      the kill switch is on (nothing was sent)
    ├── TeamStateDown         [team] Redis cannot be reached and budgets fail closed (nothing was sent)
    ├── ContextOverflow       the fixed part of a context (system, pinned, input) is over budget
    ├── ImageError            an image that is not one, is over the size limits, or goes to a model that cannot see
    ├── ToolError             a tool failed or is unknown (MCP or Python)
    ├── ApprovalError         unknown, already decided (lost the race), expired, malformed, or not yours
    ├── RunBusy               another caller is still continuing this run
    ├── WorkflowError         a malformed workflow (unknown dependency, cycle) or a failed step
    ├── AuditKeyMissing       no audit key to check or extend the chain
    │   └── AuditKeyUnsafe    the key is short enough to guess, or its file is readable by others or theirs
    ├── AuditChainBroken      the chain's tail does not match its head: appends stop
    └── GuardrailViolation    a guardrail blocked the call (nothing was sent)
        ├── ToolDenied        a tool call broke a boundary (path, host, argument check)
        ├── SessionLocked     too many violations: the session is locked until reset
        └── SchemaViolation   the answer did not match the schema, even after one re-ask

All are importable from ``workbench`` (the factor-local ones lazily). Every
message says what was wrong and what to do, in its first line.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Any

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


class WorkbenchError(Exception):
    """Base class of every error workbench raises on purpose."""


class UnknownOption(WorkbenchError, TypeError):
    """A keyword ``ask()`` does not take, or options that are not an ``AskOptions``."""


class ConfigError(WorkbenchError):
    """The configuration is malformed: the message names the file, key and expectation."""


class UnknownModel(WorkbenchError):
    """A model or route name that is neither configured nor known to litellm."""


class TemplateError(WorkbenchError):
    """A ``{name}`` placeholder in a prompt could not be filled."""


class ProviderError(WorkbenchError):
    """Every deployment of a route failed; ``attempts`` lists what was tried."""

    def __init__(self, message: str, attempts: list[Any] | None = None, call_id: str = ""):
        super().__init__(message)
        self.attempts = attempts or []
        self.call_id = call_id


class ReplayMiss(WorkbenchError):
    """Replay mode has no recorded call with this request's fingerprint."""

    def __init__(self, message: str, closest_call_id: str | None = None, diff: str = ""):
        super().__init__(message)
        self.closest_call_id = closest_call_id
        self.diff = diff


class BudgetExceeded(WorkbenchError):
    """A call's worst-case cost does not fit a budget that covers it; nothing was sent."""


class GuardrailViolation(WorkbenchError):
    """A guardrail blocked the call (the message names the scanner and what it found); nothing was sent."""


class KillSwitchActive(WorkbenchError):
    """The kill switch is on: no call is sent until it is lifted."""


class TeamStateDown(WorkbenchError):
    """The team's Redis (``[team] redis_url``) cannot be reached and budgets fail closed: nothing was sent."""


def shown(value: Any) -> str:
    """``repr(value)`` as an error message quotes it: at most ~60 characters of a string, six items of a list or
    dict ("..." for the rest), so a wrong value of a million items or characters is still a short line, made
    at once (``reprlib``).
    """
    return _short_repr().repr(value)


@functools.cache
def _short_repr() -> Any:
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = short.maxlong = 60
    return short


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside the workbench package: the user's line (a
    notebook cell, a script) that made the call, however deep inside the workbench the warning arose.
    """
    level, frame = 2, sys._getframe(1)  # 2: the caller of this function
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=level)
