"""What litellm's price map knows, answered from the file it ships without importing it.

``import litellm`` costs seconds (2 s on a laptop, 4-7 s on a small 2-core machine). Checking a
model name typed into a cell should not, nor should pricing a call litellm cannot price: with
``LITELLM_LOCAL_MODEL_COST_MAP`` (which ``import workbench`` sets unless the user chose otherwise)
or ``LITELLM_OFFLINE_MODE``, ``litellm.model_cost`` is exactly the JSON file litellm ships, so
reading that file (tens of milliseconds, once) says whether a name without a provider prefix is
one litellm can serve (:func:`knows_bare_name`), and whether a model served by an
OpenAI-compatible server with no configured price could be priced by litellm at all
(:func:`may_price`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICE_MAP = "model_prices_and_context_window_backup.json"  # beside litellm/__init__.py


def bundled_only() -> bool:
    """Whether litellm reads only its bundled price map in this process (as ``get_model_cost_map`` decides)."""
    local = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() == "true"
    return local or os.environ.get("LITELLM_OFFLINE_MODE", "").strip().lower() == "true"


@lru_cache(maxsize=1)
def _price_map() -> dict[str, Any] | None:
    """The price map litellm ships, parsed; ``None`` when litellm or the file is not where expected."""
    spec = importlib.util.find_spec("litellm")  # (finds the package without importing it)
    if spec is None or spec.origin is None:
        return None
    try:
        prices = json.loads(Path(spec.origin).with_name(PRICE_MAP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return prices if isinstance(prices, dict) else None


@lru_cache(maxsize=1)
def bundled_names() -> frozenset[str] | None:
    """The model names in litellm's bundled price map; ``None`` when litellm or the file is not where expected."""
    prices = _price_map()
    if prices is None:
        return None
    return frozenset(prices) - {_RULES}  # (a section of the file litellm does not read as a model)


_RULES = "fallback_generalizations"  # the map's section of name patterns litellm resolves unlisted ids with


def knows_bare_name(name: str) -> bool | None:
    """For a model name without a provider prefix: whether litellm knows it (``name in litellm.model_cost``), from
    the bundled map when that is all litellm reads and it is not imported yet; ``None`` when only litellm can say.
    """
    if "/" in name or "litellm" in sys.modules or not bundled_only():
        return None
    names = bundled_names()
    return None if names is None else name in names


def may_price(model: str, response: Any = None) -> bool:
    """Whether litellm could price a call to ``model``, an ``openai/`` deployment (an OpenAI-compatible server),
    given the server's JSON ``response`` (``None``: before the call, asked of the name alone).

    ``False`` only when that is certain without importing litellm: it reads just its bundled map and is not
    imported (so nobody registered a price in it); the response holds only the standard fields (litellm bills a
    ``usage.cost`` a server reports); no entry of the map occurs in the model's name or the one the server
    reported (an entry's last ``/`` part, as a substring, case folded: each name litellm tries is one of these
    with a date or region put on or taken off) and none of the map's name patterns matches one; and neither
    holds a ``/`` or is a provider's name (litellm reads ``openai/together_ai/...`` or a server saying
    ``replicate`` as that provider, and some providers price models the map does not list, by size or by the
    second: so ``True`` for every provider but ``openai/``). Such a call is then recorded as unpriced without
    seconds of import, as litellm would have recorded it (``tests/serving/test_catalog.py`` checks both ways).
    """
    if not model.startswith("openai/") or "litellm" in sys.modules or not bundled_only():
        return True
    names = [model.removeprefix("openai/")]
    if response is not None:
        if not _standard(response):
            return True
        names.append(response.get("model") or "")
    return any(_may_price(name.lower()) for name in names if name)


_FIELDS = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint"})
_USAGE = frozenset(
    {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"}
)


def _standard(response: Any) -> bool:
    """A server's JSON answer holding only the fields every OpenAI-compatible server sends (nothing to bill by)."""
    if not isinstance(response, dict) or not response.keys() <= _FIELDS or not isinstance(response.get("model"), str):
        return False
    usage = response.get("usage") or {}
    return isinstance(usage, dict) and usage.keys() <= _USAGE


@lru_cache(maxsize=256)
def _may_price(name: str) -> bool:
    found = _entries()
    if found is None:
        return True
    parts, providers, rules = found
    if "/" in name or name in providers:
        return True
    return any(part in name for part in parts) or any(rule.search(name) for rule in rules)


@lru_cache(maxsize=1)
def _entries() -> tuple[tuple[str, ...], frozenset[str], tuple[re.Pattern[str], ...]] | None:
    """Each map entry's last ``/`` part, lower case; the providers the map names (its entries' first parts and
    ``litellm_provider`` values); and the map's name patterns (``None``: no map to read).
    """
    prices, names = _price_map(), bundled_names()
    if prices is None or names is None:
        return None
    parts = tuple(sorted({name.rsplit("/", 1)[-1].lower() for name in names} - {""}))
    providers = {name.split("/", 1)[0].lower() for name in names if "/" in name}
    providers |= {str(v.get("litellm_provider", "")).lower() for v in prices.values() if isinstance(v, dict)}
    rules = []
    for rule in (prices.get(_RULES) or {}).get("rules", []):
        try:
            rules.append(re.compile(rule["pattern"], re.IGNORECASE))
        except (KeyError, TypeError, re.error):
            return None  # a rule not read here: only litellm can say
    return parts, frozenset(providers - {""}), tuple(rules)
