"""The magics on a real kernel through nbclient: outputs as a notebook stores them."""

import json
import os
import signal
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from tests.servers import serving


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


_WHO_IMPORTS = """
import sys, threading
class _Who:
    thread = None
    def find_spec(self, name, path=None, target=None):
        if name == "workbench.pipeline" and _Who.thread is None:
            _Who.thread = threading.current_thread().name
        return None
sys.meta_path.insert(0, _Who())
"""


def test_load_ext_imports_the_pipeline_where_the_cells_run_never_beside_them(tmp_path):
    """Two threads importing one package's modules at once can each wait on the other, and Python then gives one
    a module half run: the warm-up must not import the workbench's modules beside a cell queued after it.
    """
    nb = execute(
        [
            _WHO_IMPORTS,
            "%load_ext workbench",
            "from workbench.cost import BudgetWarning\nfrom workbench.guardrails.guard import Guard\n"
            "import workbench; wb = workbench.get()",
            "[t.join(60) for t in threading.enumerate() if t.name == 'workbench-warm-up']\nprint(_Who.thread)",
        ],
        tmp_path,
        str(tmp_path / "k.db"),
    )
    assert [o.output_type for c in nb.cells for o in c.outputs if o.output_type == "error"] == []
    assert nb.cells[3].outputs[0].text == "MainThread\n"


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


class _SlowStream(BaseHTTPRequestHandler):
    """An OpenAI-compatible server whose answer streams a word every 0.1 s (for 20 s in all); ``begun`` is set
    once five words are out."""

    begun = threading.Event()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for n in range(200):
                chunk = {"id": "s", "model": "m", "choices": [{"index": 0, "delta": {"content": f"word{n} "}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if n == 4:
                    _SlowStream.begun.set()
                time.sleep(0.1)
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading

    def log_message(self, *args):
        pass


def test_the_stop_button_mid_stream_records_what_streamed_and_what_it_cost(tmp_path):
    """Interrupting the kernel while a %%llm answer streams (the notebook's stop button): the cell ends with
    KeyboardInterrupt, and the call is in the store as interrupted, with the words that streamed and their cost."""
    with serving(_SlowStream) as url:
        nb = new_notebook(
            cells=[
                new_code_cell("%load_ext workbench"),
                new_code_cell(
                    "import workbench\nworkbench.get().add_route('slow', [{'model': 'openai/m', 'api_base': "
                    f"'{url}', 'input_cost_per_token': 0.001, 'output_cost_per_token': 0.001}}])"
                ),
                new_code_cell("%%llm -m slow\nTell me a very long story."),
            ]
        )
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        client = NotebookClient(
            nb, timeout=120, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
        )
        store = tmp_path / "k.db"
        with client.setup_kernel(env={**os.environ, "WORKBENCH_STORE": str(store)}):
            client.execute_cell(nb.cells[0], 0)
            client.execute_cell(nb.cells[1], 1)
            pid = client.km.provisioner.pid

            def stop() -> None:  # the stop button sends SIGINT to the kernel: some words in, far from the end
                if _SlowStream.begun.wait(60):
                    os.kill(pid, signal.SIGINT)

            _SlowStream.begun.clear()
            stopper = threading.Thread(target=stop)
            stopper.start()
            client.execute_cell(nb.cells[2], 2)
            stopper.join()
    [error] = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert error.ename == "KeyboardInterrupt"
    conn = sqlite3.connect(store)
    [(status, text, cost, tokens, total)] = conn.execute(
        "SELECT status, text, cost_usd, completion_tokens, total_tokens FROM calls"
    )
    conn.close()
    assert status == "interrupted"
    assert text.startswith("word0 word1 word2 word3 ") and "word199" not in text
    assert tokens >= 4 and cost == pytest.approx(0.001 * total)  # the prompt's tokens and those that streamed
