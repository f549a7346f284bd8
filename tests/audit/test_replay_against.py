"""Replay beyond exact: a recorded session re-executed on another model, side by side, with scores."""

import shutil
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.runtime import Workbench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recorded(tmp_path):
    shutil.copytree(ROOT / "evals", tmp_path / "evals")
    prices = "".join(f'[prices."local/{m}"]\ninput_cost_per_token = 0.000001\noutput_cost_per_token = 0.000002\n'
                     for m in ("echo", "extractive"))
    (tmp_path / "workbench.toml").write_text(f'store = "wb.db"\n{prices}')
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    sources = {"kb-1": "Invoices from Northwind Devices are due within 30 days.",
               "kb-2": "Paying within 10 days earns a 2 percent discount."}
    for question in ("When are Northwind invoices due?", "What discount does early payment earn?"):
        wb.ask(question, model="local/extractive", session="support", context=sources)
    return wb


def test_against_another_model_shows_both_answers_diffs_and_deltas(recorded):
    report = recorded.replay("support", against="local/echo")
    assert len(report) == 2 and not report["identical"].any()
    first = report.iloc[0]
    assert first["recorded_model"] == "local/extractive" and first["model"] == "local/echo"
    assert "30 days" in first["recorded"] and first["replayed"].startswith("When are Northwind invoices due?")
    assert first["diff"].startswith("-") and 0 <= first["similarity"] < 1
    assert first["cost_delta"] == pytest.approx(first["cost"] - first["cost_recorded"])
    new = recorded.store.query("SELECT replay_of, model FROM calls WHERE id = ?", (first["new_call_id"],))[0]
    assert new == {"replay_of": first["call_id"], "model": "local/echo"}
    same = recorded.replay("support", against="local/extractive")
    assert same["identical"].all() and (same["similarity"] == 1.0).all() and (same["diff"] == "").all()


def test_a_suite_grades_both_answers(recorded):
    report = recorded.replay("support", against="local/echo", suite="support")
    assert (report["contains_recorded"] == 1.0).all() and (report["contains"] == 0.0).all()
    assert (report["cites_recorded"] == 1.0).all() and (report["cites"] == 0.0).all()


def test_against_errors_are_one_line(recorded, tmp_path):
    with pytest.raises(WorkbenchError, match="unknown model or route 'nope'"):
        recorded.replay("support", against="nope")
    with pytest.raises(WorkbenchError, match="give against= as well"):
        recorded.replay("support", suite="support")
    offline = Workbench.from_config(tmp_path / "workbench.toml", mode="replay")
    with pytest.raises(WorkbenchError, match="needs live mode"):
        offline.replay("support", against="local/echo")
    assert recorded.store.query("SELECT COUNT(*) n FROM calls")[0]["n"] == 2  # nothing was sent


def test_cli_replay_against(recorded, tmp_path, capsys):
    assert main(["--config", str(tmp_path / "workbench.toml"), "replay", "support", "--against", "local/echo",
                 "--suite", "support"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "0/2 identical on local/echo" in out and "contains_recorded" in out
