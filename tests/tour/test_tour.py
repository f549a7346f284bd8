"""The tour as a user lives it: every notebook in order, twice, on the one store ``workbench.toml`` names.

The notebooks, run one after another on a shared store and then all again, raise nowhere they
are not tagged to; the first run shows each cell's committed outputs, compared as nbval compares
them (every field but images, after ``notebooks/sanitize.cfg``), so the full suite does not run
nbval on them again (conftest.py); and the second run shows what the first did. It runs in a
temporary copy of the repository, so the repository's store and files are never touched.
"""

import importlib.util
import os
from pathlib import Path

_spec = importlib.util.spec_from_file_location("workbench_tour", Path(__file__).with_name("tour.py"))
tour = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tour)


def test_the_tour_runs_in_order_and_again_on_one_store(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_STORE", raising=False)  # the store workbench.toml names, as after the set-up command
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    root = tour.copy_repo(tmp_path / "repo")
    first = tour.run(root)
    second = tour.run(root)
    assert tour.problems(first, second) == []
    assert (root / ".workbench" / "workbench.db").exists()
    assert not os.environ.get("WORKBENCH_STORE")
    assert len(first) == len(list(Path(root, "notebooks").glob("[0-9][0-9]_*.ipynb"))) >= 10


def test_a_first_run_differing_from_the_committed_outputs_is_a_problem_as_under_nbval():
    clean = tour.sanitizers()

    def stream(text):
        return {"output_type": "stream", "name": "stdout", "text": text}

    def result(plain, png="iVBOR"):
        return {"output_type": "execute_result", "data": {"text/plain": plain, "image/png": png}, "metadata": {}}

    assert tour._difference([stream("call 0123456789abcdef\n")], [stream("call fedcba9876543210\n")], clean) == ""
    assert tour._difference([stream("a"), stream("b\n")], [stream("ab\n")], clean) == ""  # one stream, split
    assert tour._difference([result("3", png="other")], [result("3")], clean) == ""  # images are not compared
    assert "committed ['3']" in tour._difference([result("4")], [result("3")], clean)
    assert "fields" in tour._difference([result("3")], [result("3"), stream("warning\n")], clean)
    differs = "text/plain: committed ['3'], now ['4']"
    first = {"n.ipynb": [(1, ["stream: x"], False, False, True, differs)]}
    assert tour.problems(first) == [f"n.ipynb cell 1 differs from its committed outputs: {differs}"]
