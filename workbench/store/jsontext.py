"""One-line JSON text, with its encoder built once instead of once a value.

``json.JSONEncoder(...).encode`` builds the C encoder afresh on every call (~1 us); a
recorded call encodes a dozen small values (span attributes, row digests, the audit
entry, the request), so :func:`encoder` builds it once. The text is byte for byte what
``json.dumps`` with the same options gives; a value that contains itself raises
``RecursionError`` instead of ``ValueError`` (no encoder here is given one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _json
from typing import Any


def encoder(
    *,
    sort_keys: bool = False,
    separators: tuple[str, str] = (", ", ": "),
    ensure_ascii: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> Callable[[Any], str]:
    """``json.JSONEncoder(sort_keys=..., separators=..., ensure_ascii=..., default=...).encode``, built once."""
    plain = json.JSONEncoder(sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii, default=default)
    make = getattr(_json, "c_make_encoder", None)
    if make is None:  # (no C accelerator in this Python)
        return plain.encode
    strings = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    item_separator, key_separator = separators
    chunks = make(None, plain.default, strings, None, key_separator, item_separator, sort_keys, False, True)

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode
