"""A session as a transcript: Markdown, a new notebook, or JSON lines, with secrets scrubbed.

Each turn is what was asked and answered, with its footer (model, tokens, cost, latency, call id,
time). The turns are the session's recorded calls since its last reset, oldest first: the same
calls ``wb.calls.df(session=)`` and ``wb.replay(session)`` show.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from workbench.errors import WorkbenchError
from workbench.files import write_output
from workbench.guardrails.scanners import scrub
from workbench.store import Store

TranscriptFormat = Literal["md", "ipynb", "jsonl"]
_COLUMNS = "id, started_at, status, model, route, prompt, text, prompt_tokens, completion_tokens, cost_usd, latency_ms"


def turns(store: Store, session: str) -> list[dict[str, Any]]:
    """The session's calls since its last reset, oldest first, each with its text scrubbed of secrets."""
    rows = store.query(
        f"SELECT {_COLUMNS} FROM calls WHERE session = ? AND started_at >= ? ORDER BY started_at",
        (session, store.session_start(session)),
    )
    return [{**row, "prompt": scrub(row["prompt"]) or "", "text": scrub(row["text"]) or ""} for row in rows]


def footer(turn: dict[str, Any]) -> str:
    """Model, tokens, cost, latency, call id and time in one line."""
    cost = "cost unknown" if turn["cost_usd"] is None else f"${turn['cost_usd']:.6f}"
    tokens = f"{turn['prompt_tokens'] or 0} → {turn['completion_tokens'] or 0} tokens"
    status = "" if turn["status"] == "ok" else f" · {turn['status']}"
    where = f"call {turn['id']} · {turn['started_at']}{status}"
    return f"{turn['model'] or turn['route']} · {tokens} · {cost} · {turn['latency_ms']:.0f} ms · {where}"


def export(
    store: Store,
    session: str,
    path: str | os.PathLike[str],
    format: TranscriptFormat | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``session`` to ``path`` as Markdown (``.md``), a notebook (``.ipynb``) or JSON lines (``.jsonl``).

    A file already there is replaced only if it is a transcript written here (exported again), or with
    ``overwrite``: a notebook or notes of the user's own are never written over by a mistyped path.
    """
    target = Path(path)
    kind = format or target.suffix.lstrip(".").lower()
    if kind not in ("md", "ipynb", "jsonl"):
        raise WorkbenchError(f"{target.name}: write a transcript as .md, .ipynb or .jsonl (or pass format=)")
    if target.is_file() and not overwrite and not _a_transcript(target, kind):
        raise WorkbenchError(
            f"{target} exists and is not a transcript workbench wrote: nothing was written. Name another file, "
            "or pass overwrite=True (%llm_export --overwrite) to replace it"
        )
    found = turns(store, session)
    if not found:
        raise WorkbenchError(f"session {session!r} has no calls since its last reset: nothing to export")
    text = {"md": _markdown, "ipynb": _notebook, "jsonl": _jsonl}[kind](session, found)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # (a file where a folder of the path should be)
        raise WorkbenchError(
            f"cannot make the folder {target.parent} for the transcript ({exc.strerror or type(exc).__name__}): "
            "pass a path in a folder that exists or can be made"
        ) from None
    write_output(target, text, "the transcript", overwrite=True)  # (checked above: a transcript, or overwrite)
    return target


def _a_transcript(path: Path, kind: str) -> bool:
    """Whether the file at ``path`` is a transcript :func:`export` wrote (its first line, or its notebook metadata)."""
    try:
        if kind == "ipynb":
            notebook = json.loads(path.read_text(encoding="utf-8"))
            return "session" in (notebook.get("metadata", {}).get("workbench") or {})
        with path.open(encoding="utf-8") as fh:
            first = fh.readline(100_000)
        if kind == "md":
            return first.startswith("# Session ")
        row = json.loads(first)
        return isinstance(row, dict) and {"session", "prompt", "text"} <= row.keys()
    except (OSError, ValueError, AttributeError):  # (unreadable, not UTF-8, not JSON, not a notebook)
        return False


def _markdown(session: str, found: list[dict[str, Any]]) -> str:
    parts = [f"# Session {session}\n"]
    for n, turn in enumerate(found, 1):
        parts.append(f"## Turn {n}\n\n**Asked**\n\n{turn['prompt']}\n\n**Answered**\n\n{turn['text']}\n")
        parts.append(f"<sub>{footer(turn)}</sub>\n")
    return "\n".join(parts)


def _notebook(session: str, found: list[dict[str, Any]]) -> str:
    import nbformat

    cells = [nbformat.v4.new_markdown_cell(f"# Session {session}")]
    for turn in found:
        meta = {"workbench": {k: turn[k] for k in ("id", "started_at", "model", "route", "status", "cost_usd")}}
        body = f"**Asked**\n\n{turn['prompt']}\n\n**Answered**\n\n{turn['text']}\n\n<sub>{footer(turn)}</sub>"
        cells.append(nbformat.v4.new_markdown_cell(body, metadata=meta))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"workbench": {"session": session}})
    return str(nbformat.writes(nb))


def _jsonl(session: str, found: list[dict[str, Any]]) -> str:
    return "".join(json.dumps({"session": session, **turn}, ensure_ascii=False) + "\n" for turn in found)
