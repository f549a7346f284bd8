"""The magics on a real kernel through nbclient: outputs as a notebook stores them."""

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook


def execute(cells, path, env_store):
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(path)}}
    )
    client.execute(env={**os.environ, "WORKBENCH_STORE": env_store})
    return nb


def test_llm_cell_on_a_real_kernel(tmp_path):
    nb = execute(
        [
            "%load_ext workbench",
            "%%llm -m local/extractive\n[faq] Returns are free within 30 days.\n\nAre returns free?",
            "%%llm -m local/echo\n{undefined_name}",
            "import sys, threading\n[t.join(60) for t in threading.enumerate() if t.name == 'workbench-warm-up']\n"
            "print('litellm' in sys.modules)",
        ],
        tmp_path,
        str(tmp_path / "k.db"),
    )
    # local models answer in the kernel: neither their calls nor the warm-up imported litellm (seconds)
    assert nb.cells[3].outputs[0].text == "False\n"
    answer = nb.cells[1].outputs
    assert answer[0].data == {"text/plain": ""}  # the streaming preview, returned to empty
    assert answer[1].data["text/plain"] == "Returns are free within 30 days. [faq]\n— local/extractive"
    [error] = nb.cells[2].outputs
    assert error.output_type == "error"
    assert error.ename == "WorkbenchUsageError"
    assert error.evalue.startswith("{undefined_name} in the prompt is not defined")
    assert len(error.traceback) == 1  # the message alone, no stack
    assert nbformat.validate(nb) is None


def test_a_failing_magic_stops_the_run(tmp_path):
    nb = new_notebook(
        cells=[
            new_code_cell("%load_ext workbench"),
            new_code_cell("%%llm -m nope\nhi"),
            new_code_cell("print('never')"),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError, match="unknown model or route 'nope'"):
        client.execute(env={**os.environ, "WORKBENCH_STORE": str(tmp_path / "k.db")})
    assert nb.cells[2].outputs == []


def test_a_workbench_error_in_a_plain_cell_is_one_line_and_tb_shows_where(tmp_path):
    nb = execute(
        [
            "%load_ext workbench",
            "import workbench\nwb = workbench.get()\nwb.budgets.set('user:bob', tokens=5)",
            "wb.ask('hello', model='local/echo', user='bob', max_tokens=50)",
            "%tb",
            "%%llm --modle local/echo\nhi",
            "1 / 0",
        ],
        tmp_path,
        str(tmp_path / "e.db"),
    )
    [error] = nb.cells[2].outputs
    assert (error.ename, error.traceback[-1]) == ("BudgetExceeded", "(%tb shows where)")
    assert error.traceback[0].startswith("BudgetExceeded: budget user:bob (total) would be exceeded")
    assert len(error.traceback) == 2  # the message and the hint: no stack
    shown = "".join(o.get("text", "") + "".join(o.get("traceback", [])) for o in nb.cells[3].outputs)
    assert "wb.ask(" in shown
    assert "budgets.py" in shown  # the stack is one %tb away
    [usage] = nb.cells[4].outputs
    assert usage.evalue == "unrecognized arguments: --modle local/echo; did you mean --model?"
    [other] = nb.cells[5].outputs
    assert other.ename == "ZeroDivisionError"
    assert len(other.traceback) > 1  # other errors keep IPython's traceback
