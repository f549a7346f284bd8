"""wb.calls: the call log as a frame, filtered as every other view filters."""

import pytest

from workbench.errors import WorkbenchError


def test_since_takes_an_age_or_a_date_as_every_since_does_and_refuses_anything_else(wb):
    """``since="30d"`` compared the text "30d" with ISO timestamps and showed no calls; "notadate" did the same."""
    wb.ask("one", model="local/echo")
    wb.ask("two", model="local/echo")
    assert wb.calls.df(since="30d")["prompt"].tolist() == ["one", "two"]
    assert wb.calls.df(since="2000-01-01")["prompt"].tolist() == ["one", "two"]
    assert wb.calls.df(since="2999-01-01").empty
    with pytest.raises(WorkbenchError, match="'notadate' is not a time: write an age such as 30d"):
        wb.calls.df(since="notadate")


def test_a_limit_past_what_sqlite_counts_and_an_unknown_trace_are_one_short_line(wb):
    wb.ask("one", model="local/echo")
    for limit in (10**100, -1, 2.5):  # (10**100 was a raw IntegrityError: datatype mismatch)
        with pytest.raises(WorkbenchError, match="^limit is how many of the latest calls to show, a whole number"):
            wb.calls.df(limit=limit)
    assert len(wb.calls.df(limit=2**63 - 1)) == 1
    with pytest.raises(WorkbenchError, match=r"^no call, run or trace 'x+\.\.\.x+': %llm_calls lists") as caught:
        wb.trace("x" * 1_000_000)
    assert len(str(caught.value)) < 200
