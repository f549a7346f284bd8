"""Ratings stored with the call and audited; the badly rated calls become eval cases."""

import shutil
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError

ROOT = Path(__file__).resolve().parents[2]


def test_ratings_are_stored_audited_and_become_cases(wb, tmp_path):
    good = wb.ask("What is two plus two?")
    bad = wb.ask("When is the audit?", session="s")
    assert wb.feedback.rate(good.call_id, "up") == 1
    assert wb.feedback.rate(bad.call_id, False, note="it only repeated my question", by="ana") == -1
    df = wb.feedback.df()
    assert df[["call_id", "rating", "by"]].values.tolist()[0] == [bad.call_id, -1, "ana"]
    assert df.iloc[0]["note"] == "it only repeated my question"
    assert df.iloc[0]["prompt"] == "When is the audit?"
    rated = wb.audit.df(kind="feedback")
    assert list(rated["ref"]) == [good.call_id, bad.call_id]
    assert rated.iloc[1]["user"] == "ana"
    shutil.copytree(ROOT / "evals", tmp_path / "evals")
    suite = tmp_path / "evals" / "support.eval.yaml"
    assert wb.evals.add_cases(suite, rated="down", expected=False) == 1
    assert wb.evals.load(suite).cases[-1]["input"] == "When is the audit?"
    with pytest.raises(WorkbenchError, match="a rating is up or down"):
        wb.feedback.rate(good.call_id, "meh")
    with pytest.raises(WorkbenchError, match="no call 'nope' to rate"):
        wb.feedback.rate("nope", "up")
    with pytest.raises(WorkbenchError, match="rated is 'up' or 'down'"):
        wb.evals.add_cases(suite, rated="sideways")
