"""Test-run settings shared by pytest and the notebook kernels nbval starts.

Each tour notebook records into a fresh store of its own, so it compares the same on
every run and whatever ran before it; kernels inherit these variables from pytest.
"""

import os
import tempfile
import time
from pathlib import Path

import pytest

_run_dir = tempfile.mkdtemp(prefix="workbench-tests-")
os.environ["WORKBENCH_STORE"] = os.path.join(_run_dir, "notebooks.db")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
# The audit key file (made on first use) lands in this run's folder, never in the home folder.
os.environ["XDG_CONFIG_HOME"] = os.path.join(_run_dir, "config")
os.environ.pop("WORKBENCH_AUDIT_KEY", None)
os.environ.pop("WORKBENCH_MODE", None)
os.environ.pop("WORKBENCH_CONFIG", None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before nbval starts a notebook's kernel (on its first cell), or an eval suite runs, give it its own store."""
    path = Path(str(getattr(item, "path", "")))
    if path.suffix in (".ipynb", ".yaml"):  # a notebook, or an eval suite
        os.environ["WORKBENCH_STORE"] = os.path.join(_run_dir, f"{path.stem}.db")


def pytest_configure(config: pytest.Config) -> None:
    """Keep the order set below: by default xdist sends files out largest test count first
    (``--loadscope-reorder``), which put the tour, two tests that take minutes, last, running alone
    while the other worker idled (about a minute of every full run).

    Under ``.ci/run`` on a fresh machine, wait first for the system packages (Chromium, redis-server, node)
    it installs in the background while the Python packages install, and stop with its log if that failed.
    """
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if (pending := os.environ.get("WORKBENCH_CI_SYSTEM_PACKAGES")) and not hasattr(config, "workerinput"):
        _wait_for_system_packages(Path(pending))


def _wait_for_system_packages(pending: Path, timeout: float = 900) -> None:
    status = pending.with_name(pending.name + ".rc")
    deadline = time.monotonic() + timeout
    while not status.exists() and time.monotonic() < deadline:
        time.sleep(1)
    code = status.read_text().strip() if status.exists() else "still running"
    if code != "0":
        log = pending.with_name(pending.name + ".log")
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.exit(f"the system packages .ci/run installs with apt-get failed ({code}):\n{tail}", returncode=3)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest file first: with ``-n 3 --dist loadfile`` one worker runs the whole tour (minutes) while
    the others work through everything else, instead of the tour starting last and running alone. (Three
    workers on two cores: much of the suite waits on servers, kernels and browsers, and a third worker
    fills that time: 437 s -> 386 s for the full suite on a quiet machine; under ``.ci/run``, while the side
    installs still run, about the same.)

    When the tour runs, nbval does not run the tour's notebooks again: the tour's first run compares every
    cell with its committed outputs as nbval does (``tests/tour/tour.py``), on the store they share, so a
    second execution of each would check nothing more. ``pytest notebooks/`` alone still runs nbval.
    """
    tour = [item for item in items if "tests/tour/" in item.nodeid.replace("\\", "/")]
    if tour:
        notebooks = Path(__file__).parent / "notebooks"
        covered = {item for item in items if Path(str(item.path)).parent == notebooks and item.path.suffix == ".ipynb"}
        if covered:
            config.hook.pytest_deselected(items=list(covered))
            items[:] = [item for item in items if item not in covered]
    items.sort(key=lambda item: 0 if item in tour else 1)
