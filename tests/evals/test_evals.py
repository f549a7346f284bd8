"""Eval suites end to end: real calls to the offline models, scores in SQLite, the bootstrap gate, CLI and pytest."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.errors import ConfigError, WorkbenchError
from workbench.evals import register_scorer
from workbench.runtime import Workbench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path):
    """A project folder with the repo's support suite, its scripted judge and a store of its own."""
    shutil.copytree(ROOT / "evals", tmp_path / "evals")
    shutil.copy(ROOT / "scripted.toml", tmp_path / "scripted.toml")
    prices = "".join(
        f'[prices."local/{m}"]\ninput_cost_per_token = 0.000001\noutput_cost_per_token = 0.000002\n'
        for m in ("echo", "extractive", "scripted")
    )
    (tmp_path / "workbench.toml").write_text(f'store = "wb.db"\n[scripted]\nfile = "scripted.toml"\n{prices}')
    return tmp_path


def test_a_suite_runs_on_two_models_and_every_score_is_stored(project):
    wb = Workbench.from_config(project / "workbench.toml")
    report = wb.evals.run("support", models=["local/extractive", "local/echo"], repeats=2, progress=False)
    summary = report.summary().set_index(["model", "scorer"])
    assert summary.loc[("local/extractive", "contains"), "mean"] == 1.0
    assert summary.loc[("local/extractive", "judge"), "mean"] == 1.0
    assert summary.loc[("local/echo", "contains"), "mean"] == 0.0
    assert summary.loc[("local/echo", "judge"), "mean"] == 0.25
    assert report.failures() == [
        "local/echo [-] contains: mean 0.000 is under the threshold 0.9",
        "local/echo [-] cites: mean 0.000 is under the threshold 1",
    ]
    stored = wb.store.query("SELECT COUNT(*) n FROM eval_results")[0]["n"]
    assert stored == 16 * 2 * 2 * 4 == len(report.results)  # cases x repeats x models x scorers
    runs = wb.evals.runs("support")
    assert len(runs) == 2
    assert set(runs["status"]) == {"done"}
    assert runs["cost_usd"].gt(0).all()
    one = wb.evals.results(report.run_ids[0])
    assert one["call_id"].notna().all()
    assert set(one["call_id"]) <= set(wb.calls.df()["call_id"])
    judged = wb.calls.df()
    assert (judged["task"] == "eval:judge").sum() == 64
    assert (judged["task"] == "eval:support").sum() == 64
    fig = report.chart()
    assert [t.name for t in fig.data if t.type == "bar"] == ["local/extractive", "local/echo"]
    assert "<table" in report._repr_html_()
    runs_audited = wb.audit.df(kind="eval_run")
    assert runs_audited.shape[0] == 4  # each run when it starts and when it is done, binding its row
    assert wb.audit.df(kind="eval_result").shape[0] == 16 * 2 * 2  # each case's scores, bound when written
    assert wb.audit.verify().ok


def test_the_gate_flags_a_real_regression_and_not_a_rerun(project):
    wb = Workbench.from_config(project / "workbench.toml")
    good = wb.evals.run("support", progress=False).run_ids[0]
    again = wb.evals.run("support", progress=False).run_ids[0]
    worse = wb.evals.run("support", models="local/echo", progress=False).run_ids[0]
    same = wb.evals.compare(again, good).set_index("scorer")
    assert set(same["verdict"]) == {"unchanged"}
    assert (same["delta"] == 0).all()
    drop = wb.evals.compare(worse, good).set_index("scorer")
    assert drop.loc["contains", "verdict"] == "regressed"
    assert drop.loc["contains", "ci_high"] < 0
    assert drop.loc["grounded", "verdict"] == "unchanged"  # 1.00 -> 0.94: inside the noise of 16 cases
    assert wb.evals.compare(good, worse).set_index("scorer").loc["cites", "verdict"] == "improved"


def test_a_noisy_judge_does_not_flip_the_gate(project):
    """A judge that says yes half the time, at random: two runs' means differ, the verdict stays unchanged."""
    draws = random.Random(7)

    @register_scorer("coin")
    def coin(output, case, ctx):
        return draws.random() < 0.5

    suite = (project / "evals" / "support.eval.yaml").read_text().split("scorers:")[0]
    (project / "evals" / "noisy.eval.yaml").write_text(
        suite.replace("name: support", "name: noisy") + "scorers:\n  - coin\n"
    )
    wb = Workbench.from_config(project / "workbench.toml")
    runs = [wb.evals.run("noisy", repeats=3, progress=False).run_ids[0] for _ in range(4)]
    verdicts = [wb.evals.compare(run, runs[0]).iloc[0] for run in runs[1:]]
    means = [v["candidate"] for v in verdicts]
    assert max(means) - min(means) > 0.02  # the noise is real: a fixed threshold could land either side
    assert all(v["verdict"] == "unchanged" for v in verdicts), verdicts


def test_custom_scorers_exact_and_json_schema(project, tmp_path):
    @register_scorer("short")
    def short(output, case, ctx, words=5):
        n = len(output.split())
        return (1.0 if n <= words else words / n), f"{n} words"

    data = tmp_path / "evals" / "json.jsonl"
    cases = [
        {"id": "a", "input": "answer as json", "expected": '{"status": "ok", "items": 3}'},
        {"id": "b", "input": "hello", "expected": "nope"},
    ]
    data.write_text("".join(json.dumps(c) + "\n" for c in cases))
    (tmp_path / "evals" / "json.eval.yaml").write_text(
        "dataset: json.jsonl\nmodel: local/scripted\nscorers:\n  - exact\n  - short: {words: 4}\n"
        "  - json_schema: {schema: {type: object, required: [status, items]}}\n"
    )
    wb = Workbench.from_config(project / "workbench.toml")
    results = wb.evals.run("json", progress=False).results.set_index(["case_id", "scorer"])
    assert results.loc[("a", "exact"), "score"] == 1.0
    assert results.loc[("b", "exact"), "score"] == 0.0
    assert results.loc[("a", "json_schema"), "score"] == 1.0
    assert results.loc[("b", "json_schema"), "score"] == 0.0
    assert results.loc[("b", "json_schema"), "detail"].startswith("not JSON")
    assert results.loc[("b", "short"), "detail"].endswith("words")


@pytest.mark.parametrize(
    "yaml_text, jsonl, message",
    [
        ("dataset: d.jsonl\nscorers: [nosuch]\n", '{"input": "x"}', "no scorer named 'nosuch'"),
        ("dataset: missing.jsonl\nscorers: [exact]\n", None, "dataset missing.jsonl not found"),
        ("dataset: d.jsonl\nscorers: [exact]\n", '{"input": "x"}\nnot json', "d.jsonl line 2: not JSON"),
        ("dataset: d.jsonl\nprompt: '{question}'\nscorers: [contains]\n", '{"input": "x"}', "uses {question}"),
        ("dataset: d.jsonl\nscorers: []\n", '{"input": "x"}', "at least one scorer"),
        ("dataset: d.jsonl\nscorers: [exact]\nrepeats: 0\n", '{"input": "x"}', "repeats"),
    ],
)
def test_bad_suites_fail_with_one_line_before_any_call(project, yaml_text, jsonl, message):
    (project / "evals" / "bad.eval.yaml").write_text(yaml_text)
    if jsonl is not None:
        (project / "evals" / "d.jsonl").write_text(jsonl + "\n")
    wb = Workbench.from_config(project / "workbench.toml")
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        wb.evals.run("bad", progress=False)
    assert wb.store.query("SELECT COUNT(*) n FROM calls")[0]["n"] == 0


def test_cli_gate_exits_nonzero_on_a_regression(project, capsys):
    config = str(project / "workbench.toml")
    assert main(["--config", config, "eval", "support", "--baseline", "latest"]) == 0
    assert "no earlier run to compare with" in capsys.readouterr().out
    assert main(["--config", config, "eval", "support", "--baseline", "latest", "--fail-on-regression"]) == 0
    assert "unchanged" in capsys.readouterr().out
    good = Workbench.from_config(config).evals.latest("support")
    code = main(["--config", config, "eval", "support", "-m", "local/echo", "--baseline", good, "--fail-on-regression"])
    out = capsys.readouterr().out
    assert code == 1
    assert "REGRESSED: local/echo: cites, local/echo: contains, local/echo: judge" in out
    assert "under threshold: local/echo [-] contains" in out


def test_recorded_calls_become_cases(project):
    wb = Workbench.from_config(project / "workbench.toml")
    sources = {"kb-9": "The Utrecht office closes at 6 pm on Fridays."}
    wb.ask("When does the Utrecht office close on Fridays?", model="local/extractive", context=sources, session="s")
    wb.ask("Mail ada@example.org the invoice list", model="local/echo", session="t")  # pii is flagged by default
    suite = project / "evals" / "support.eval.yaml"
    assert wb.evals.add_cases(suite, session="s") == 1
    assert wb.evals.add_cases(suite, session="s") == 0  # already there
    assert wb.evals.add_cases(suite, flagged=True, expected=False) == 1
    cases = wb.evals.load(suite).cases
    added = {c["id"]: c for c in cases[16:]}
    office = next(c for c in added.values() if c["input"].startswith("When does"))
    assert office["expected"].startswith("The Utrecht office closes at 6 pm")
    assert "kb-9" in office["context"]
    mail = next(c for c in added.values() if c["input"].startswith("Mail"))
    assert "expected" not in mail
    assert mail["source_call"] in {r["id"] for r in wb.store.query("SELECT id FROM calls")}
    report = wb.evals.run(suite, progress=False)
    assert len(report.results) == 18 * 4
    assert (report.results["detail"].str.contains("has no 'expected'")).any()
    with pytest.raises(WorkbenchError, match="say which calls"):
        wb.evals.add_cases(suite)


def test_pytest_runs_eval_suites_as_items_and_gates_on_a_regression(project, monkeypatch):
    """One pytest process over three suites: one passes, one misses its thresholds, one regressed."""
    (project / "evals" / "echo.eval.yaml").write_text(
        (project / "evals" / "support.eval.yaml").read_text().replace("model: local/extractive", "model: local/echo")
    )
    (project / "evals" / "flag.eval.yaml").write_text("dataset: support.jsonl\nmodel: local/echo\nscorers: [flag]\n")
    scorer = (
        "import os\nfrom workbench.evals import register_scorer\n\n"
        "@register_scorer('flag')\ndef flag(output, case, ctx):\n"
        "    return os.environ['GOOD'] == '1' or int(case['id'][1:]) % 4 == 0\n"
    )
    (project / "evals" / "conftest.py").write_text(scorer)  # how a project registers its scorers for pytest
    monkeypatch.setenv("GOOD", "1")
    exec(compile(scorer, "conftest.py", "exec"), {})
    Workbench.from_config(project / "workbench.toml").evals.run(
        project / "evals" / "flag.eval.yaml", progress=False
    )  # the baseline
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=",
            "evals",
            "--wb-baseline",
            "latest",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "GOOD": "0"},
    )
    out = run.stdout
    assert run.returncode == 1, out
    assert "2 failed, 1 passed" in out
    assert "eval suite echo:" in out
    assert "eval suite flag:" in out
    assert "local/echo [-] contains: mean 0.000 is under the threshold 0.9" in out
    assert "local/echo: flag regressed 1.000 -> 0.250" in out
    assert "95% CI of the change" in out


def test_an_unknown_model_fails_before_any_call_and_an_interrupted_run_says_so(project):
    wb = Workbench.from_config(project / "workbench.toml")
    with pytest.raises(WorkbenchError, match="unknown model or route 'nope'"):
        wb.evals.run("support", models=["local/echo", "nope"], progress=False)
    assert wb.store.query("SELECT COUNT(*) n FROM calls")[0]["n"] == 0
    assert wb.evals.runs().empty

    @register_scorer("explodes")
    def explodes(output, case, ctx):
        if case["id"] == "q05":
            raise KeyboardInterrupt  # as if the user stopped the kernel mid-run
        return 1.0

    boom = "dataset: support.jsonl\nmodel: local/echo\nscorers: [explodes]\n"
    (project / "evals" / "boom.eval.yaml").write_text(boom)
    with pytest.raises(KeyboardInterrupt):
        wb.evals.run("boom", concurrency=1, progress=False)
    [run] = wb.evals.runs("boom").to_dict("records")
    assert run["status"] == "failed"
    assert run["finished_at"]
    scored = set(wb.evals.results(run["id"])["case_id"])
    assert {"q01", "q02", "q03", "q04"} <= scored
    assert "q05" not in scored
    assert len(scored) < 16  # the rest cancelled
