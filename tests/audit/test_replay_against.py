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
    prices = "".join(
        f'[prices."local/{m}"]\ninput_cost_per_token = 0.000001\noutput_cost_per_token = 0.000002\n'
        for m in ("echo", "extractive")
    )
    (tmp_path / "workbench.toml").write_text(f'store = "wb.db"\n{prices}')
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    sources = {
        "kb-1": "Invoices from Northwind Devices are due within 30 days.",
        "kb-2": "Paying within 10 days earns a 2 percent discount.",
    }
    for question in ("When are Northwind invoices due?", "What discount does early payment earn?"):
        wb.ask(question, model="local/extractive", session="support", context=sources)
    return wb


def test_against_another_model_shows_both_answers_diffs_and_deltas(recorded):
    report = recorded.replay("support", against="local/echo")
    assert len(report) == 2
    assert not report["identical"].any()
    first = report.iloc[0]
    assert first["recorded_model"] == "local/extractive"
    assert first["model"] == "local/echo"
    assert "30 days" in first["recorded"]
    assert first["replayed"].startswith("When are Northwind invoices due?")
    assert first["diff"].startswith("-")
    assert 0 <= first["similarity"] < 1
    assert first["cost_delta"] == pytest.approx(first["cost"] - first["cost_recorded"])
    new = recorded.store.query("SELECT replay_of, model FROM calls WHERE id = ?", (first["new_call_id"],))[0]
    assert new == {"replay_of": first["call_id"], "model": "local/echo"}
    same = recorded.replay("support", against="local/extractive")
    assert same["identical"].all()
    assert (same["similarity"] == 1.0).all()
    assert (same["diff"] == "").all()


def test_a_suite_grades_both_answers(recorded):
    report = recorded.replay("support", against="local/echo", suite="support")
    assert (report["contains_recorded"] == 1.0).all()
    assert (report["contains"] == 0.0).all()
    assert (report["cites_recorded"] == 1.0).all()
    assert (report["cites"] == 0.0).all()


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
    assert (
        main(
            [
                "--config",
                str(tmp_path / "workbench.toml"),
                "replay",
                "support",
                "--against",
                "local/echo",
                "--suite",
                "support",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "0/2 identical on local/echo" in out
    assert "contains_recorded" in out


def test_a_replay_says_when_the_provider_served_another_model_version(tmp_path, chaos, capsys):
    from workbench.cli import main

    srv = chaos(name="gpt", served_model="gpt-x-2024-05-13", system_fingerprint="fp_1")
    (tmp_path / "workbench.toml").write_text(
        f'store = "r.db"\n[routes.gpt]\ndeployments = [{{ model = "openai/gpt-x", api_base = "{srv.url}" }}]\n'
    )
    config = str(tmp_path / "workbench.toml")
    wb = Workbench.from_config(config)
    first = wb.ask("hello", model="gpt", session="s")
    served = wb.calls.attempts(first.call_id).iloc[0]
    assert (served["response_model"], served["system_fingerprint"]) == ("gpt-x-2024-05-13", "fp_1")
    assert served["request_id"].startswith("chatcmpl-gpt")
    same = wb.replay("s")
    assert not same["served_changed"].any()
    assert same["served"].tolist() == ["gpt-x-2024-05-13"]
    offline = Workbench.from_config(config, mode="replay")
    assert offline.replay("s")["served"].tolist() == ["gpt-x-2024-05-13"]  # the recording answers, as recorded
    srv.served_model = "gpt-x-2024-08-06"  # the alias now points at a newer snapshot
    report = wb.replay("s")
    assert report["identical"].all()
    assert report["served_changed"].tolist() == [True]
    assert main(["--config", config, "replay", "s"]) == 0
    out = capsys.readouterr().out
    assert "1 served by another model version than recorded" in out
    assert "gpt-x-2024-08-06" in out
    against = wb.replay("s", against="gpt")
    assert against["served_changed"].tolist() == [True]


def test_an_eval_against_its_baseline_says_when_the_served_version_changed(tmp_path, chaos):
    srv = chaos(name="gpt", served_model="gpt-x-2024-05-13", reply="Parking is in the north lot.")
    (tmp_path / "cases.jsonl").write_text('{"id": "1", "input": "Where to park?", "expected": "north lot"}\n')
    (tmp_path / "s.eval.yaml").write_text("name: s\ndataset: cases.jsonl\nscorers: [contains]\n")
    wb = Workbench.from_config(store=str(tmp_path / "e.db"))
    wb.add_route("gpt", [{"model": "openai/gpt-x", "api_base": srv.url}])
    base = wb.evals.run(tmp_path / "s.eval.yaml", models=["gpt"], progress=False)
    srv.served_model = "gpt-x-2024-08-06"
    new = wb.evals.run(tmp_path / "s.eval.yaml", models=["gpt"], progress=False)
    gate = wb.evals.compare(new.runs[0]["id"], base.runs[0]["id"])
    assert gate["verdict"].tolist() == ["unchanged"]
    assert gate["served_changed"].tolist() == ["gpt-x-2024-05-13 -> gpt-x-2024-08-06"]
