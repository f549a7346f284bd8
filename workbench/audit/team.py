"""A team's spend from its analysts' audit exports: each verified first, then merged into one report.

Each analyst keeps their own store; ``workbench audit export -o ana.jsonl`` writes its entries with
the chain's proof. ``workbench team report ana.jsonl bob.jsonl ...`` (or :func:`team_report`)
checks every file's proof with the audit key of this environment (the team's shared
``WORKBENCH_AUDIT_KEY``), leaves out — and names — a file that does not verify, and sums the
calls of the others by user, model, task and day: a DataFrame, a plotly figure and an HTML page.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.audit.log import verify_export
from workbench.errors import WorkbenchError
from workbench.files import write_output

if TYPE_CHECKING:
    import pandas as pd

BY = ("user", "model", "task", "day")


_SIGNATURE = "<!doctype html><meta charset=utf-8><title>Team report</title>"  # how a team report starts


@dataclass
class TeamReport:
    """The merged calls (``calls``: one row per call entry) and the files left out, with why."""

    calls: pd.DataFrame
    files: list[str]
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def df(self, by: tuple[str, ...] = BY) -> pd.DataFrame:
        """Calls, tokens and cost summed by ``by`` (any of user, model, task, day, store)."""
        unknown = [b for b in by if b not in (*BY, "store")]
        if unknown:
            raise WorkbenchError(f"cannot group by {unknown[0]!r}: use any of {', '.join((*BY, 'store'))}")
        grouped = self.calls.groupby(list(by), dropna=False)
        out = grouped.agg(calls=("call", "count"), tokens=("tokens", "sum"), cost_usd=("cost_usd", "sum"))
        return out.reset_index().sort_values("cost_usd", ascending=False, ignore_index=True)

    def figure(self) -> Any:
        """Cost per day, a bar per user (plotly)."""
        import plotly.express as px

        data = self.df(("day", "user"))
        fig = px.bar(data, x="day", y="cost_usd", color="user", title="Team spend per day (USD)")
        fig.update_layout(barmode="stack", xaxis_title=None, yaxis_title="USD")
        return fig

    def html(self, path: str | Path | None = None, *, overwrite: bool = False) -> str:
        """The report as one HTML page (the figure, the table, the files left out); written to ``path`` if given (a
        file there that is not an earlier team report is replaced only with ``overwrite``).
        """
        left = "".join(f"<li>{html.escape(f)}: {html.escape(why)}</li>" for f, why in self.left_out) or "<li>none</li>"
        table = self.df().to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.6g}")
        figure = self.figure().to_html(full_html=False, include_plotlyjs="cdn")
        files = ", ".join(html.escape(f) for f in self.files) or "none"
        page = (
            f"{_SIGNATURE}"
            f"<h1>Team report</h1><p>From {files}: {len(self.calls)} calls, "
            f"${self.calls['cost_usd'].sum():.6f}.</p>{figure}<h2>By user, model, task and day</h2>{table}"
            f"<h2>Left out (their proof did not verify)</h2><ul>{left}</ul>"
        )
        if path is not None:
            write_output(path, page, "the team report", signatures=(_SIGNATURE,), overwrite=overwrite)
        return page

    def __str__(self) -> str:
        lines = [f"{len(self.calls)} calls from {len(self.files)} export(s), ${self.calls['cost_usd'].sum():.6f}"]
        lines += [f"left out {f}: {why}" for f, why in self.left_out]
        return "\n".join(lines)


def team_report(paths: list[str | Path]) -> TeamReport:
    """Verify each audit export, leave out (and name) those that fail, and merge the calls of the rest."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    files: list[str] = []
    left_out: list[tuple[str, str]] = []
    for path in paths:
        name = str(path)
        try:
            check = verify_export(path)
        except WorkbenchError as exc:
            left_out.append((name, str(exc)))
            continue
        if not check.ok:
            left_out.append((name, f"entry {check.first_bad_id}: {check.reason}"))
            continue
        files.append(name)
        for line in Path(path).read_text(encoding="utf-8").splitlines()[:-1]:
            entry = json.loads(line)
            if entry.get("kind") != "call":
                continue
            payload = entry["payload"]
            rows.append(
                {
                    "store": Path(name).stem,
                    "call": payload.get("call"),
                    "day": str(entry.get("ts", ""))[:10],
                    "user": (payload.get("who") or {}).get("user") or "(nobody)",
                    "model": payload.get("model") or payload.get("route"),
                    "task": payload.get("task") or "(none)",
                    "status": payload.get("status"),
                    "tokens": int(payload.get("tokens") or 0),
                    "cost_usd": float(payload.get("cost_usd") or 0.0),
                }
            )
    if not files:
        reasons = "; ".join(f"{f}: {why}" for f, why in left_out) or "no files given"
        raise WorkbenchError(f"no audit export could be used ({reasons})")
    columns = ["store", "call", "day", "user", "model", "task", "status", "tokens", "cost_usd"]
    return TeamReport(pd.DataFrame(rows, columns=columns), files, left_out)
