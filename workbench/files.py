"""Writing what a user asked to have written (a report, an audit export): one clear line when it can't be."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import WorkbenchError


def write_output(path: str | os.PathLike[str], text: str, what: str) -> str:
    """Write ``text`` (UTF-8) to ``path``; returns the path as given. A folder that does not exist, a path that is a
    folder, or one that may not be written is a one-line :class:`WorkbenchError` naming ``what`` and the path.
    """
    target = Path(path)
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkbenchError(
            f"cannot write {what} to {target} ({reason}): pass a file in a folder that exists and may be written"
        ) from None
    return str(path)
