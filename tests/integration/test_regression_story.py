"""A notebook run live against a provider, then as a regression test in replay mode.

Live: the notebook calls a route on the chaos server over HTTP and is saved with its
outputs. Replay: with the server stopped, `pytest --nbval` and WORKBENCH_MODE=replay
passes. An edited prompt fails the replay run with a diff against the recording.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

SANITIZE = Path(__file__).parents[2] / "notebooks" / "sanitize.cfg"


def nbval(notebook: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--nbval",
            str(notebook),
            "--nbval-sanitize-with",
            str(SANITIZE),
            "-q",
            "--rootdir",
            str(notebook.parent),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=notebook.parent,
        timeout=300,
    )


def test_record_live_then_pass_in_replay_and_fail_on_an_edited_prompt(tmp_path, chaos):
    server = chaos(name="provider", latency_ms=5)
    (tmp_path / "workbench.toml").write_text(
        f'store = "recorded.db"\n[routes.support]\nretries = 0\n'
        f'deployments = [{{ model = "openai/support-bot", api_base = "{server.url}", '
        "input_cost_per_token = 0, output_cost_per_token = 0 }]\n"  # self-hosted: priced here, litellm never needed
    )
    cells = [
        "%load_ext workbench",
        "%%llm -m support -s ticket\nMy order 1234 has not arrived.",
        "%%llm -m support -s ticket\nCan you check again?",
        "%%llm -m support --no-stream\nSummarise the policy on refunds.",
    ]
    notebook = tmp_path / "support.ipynb"
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute(
        env={**env, "WORKBENCH_MODE": "live"}
    )
    nbformat.write(nb, notebook)
    answer = nb.cells[1].outputs[-1].data["text/plain"]
    assert answer == "[provider] My order 1234 has not arrived.\n— openai/support-bot"
    assert server.stats.requests == 3
    server.stop()

    replay_env = {**env, "WORKBENCH_MODE": "replay"}
    passed = nbval(notebook, replay_env)
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "4 passed" in passed.stdout

    edited = tmp_path / "edited.ipynb"
    shutil.copy(notebook, edited)
    nb = nbformat.read(edited, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("Can you check again?", "Can you check once more?")
    nbformat.write(nb, edited)
    failed = nbval(edited, replay_env)
    assert failed.returncode != 0
    assert "no recorded call matches this request to 'support'" in failed.stdout
    assert "-user: Can you check again?" in failed.stdout
    assert "+user: Can you check once more?" in failed.stdout
