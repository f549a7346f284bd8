"""The tour as a user lives it: every notebook in order, twice, on the one store ``workbench.toml`` names.

nbval (``pytest --nbval``) checks each notebook against its committed outputs on a fresh store of
its own; this test checks what nbval can't see: that the notebooks, run one after another on a
shared store and then all again, raise nowhere they are not tagged to, and that the second run
shows what the first did (after ``notebooks/sanitize.cfg``). It runs in a temporary copy of the
repository, so the repository's store and files are never touched.
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
