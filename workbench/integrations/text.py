"""A tool's text result that a notebook shows as a table when it is one (CSV with a header)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class ToolText(str):
    """A ``str`` — what a model reads — that displays as a table when its text is CSV with a header.

    ``df()`` is the table (``None`` for other text). An MCP server that answers a query as CSV
    (``customers\\r\\n8\\r\\n``) is shown as a DataFrame in a cell, and is still plain text to an agent.
    """

    __slots__ = ()

    def df(self) -> pd.DataFrame | None:
        """The rows as a DataFrame, if the text is a table: 2+ lines, the same 1+ columns on each."""
        lines = [line for line in self.replace("\r\n", "\n").split("\n") if line.strip()]
        if len(lines) < 2 or len(self) > 5_000_000:
            return None
        try:
            rows = list(csv.reader(lines))
        except csv.Error:
            return None
        width = len(rows[0])
        if any(len(r) != width for r in rows) or any(not c.strip() for c in rows[0]):
            return None
        import pandas as pd

        return pd.read_csv(io.StringIO("\n".join(lines)))

    def _repr_html_(self) -> str | None:
        table = self.df()
        return None if table is None else table.to_html(index=False)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        table = self.df()
        printer.text(str(self) if table is None else table.to_string(index=False))
