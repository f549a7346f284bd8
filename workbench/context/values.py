"""Notebook values rendered for a model, within a token budget.

``{df}`` in a prompt should not be ``str(df)`` (a truncated repr that hides the dtypes and
the shape) nor the whole frame. A pandas DataFrame or Series becomes a compact block: its
shape, dtypes, a ``describe()`` of the numeric columns and as many first/last rows as fit,
as a markdown table; a dict or list becomes JSON; anything else its ``str()``. Every block
fits ``max_tokens`` and says what was cut. The frame is never copied: only its head and
tail rows and the numeric summary are materialised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Counter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """A cautious token count with no tokenizer: about 3 characters a token (tables and numbers
    tokenize densely), so a block sized by it fits the real budget.
    """
    return len(text) // 3 + 1


@dataclass(frozen=True)
class Rendered:
    """A value as the model sees it: ``text``, its ``kind``, its token count and what was ``cut`` (or None)."""

    text: str
    kind: str
    tokens: int
    cut: str | None = None


def render_value(
    value: Any, max_tokens: int = 2000, *, name: str = "value", count: Counter = approx_tokens
) -> Rendered:
    """``value`` as a block of at most ``max_tokens`` tokens (by ``count``), saying what was cut."""
    if max_tokens < 50:
        raise ValueError(f"max_tokens must be at least 50 to show anything useful, not {max_tokens}")
    kind = type(value).__name__
    module = type(value).__module__
    if module.startswith("pandas") and kind == "DataFrame":
        return _frame(value, max_tokens, name, count)
    if module.startswith("pandas") and kind == "Series":
        return _frame(
            value.to_frame(name=value.name if value.name is not None else name), max_tokens, name, count, "Series"
        )
    if isinstance(value, dict | list | tuple):
        try:
            text, more = _json_prefix(value, max_tokens * _CHARS_PER_TOKEN_MAX)
            kind = "json"
        except (TypeError, ValueError):
            text, more = repr(value), False
        if more:  # only the start was written: more than fits, so it is cut, and the note says the rest
            return _clip(text, kind, max_tokens, count, whole=False)
    else:
        text = str(value)  # str(): what the object says of itself (repr unless it defines __str__)
    return _clip(text, kind, max_tokens, count)


_CHARS_PER_TOKEN_MAX = 32  # no token is longer: a JSON prefix this many characters a token long holds all that fits


def _json_prefix(value: Any, limit: int) -> tuple[str, bool]:
    """``value`` as indented JSON, written only as far as ``limit`` characters (a dict of millions of keys is not
    written whole to show its start); and whether there was more.
    """
    parts, size = [], 0
    for part in json.JSONEncoder(indent=1, ensure_ascii=False, default=str).iterencode(value):
        parts.append(part)
        size += len(part)
        if size > limit:
            return "".join(parts)[:limit], True
    return "".join(parts), False


def _clip(text: str, kind: str, max_tokens: int, count: Counter, whole: bool = True) -> Rendered:
    """``text`` as it fits ``max_tokens``, cut with a note; ``whole=False``: ``text`` is only the start of it."""
    tokens = count(text) if whole else max_tokens + 1
    if tokens <= max_tokens:
        return Rendered(text, kind, tokens)
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the note
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) + 30 <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    note = (
        f"[cut: {len(text) - lo:,} of {len(text):,} characters not shown (max {max_tokens} tokens)]"
        if whole
        else f"[cut: all but the first {lo:,} characters not shown (max {max_tokens} tokens)]"
    )
    shown = f"{text[:lo]}\n{note}"
    return Rendered(shown, kind, count(shown), note)


def _cell(value: Any) -> str:
    text = str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _rows(frame: Any, start: int, stop: int, columns: int) -> list[list[Any]]:
    part = frame.iloc[start:stop, :columns]
    return [[index, *values] for index, values in zip(part.index, part.itertuples(index=False, name=None), strict=True)]


def _number(value: float, stat: str) -> str:
    return f"{value:,.0f}" if stat == "count" else f"{value:.6g}"


_STATS = ("count", "mean", "std", "min", "25%", "50%", "75%", "max")
_EXACT_QUANTILES, _SAMPLE = 200_000, 100_000


def _summary(values: Any) -> list[float]:
    """describe()'s numbers for one numeric column without copying it: count, mean and std are summed
    in 64k-row chunks, the extremes read in place; the quartiles are exact up to 200,000 rows, else
    taken from 100,000 evenly spaced rows.
    """
    import numpy as np

    floats = values.dtype.kind == "f"
    n, mean, m2 = 0, 0.0, 0.0
    for start in range(0, len(values), 65_536):  # Chan et al.'s pairwise update: small temporaries only
        chunk = values[start : start + 65_536]
        if floats:
            chunk = chunk[~np.isnan(chunk)]
        k = len(chunk)
        if not k:
            continue
        c_mean = float(chunk.mean())
        c_m2 = float(((chunk - c_mean) ** 2).sum())
        delta, total = c_mean - mean, n + k
        mean, m2, n = mean + delta * k / total, m2 + c_m2 + delta * delta * n * k / total, total
    if not n:
        return [0.0] + [float("nan")] * 7
    low, high = (np.nanmin(values), np.nanmax(values)) if floats else (values.min(), values.max())
    sample = values if len(values) <= _EXACT_QUANTILES else values[:: len(values) // _SAMPLE]
    if floats:
        sample = sample[~np.isnan(sample)]
    q1, q2, q3 = np.percentile(sample, [25, 50, 75])
    std = (m2 / (n - 1)) ** 0.5 if n > 1 else float("nan")
    return [float(n), mean, std, float(low), float(q1), float(q2), float(q3), float(high)]


MAX_COLUMNS = 100  # the most columns of a frame shown (a budget of tokens holds no more, and each costs a summary)


def _frame(frame: Any, max_tokens: int, name: str, count: Counter, kind: str = "DataFrame") -> Rendered:
    n_rows, n_cols = frame.shape
    head = [
        f"{kind} {name}: {n_rows:,} rows × {n_cols:,} columns"
        if kind == "DataFrame"
        else f"Series {name}: {n_rows:,} rows"
    ]
    shown_cols = min(n_cols, MAX_COLUMNS)  # a wide frame: its first columns, and the rest counted by dtype
    dtypes = frame.dtypes.iloc[:shown_cols]
    head.append("dtypes: " + ", ".join(f"{c} {t}" for c, t in dtypes.astype(str).items()))
    if shown_cols < n_cols:
        rest = frame.dtypes.iloc[shown_cols:].astype(str).value_counts()
        head.append(
            f"[cut: {n_cols - shown_cols:,} of {n_cols:,} columns not shown: "
            + ", ".join(f"{n:,} {t}" for t, n in rest.items())
            + "]"
        )
    numeric = [i for i, t in enumerate(dtypes) if t.kind in "iuf"]
    if numeric and n_rows:
        summaries = [_summary(frame.iloc[:, i].to_numpy()) for i in numeric]  # (by position: names may repeat)
        rows = [[stat, *(_number(col[k], stat) for col in summaries)] for k, stat in enumerate(_STATS)]
        how = "" if n_rows <= _EXACT_QUANTILES else f"; quartiles from {_SAMPLE:,} evenly spaced rows"
        names = [str(frame.columns[i]) for i in numeric]
        head.append(f"numeric summary (as describe(){how}):\n" + _table(["", *names], rows))
    header = ["index", *map(str, frame.columns[:shown_cols])]
    preamble = "\n".join(head)

    def block(k: int) -> str:
        if k * 2 >= n_rows:
            shown, label = _rows(frame, 0, n_rows, shown_cols), f"all {n_rows:,} rows"
        else:
            gap = [["...", *(["..."] * shown_cols)]]
            shown = _rows(frame, 0, k, shown_cols) + gap + _rows(frame, n_rows - k, n_rows, shown_cols)
            label = f"first {k} and last {k} of {n_rows:,} rows"
        return f"{preamble}\nrows ({label}):\n{_table(header, shown)}"

    lo, hi = 0, min(n_rows, 200)  # at most 200 first and 200 last rows, found by bisection on the token count
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(block(mid)) + 30 <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0 and count(preamble) + 30 > max_tokens:  # even the summary is too big: clip it, and say no row shows
        clipped = _clip(preamble, kind, max(max_tokens - 30, 20), count)
        note = f"[cut: all {n_rows:,} rows not shown (max {max_tokens} tokens)]"
        text = f"{clipped.text}\n{note}"
        return Rendered(text, kind, count(text), f"{note} {clipped.cut}" if clipped.cut else note)
    text = block(lo)
    shown_rows = n_rows if lo * 2 >= n_rows else lo * 2
    cut = None
    if shown_rows < n_rows:
        cut = f"[cut: {n_rows - shown_rows:,} of {n_rows:,} rows not shown (max {max_tokens} tokens)]"
        text = f"{text}\n{cut}"
    return Rendered(text, kind, count(text), cut)
