"""A team report from several analysts' audit exports: each proof verified, a tampered file named and left out."""

import json

import pytest

from workbench.audit.team import team_report
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.runtime import Workbench

PRICES = {"local/echo": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}


@pytest.fixture
def exports(tmp_path):
    """Two analysts' stores (two machines' worth), each exported with its proof."""
    paths = []
    for name, user, n in (("ana", "ana", 3), ("bob", "bob", 2)):
        wb = Workbench.from_config(store=str(tmp_path / f"{name}.db"), prices=PRICES)
        for i in range(n):
            wb.ask(f"question {i} from {user}", model="local/echo", user=user, task="triage" if i else "summary")
        path = tmp_path / f"{name}.jsonl"
        wb.audit.export(path)
        wb.close()
        paths.append(path)
    return paths


def test_the_exports_merge_by_user_model_task_and_day(exports):
    report = team_report(exports)
    assert report.left_out == []
    assert len(report.calls) == 5
    by_user = report.df(("user",)).set_index("user")
    assert by_user.loc["ana", "calls"] == 3
    assert by_user.loc["bob", "calls"] == 2
    assert by_user["cost_usd"].sum() == pytest.approx(report.calls["cost_usd"].sum())
    assert by_user.loc["ana", "cost_usd"] > 0
    full = report.df()
    assert list(full.columns) == ["user", "model", "task", "day", "calls", "tokens", "cost_usd"]
    assert set(full["task"]) == {"triage", "summary"}
    page = report.html()
    assert "Team report" in page
    assert "ana" in page
    assert "plotly" in page


def test_a_tampered_export_is_named_and_left_out_and_the_cli_says_so(exports, tmp_path, capsys):
    lines = exports[1].read_text().splitlines()
    entry = json.loads(lines[1])
    entry["payload"]["cost_usd"] = 0.0  # the analyst lowers their spend
    lines[1] = json.dumps(entry)
    forged = tmp_path / "bob-edited.jsonl"
    forged.write_text("\n".join(lines) + "\n")
    report = team_report([exports[0], forged])
    assert [f for f, _ in report.left_out] == [str(forged)]
    assert "differs from the hashed text" in report.left_out[0][1]
    assert set(report.calls["user"]) == {"ana"}
    html_path = tmp_path / "team.html"
    code = main(["team", "report", str(exports[0]), str(forged), "--by", "user", "--html", str(html_path)])
    out = capsys.readouterr().out
    assert code == 1  # something was left out
    assert f"left out {forged}" in out
    assert html_path.read_text().count("bob-edited.jsonl") == 1
    with pytest.raises(WorkbenchError, match="no audit export could be used"):
        team_report([forged])
    assert main(["team", "report", str(forged)]) == 2
