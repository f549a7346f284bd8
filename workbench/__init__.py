"""workbench: an 11-factor AI engineering workbench that lives in Jupyter.

Public names are loaded lazily so ``import workbench`` and ``%load_ext workbench``
stay fast: litellm, pandas, plotly and pydantic are imported on first use.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# litellm must never fetch its price map or tokenizers over the network. The user
# may choose otherwise by setting these variables before importing workbench.
for _name, _value in (
    ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ("LITELLM_OFFLINE_MODE", "true"),
    ("HF_HUB_OFFLINE", "1"),
):
    os.environ.setdefault(_name, _value)

from workbench.errors import (  # noqa: E402  (light module: no third-party imports)
    BudgetExceeded,
    ConfigError,
    GuardrailViolation,
    KillSwitchActive,
    ProviderError,
    ReplayMiss,
    TeamStateDown,
    TemplateError,
    UnknownModel,
    UnknownOption,
    WorkbenchError,
)

if TYPE_CHECKING:
    from workbench.result import Result
    from workbench.runtime import Workbench

__all__ = [
    "ApprovalError",
    "AuditChainBroken",
    "AuditKeyMissing",
    "AuditKeyUnsafe",
    "BudgetExceeded",
    "ConfigError",
    "ContextOverflow",
    "GuardrailViolation",
    "ImageError",
    "KillSwitchActive",
    "TeamStateDown",
    "ProviderError",
    "ReplayMiss",
    "Result",
    "RunBusy",
    "SchemaViolation",
    "SessionLocked",
    "TemplateError",
    "ToolDenied",
    "ToolError",
    "UnknownModel",
    "UnknownOption",
    "Workbench",
    "WorkbenchError",
    "WorkflowError",
    "get",
    "load_ipython_extension",
]

__version__ = "0.1.0"

_current: Workbench | None = None


def get() -> Workbench:
    """The notebook's one Workbench, built from the project's config on first use."""
    global _current
    if _current is None:
        from workbench.runtime import Workbench

        _current = Workbench.from_config()
    return _current


def _set_current(wb: Workbench | None) -> None:
    """Make ``wb`` the instance that ``get()`` and the magics use."""
    global _current
    _current = wb


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext workbench``: register the magics (nothing heavy is imported)."""
    from workbench.jupyter.magics import register

    register(ipython)


# Errors raised by one factor, defined beside the code that raises them and
# exported here lazily so `except workbench.ApprovalError` needs no deep import.
_LAZY_ERRORS = {
    "ApprovalError": "workbench.approvals.queue",
    "AuditChainBroken": "workbench.store.chain",
    "AuditKeyMissing": "workbench.store.chain",
    "AuditKeyUnsafe": "workbench.store.chain",
    "ContextOverflow": "workbench.context.budget",
    "ImageError": "workbench.serving.images",
    "RunBusy": "workbench.orchestration.claims",
    "SchemaViolation": "workbench.guardrails.schema",
    "SessionLocked": "workbench.guardrails.guard",
    "ToolDenied": "workbench.guardrails.guard",
    "ToolError": "workbench.integrations.tools",
    "WorkflowError": "workbench.orchestration.workflow",
}


def __getattr__(name: str) -> Any:
    if name == "Workbench":
        from workbench.runtime import Workbench

        return Workbench
    if name == "Result":
        from workbench.result import Result

        return Result
    if name in _LAZY_ERRORS:
        import importlib

        return getattr(importlib.import_module(_LAZY_ERRORS[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
