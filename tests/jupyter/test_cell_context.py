"""Notebook state as context on a real kernel: {In[n]}, {Out[n]}, {Err[n]}, {Err}, and DataFrames in budget."""

from tests.jupyter.test_kernel import execute


def _answer(cell) -> str:
    return next(o.data["text/plain"] for o in cell.outputs if o.get("data", {}).get("text/plain"))


def test_cells_are_context_by_execution_count(tmp_path):
    nb = execute(
        [
            "%load_ext workbench",  # 1
            "total = 6 * 7\ntotal",  # 2: Out[2] == 42
            "{'a': [1, 2]}",  # 3: Out[3] is a dict
            "1 / 0",  # 4: an error
            "%%llm -m local/echo --no-stream\nSource: {In[2]}\nResult: {Out[2]}\nDict: {Out[3]}",  # 5
            "%%llm -m local/echo --no-stream\nFix this: {Err[4]}",  # 6
            "%%llm -m local/echo --no-stream\nLast: {Err}",  # 7
            "%%llm -m local/echo --no-stream\n{Out[5]}",  # 8: cell 5 printed, it has no result
            "%%llm -m local/echo --no-stream\n{Err[2]}",  # 9: cell 2 raised nothing
            "%%llm -m local/echo --no-stream\n{In[99]}",  # 10
        ],
        tmp_path,
        str(tmp_path / "c.db"),
    )
    sent = _answer(nb.cells[4])
    assert "Source: total = 6 * 7\ntotal" in sent
    assert "Result: 42" in sent
    assert 'Dict: {\n "a": [\n  1,\n  2\n ]\n}' in sent
    fix = _answer(nb.cells[5])
    assert fix.startswith("Fix this: Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in fix
    assert "\x1b[" not in fix  # no ANSI colours reach the model
    assert "Cell In[4], line 1, in <module>" in fix  # named as IPython names it, not /tmp/ipykernel_<pid>/<hash>.py
    assert "IPython/core" not in fix
    assert "/tmp/ipykernel_" not in fix  # no machinery frames, no machine paths
    assert "ZeroDivisionError: division by zero" in _answer(nb.cells[6])
    errors = [nb.cells[i].outputs[0] for i in (7, 8, 9)]
    assert [e.ename for e in errors] == ["WorkbenchUsageError"] * 3
    assert errors[0].evalue.startswith("{Out[5]}: cell 5 has no output")
    assert errors[1].evalue == "{Err[2]}: cell 2 raised no error this session"
    assert errors[2].evalue.startswith("{In[99]}: there is no cell 99")


def test_a_dataframe_is_a_compact_block_within_the_value_budget(tmp_path):
    nb = execute(
        [
            "%load_ext workbench",
            "import pandas as pd\nsales = pd.DataFrame({'region': ['north', 'south'] * 5000, 'units': range(10000)})",
            "%%llm -m local/echo --no-stream --max-value-tokens 300\n{sales}\nWhich region sells more?",
            "%%llm -m local/echo --no-stream --max-value-tokens 10\n{sales}",
        ],
        tmp_path,
        str(tmp_path / "d.db"),
    )
    sent = _answer(nb.cells[2])
    assert sent.startswith("DataFrame sales: 10,000 rows × 2 columns\ndtypes: region ")
    assert "| mean | 4999.5 |" in sent  # describe() of the numeric column
    assert "| index | region | units |\n|---|---|---|\n| 0 | north | 0 |" in sent
    assert "| 9999 | south | 9999 |" in sent  # the last rows too
    assert "rows not shown (max 300 tokens)]" in sent
    [error] = nb.cells[3].outputs
    assert error.evalue == "--max-value-tokens must be at least 50"


def test_a_figure_in_a_cell_is_shown_to_the_model_as_an_image(tmp_path):
    nb = execute(
        [
            "%load_ext workbench",
            "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots(figsize=(3, 2), dpi=50)\n_ = ax.plot([3, 1, 2])",
            "%%llm -m local/echo --no-stream\nWhat does this chart show? {fig}",
            "%%llm -m local/extractive --no-stream\n{fig}",
            "import workbench\nwb = workbench.get()\nwb.store.query('SELECT mime, width, height FROM blobs')",
        ],
        tmp_path,
        str(tmp_path / "f.db"),
    )
    sent = _answer(nb.cells[2])
    assert sent.startswith("What does this chart show? [image ")  # local/echo describes the image it was sent
    assert " png sha256:" in sent
    error = nb.cells[3].outputs[0]
    assert error.ename == "WorkbenchUsageError"
    assert "local/extractive cannot see images" in error.evalue
    assert "'mime': 'image/png'" in _answer(nb.cells[4])
