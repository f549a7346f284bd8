import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

from workbench.cli import main
from workbench.runtime import Workbench


def test_calls_and_replay_commands(tmp_path, capsys, monkeypatch):
    toml = tmp_path / "workbench.toml"
    toml.write_text('store = "w.db"\n[routes.r]\ndeployments = [{ model = "local/echo" }]\n')
    wb = Workbench.from_config(toml)
    wb.ask("first question", session="s", model="r")
    wb.ask("second question", session="s")
    config = str(toml)
    assert main(["--config", config, "calls", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["prompt"] for r in rows] == ["first question", "second question"]
    assert main(["--config", config, "calls"]) == 0
    assert "second question" in capsys.readouterr().out
    assert main(["--config", config, "replay", "s"]) == 0
    assert "2/2 calls identical" in capsys.readouterr().out
    toml.write_text('store = "w.db"\n[routes.r]\ndeployments = [{ model = "local/extractive" }]\n')
    assert main(["--config", config, "replay", "s"]) == 1  # the route serves another model now: its answer differs
    assert "DIFFERENT" in capsys.readouterr().out
    assert main(["--config", config, "replay", "nope"]) == 2
    assert capsys.readouterr().err.startswith("workbench: no recorded calls in session 'nope'")
    wb.store.execute("UPDATE calls SET text = 'changed' WHERE prompt = 'second question'")
    assert main(["--config", config, "replay", "s"]) == 2  # an answer edited in the file is refused, not compared
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "replay refused: recorded call" in err and "edited in the file" in err


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "workbench.toml").write_text('mode = "sometimes"\n')
    assert main(["--config", str(tmp_path / "workbench.toml"), "calls"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "mode: Input should be 'live' or 'replay'" in err


def test_chaos_server_command_serves_models(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "chaos-server", "--port", str(port), "--name", "cli"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "chaos server 'cli' on http://127.0.0.1:" in proc.stdout.readline()
        deadline = time.time() + 10
        while True:
            try:
                body = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        assert body["data"][0]["id"] == "chaos-cli"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_budget_and_costs_commands(tmp_path, capsys):
    config = tmp_path / "workbench.toml"
    config.write_text('store = "w.db"\n')
    Workbench.from_config(config).ask("spend", user="ana")
    assert main(["--config", str(config), "costs", "--by", "user"]) == 0
    assert "ana" in capsys.readouterr().out
    assert main(["--config", str(config), "budget", "set", "user:ana", "--usd", "2", "--period", "month"]) == 0
    assert "user:ana  month" in capsys.readouterr().out
    assert main(["--config", str(config), "budget", "kill", "drill"]) == 0
    assert Workbench.from_config(config).store.query("SELECT active, reason FROM switches")[0] == {
        "active": 1,
        "reason": "drill",
    }
    assert main(["--config", str(config), "budget", "lift"]) == 0
    assert main(["--config", str(config), "budget", "set", "planet:x", "--usd", "1"]) == 2
    assert "write 'global' or one of" in capsys.readouterr().err


def test_alerts_command_lists_rules_checks_them_and_shows_history(tmp_path, capsys):
    (tmp_path / "workbench.toml").write_text(
        'store = "w.db"\n[prices."local/echo"]\ninput_cost_per_token = 0.01\n'
        '[[alerts.rules]]\nname = "spend"\nmetric = "spend_usd"\nabove = 0\n'
    )
    config = str(tmp_path / "workbench.toml")
    assert main(["--config", config, "alerts"]) == 0
    assert "spend" in capsys.readouterr().out
    wb = Workbench.from_config(config)
    wb.alerts._rules.clear()  # record a call without checking, as if the rule were added later
    wb.ask("hello", model="local/echo")
    assert main(["--config", config, "alerts", "--check"]) == 0
    assert "ALERT spend: spend_usd" in capsys.readouterr().out
    assert main(["--config", config, "alerts", "--history"]) == 0
    out = capsys.readouterr().out
    assert "fired" in out
    assert "spend_usd" in out


def test_context_render_prints_the_plan_without_calling_a_model(tmp_path, capsys):
    (tmp_path / "workbench.toml").write_text('store = "w.db"\n')
    (tmp_path / "contexts").mkdir()
    (tmp_path / "contexts" / "faq.yaml").write_text(
        "system: Be brief.\nbudget_tokens: 300\nsources:\n  - {kind: documents, collection: faq, k: 2}\n"
    )
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    wb.docs.add("faq", "The office opens at 9 on Saturdays.")
    config = str(tmp_path / "workbench.toml")
    assert main(["--config", config, "context", "render", "faq", "--input", "When does the office open?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("context faq v")
    assert "documents:faq" in out
    assert "--- system" in out
    assert wb.calls.df().empty
    assert main(["--config", config, "context", "render", "nope", "--input", "x"]) == 2
    assert "no context spec 'nope'" in capsys.readouterr().err


def test_trace_and_metrics_commands(tmp_path, capsys):
    (tmp_path / "workbench.toml").write_text('store = "w.db"\n')
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    result = wb.ask("traced from the terminal", user="ana")
    config = str(tmp_path / "workbench.toml")
    assert main(["--config", config, "trace", result.call_id]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].lstrip().startswith("llm.call")
    assert "    serving.attempt" in out
    assert main(["--config", config, "metrics", "--by", "user", "--freq", "day"]) == 0
    assert "ana" in capsys.readouterr().out
    assert main(["--config", config, "trace", "nope"]) == 2
    assert "no call, run or trace 'nope'" in capsys.readouterr().err
    assert main(["--config", config, "otel", "export"]) == 2
    assert "no OTLP endpoint" in capsys.readouterr().err


def _run(*args, cwd):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WORKBENCH_")}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, cwd=cwd, env=env)


def test_hostile_files_and_arguments_are_one_line_errors_with_exit_2(tmp_path):
    """A UTF-16 config, a store that is not SQLite, a runaway template, a session name that is not UTF-8."""
    utf16 = tmp_path / "a"
    utf16.mkdir()
    (utf16 / "workbench.toml").write_text('store = "w.db"\n', encoding="utf-16")
    notsql = tmp_path / "b"
    notsql.mkdir()
    (notsql / "workbench.toml").write_text('store = "w.db"\n')
    (notsql / "w.db").write_bytes(b"this is not a database, it is a text file " * 100)
    runaway = tmp_path / "c"
    (runaway / "contexts").mkdir(parents=True)
    (runaway / "workbench.toml").write_text('store = "w.db"\n')
    (runaway / "contexts" / "big.yaml").write_text('system: "{% for i in range(10**7) %}x{% endfor %}"\n')
    (runaway / "contexts" / "slow.yaml").write_text(
        'system: "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"\n'
    )
    written = tmp_path / "d"
    written.mkdir()
    (written / "workbench.toml").write_text('store = "w.db"\n')
    recorded = Workbench.from_config(store=str(written / "w.db"))
    recorded.ask("hi", model="local/echo", session="s1")
    recorded.close()
    cases = [
        (written, ["report", "s1", "-o", "no/such/folder/s1.html"], "cannot write the report of session 's1' to no/"),
        (written, ["audit", "export", "-o", str(written)], f"cannot write the audit export to {written} (Is a direc"),
        (utf16, ["calls"], "is not UTF-8 text (it looks like UTF-16): save it as UTF-8"),
        (notsql, ["calls"], "is not a workbench SQLite database"),
        (runaway, ["context", "render", "big", "--input", "hi"], "system template"),
        (runaway, ["context", "render", "slow", "--input", "hi"], "longer than 1 s to render"),
        (notsql.parent, ["calls", "-s", b"caf\xe9".decode("utf-8", "surrogateescape")], "not valid UTF-8"),
    ]
    for cwd, args, message in cases:
        out = _run(*args, cwd=cwd)
        err = out.stderr.decode()
        assert out.returncode == 2, (args, err)
        assert err.startswith("workbench: ") and err.count("\n") == 1 and message in err, (args, err)


def test_read_commands_never_create_a_store_and_say_where_they_looked(tmp_path):
    for args, env_store in [
        (["calls"], None),
        (["costs"], None),
        (["audit", "verify"], None),
        (["approvals", "list"], None),
        (["calls"], "/nonexistent/dir/x.db"),
    ]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
        if env_store:
            env["WORKBENCH_STORE"] = env_store
        done = subprocess.run(
            [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=tmp_path, env=env
        )
        assert done.returncode == 2, (args, done.stderr)
        [line] = done.stderr.strip().splitlines()
        where = env_store or str(tmp_path / ".workbench" / "workbench.db")
        assert line.startswith(f"workbench: no store at {where}") and "WORKBENCH_STORE=" in line, line
    assert list(tmp_path.iterdir()) == []
    assert not os.path.exists("/nonexistent")  # nothing was created


def test_an_unknown_option_shows_the_subcommands_usage_and_the_closest_option(tmp_path):
    done = _run("budget", "set", "user:ana", "2", "--perod", "day", cwd=tmp_path)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert "usage: workbench budget set" in err
    assert "unrecognized arguments: --perod day; did you mean --period?" in err


def test_budget_set_takes_the_amount_as_the_magic_does_and_every_option_has_help(tmp_path, capsys):
    config = tmp_path / "workbench.toml"
    config.write_text('store = "w.db"\n')
    assert main(["--config", str(config), "budget", "set", "user:bob", "1", "--since", "now"]) == 0
    assert Workbench.from_config(config).budgets.df().set_index("scope").loc["user:bob", "limit_usd"] == 1
    assert main(["--config", str(config), "budget", "set", "user:bob", "lots"]) == 2
    assert "'lots' is not an amount in USD" in capsys.readouterr().err
    from workbench.cli import _all, _parser

    missing = [
        f"{p.prog} {a.option_strings or a.dest}"
        for p in _all(_parser())
        for a in p._actions
        if a.help is None and not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]
    assert missing == []


def test_a_report_or_export_never_writes_over_a_file_it_did_not_write(tmp_path):
    """A mistyped -o (the notebook being worked in, someone's notes) was replaced: now a file there is replaced only
    when it is an earlier report or export (re-running writes it again), or with --overwrite.
    """
    (tmp_path / "workbench.toml").write_text('store = "s.db"\n')
    wb = Workbench.from_config(tmp_path / "workbench.toml")
    wb.ask("hello", model="local/echo", session="s1")
    wb.audit.export(tmp_path / "team-input.jsonl")
    wb.close()
    notebook = tmp_path / "analysis.ipynb"
    for args in (
        ["report", "s1", "-o", str(notebook)],
        ["audit", "export", "-o", str(notebook)],
        ["team", "report", str(tmp_path / "team-input.jsonl"), "--html", str(notebook)],
    ):
        notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
        refused = _run(*args, cwd=tmp_path)
        assert refused.returncode == 2, args
        assert "exists and was not written by workbench as the " in refused.stderr.decode(), args
        assert notebook.read_text().startswith('{"cells": []'), args  # untouched
        again = [*args[:-1], str(tmp_path / f"{args[0]}.out")]
        for _ in range(2):  # its own output, written again
            assert _run(*again, cwd=tmp_path).returncode in (0, 1), again  # (team report: 1 if a file was left out)
        assert _run(*args, "--overwrite", cwd=tmp_path).returncode in (0, 1), args
        assert not notebook.read_text().startswith('{"cells": []'), args
