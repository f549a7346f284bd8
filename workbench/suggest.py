"""Did-you-mean hints for a mistyped option, shared by the CLI and the magics."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_UNKNOWN = re.compile(r"unrecognized arguments: (.+)")


def did_you_mean(message: str, options: Iterable[str]) -> str:
    """``"; did you mean --model?"`` for the unknown ``--flags`` named in an argparse ``message`` that are close
    to one of ``options`` (``""`` when none is).
    """
    m = _UNKNOWN.search(message)
    if not m:
        return ""
    known = [o for o in options if o.startswith("-")]
    flags = [w.split("=", 1)[0] for w in m.group(1).split() if w.startswith("-")]
    hints = {flag: close[0] for flag in flags if (close := difflib.get_close_matches(flag, known, n=1, cutoff=0.6))}
    if not hints:
        return ""
    if len(flags) == 1:
        return f"; did you mean {next(iter(hints.values()))}?"
    return "; did you mean " + ", ".join(f"{right} for {wrong}" for wrong, right in hints.items()) + "?"
