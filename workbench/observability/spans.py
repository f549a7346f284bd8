"""Spans collected in memory during a call and written with it in one transaction."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

from workbench.guardrails.scanners import scrub, scrub_values
from workbench.store import new_id
from workbench.store.jsontext import encoder

_encode = encoder(default=str)  # json.dumps(..., default=str), its encoder built once


class Trace:
    """The spans of one call: ``with trace.span("stage"):`` nests and times them."""

    __slots__ = ("trace_id", "rows", "_stack", "_open")

    def __init__(self, trace_id: str | None = None, parent_id: str | None = None):
        """A new trace, or (``trace_id``, ``parent_id``) a call inside a longer one, e.g. an agent run."""
        self.trace_id = trace_id or new_id(16)
        self.rows: list[list[Any]] = []
        self._stack: list[str] = [parent_id] if parent_id else []  # the open spans' ids (and the outer parent's)
        self._open: list[list[Any]] = []  # the open spans' rows, innermost last

    def begin(self, name: str, **attributes: Any) -> dict[str, Any]:
        """Open a span as a child of the current one; returns its attribute dict."""
        parent = self._stack[-1] if self._stack else None
        span_id = new_id()
        row = [span_id, self.trace_id, parent, None, name, time.time_ns(), None, "ok", attributes]
        self.rows.append(row)
        self._stack.append(span_id)
        self._open.append(row)
        return attributes

    def end(self, error: BaseException | None = None) -> None:
        """Close the innermost open span (marked as an error if ``error`` is given)."""
        self._stack.pop()
        row = self._open.pop()
        row[6] = time.time_ns()
        if error is not None:
            row[7] = "error"
            row[8].setdefault("error", type(error).__name__)

    def span(self, name: str, **attributes: Any) -> _Span:
        """Time a stage: ``with trace.span(name) as attrs:``; the dict collects attributes set inside the block."""
        return _Span(self, name, attributes)

    def add(self, name: str, start_ns: int, end_ns: int, status: str = "ok", **attributes: Any) -> None:
        """Add an already-timed child of the current span (e.g. one provider attempt)."""
        parent = self._stack[-1] if self._stack else None
        self.rows.append([new_id(), self.trace_id, parent, None, name, start_ns, end_ns, status, attributes])

    def for_store(self, call_id: str) -> list[tuple[Any, ...]]:
        """Rows in ``spans`` column order, stamped with the call id (attributes as JSON, secrets scrubbed)."""
        texts = scrub_values([_encode(row[8]) if row[8] else None for row in self.rows])  # (one gate for them all)
        return [(*row[:3], call_id, *row[4:8], text) for row, text in zip(self.rows, texts, strict=True)]


class _Span:
    """``Trace.span``'s context manager (a class: a generator-based one costs ~1 us more a span, 7 spans a call)."""

    __slots__ = ("_trace", "_name", "_attributes")

    def __init__(self, trace: Trace, name: str, attributes: dict[str, Any]):
        self._trace, self._name, self._attributes = trace, name, attributes

    def __enter__(self) -> dict[str, Any]:
        return self._trace.begin(self._name, **self._attributes)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        self._trace.end(error)


def run_trace(kind: str, run_id: str) -> tuple[str, str]:
    """The (trace id, root span id) of a long run (``agent``, ``workflow``): the same on every resume."""
    digest = hashlib.sha256(f"{kind}:{run_id}".encode()).hexdigest()
    return digest[:32], digest[32:48]


def span_row(
    trace_id: str,
    parent_id: str | None,
    name: str,
    start_ns: int,
    end_ns: int,
    status: str = "ok",
    call_id: str | None = None,
    span_id: str | None = None,
    /,
    **attributes: Any,
) -> tuple[Any, ...]:
    """One finished span in ``spans`` column order (for records written outside a call)."""
    attrs = {k: v for k, v in attributes.items() if v is not None}
    return (
        span_id or new_id(),
        trace_id,
        parent_id,
        call_id,
        name,
        start_ns,
        end_ns,
        status,
        scrub(_encode(attrs)) if attrs else None,
    )


def iso_ns(timestamp: str) -> int:
    """Nanoseconds since the epoch of an ISO timestamp written by ``utcnow()``."""
    return int(datetime.fromisoformat(timestamp).timestamp() * 1e9)
