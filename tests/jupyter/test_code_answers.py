"""Code answers go into a new cell below (never run): --format code and %llm_fix, on a real kernel."""

import os

from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook


def run_with_payloads(cells, path, store):
    """Execute ``cells``; return the notebook and, per cell, the set_next_input texts its reply carried."""
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    payloads: dict[int, list[str]] = {}

    def collect(cell, cell_index, execute_reply):
        for item in execute_reply["content"].get("payload", []):
            if item.get("source") == "set_next_input":
                payloads.setdefault(cell_index, []).append(item["text"])
                assert item.get("replace") is False  # a new cell below, the asking cell stays

    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path)}},
        on_cell_executed=collect,
    )
    client.execute(env={**os.environ, "WORKBENCH_STORE": store})
    return nb, payloads


def test_a_code_answer_becomes_the_next_cell_and_fix_proposes_the_failed_cell(tmp_path):
    nb, payloads = run_with_payloads(
        [
            "%load_ext workbench",  # 1
            "%%llm -m local/echo --format code\nPlot it:\n```python\nimport math\nprint(math.pi)\n```",  # 2
            "values = [1, 2, 3]\nvalues[7]",  # 3: IndexError
            "%llm_fix -m local/echo",  # 4: the last error
            "%llm_fix 2",  # 5: cell 2 raised nothing
            "%%llm -m local/echo --format markdown\nno code here",  # 6
        ],
        tmp_path,
        str(tmp_path / "f.db"),
    )
    assert payloads[1] == ["import math\nprint(math.pi)"]  # the fenced block, not the prose around it
    shown = nb.cells[1].outputs[-1].data["text/markdown"]
    assert shown.startswith("```python\nimport math\nprint(math.pi)\n```")
    assert payloads[3] == ["values = [1, 2, 3]\nvalues[7]"]  # local/echo returns the cell it was sent
    fix_prompt = nb.cells[3].outputs[-1].data["text/plain"]
    assert "IndexError: list index out of range" in fix_prompt  # the traceback went to the model
    [error] = nb.cells[4].outputs
    assert error.evalue.startswith("cell 2 raised no error this session")
    assert 4 not in payloads
    assert 5 not in payloads  # no cell is proposed without a code answer


def test_a_traceback_for_a_model_has_no_machine_paths():
    import pandas as pd

    from workbench.jupyter.magics import portable_traceback

    try:
        pd.Series([1])["missing"]
    except KeyError as exc:
        text = portable_traceback(exc)
    assert 'File "…/site-packages/pandas/' in text
    assert "/site-packages/" not in text.replace("…/site-packages/", "")
    assert text.endswith("KeyError: 'missing'")
