"""Writing what a user asked to have written (a report, an audit export): one clear line when it can't be."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import WorkbenchError


def write_output(
    path: str | os.PathLike[str],
    text: str,
    what: str,
    *,
    signatures: tuple[str, ...] = (),
    overwrite: bool = False,
) -> str:
    """Write ``text`` (UTF-8) to ``path``; returns the path as given. A folder that does not exist, a path that is a
    folder, or one that may not be written is a one-line :class:`WorkbenchError` naming ``what`` and the path.

    A file already there is replaced only when it starts with one of ``signatures`` (an earlier one of these:
    written again) or with ``overwrite``: a notebook or a file of the user's own is never written over by a
    mistyped path.
    """
    target = Path(path)
    if signatures and not overwrite and target.is_file() and not _starts_with(target, signatures):
        raise WorkbenchError(
            f"{target} exists and was not written by workbench as {what}: nothing was written. Name another "
            "file, or pass overwrite=True (--overwrite) to replace it"
        )
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WorkbenchError(
            f"cannot write {what} to {target} ({reason}): pass a file in a folder that exists and may be written"
        ) from None
    return str(path)


def _starts_with(path: Path, signatures: tuple[str, ...]) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(max(len(s.encode()) for s in signatures))
    except OSError:
        return False
    return any(head.startswith(s.encode()) for s in signatures)
