"""Which bare model names litellm knows, answered from its bundled price map without importing it.

``import litellm`` costs seconds (2 s on a laptop, 6-7 s on a small 2-core machine). Checking a
model name typed into a cell should not: with ``LITELLM_LOCAL_MODEL_COST_MAP`` (which
``import workbench`` sets unless the user chose otherwise) or ``LITELLM_OFFLINE_MODE``,
``litellm.model_cost`` is exactly the JSON file litellm ships, so reading that file (tens of
milliseconds, once) says whether a name without a provider prefix is one litellm can serve.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from functools import lru_cache
from pathlib import Path

PRICE_MAP = "model_prices_and_context_window_backup.json"  # beside litellm/__init__.py


def bundled_only() -> bool:
    """Whether litellm reads only its bundled price map in this process (as ``get_model_cost_map`` decides)."""
    local = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() == "true"
    return local or os.environ.get("LITELLM_OFFLINE_MODE", "").strip().lower() == "true"


@lru_cache(maxsize=1)
def bundled_names() -> frozenset[str] | None:
    """The model names in litellm's bundled price map; ``None`` when litellm or the file is not where expected."""
    spec = importlib.util.find_spec("litellm")  # (finds the package without importing it)
    if spec is None or spec.origin is None:
        return None
    try:
        prices = json.loads(Path(spec.origin).with_name(PRICE_MAP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return frozenset(prices) - {"fallback_generalizations"}  # (a section of the file litellm does not read as a model)


def knows_bare_name(name: str) -> bool | None:
    """For a model name without a provider prefix: whether litellm knows it (``name in litellm.model_cost``), from
    the bundled map when that is all litellm reads and it is not imported yet; ``None`` when only litellm can say.
    """
    if "/" in name or "litellm" in sys.modules or not bundled_only():
        return None
    names = bundled_names()
    return None if names is None else name in names
