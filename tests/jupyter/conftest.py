"""The IPython shell the magic tests drive (one per process: IPython's test shell can start only once)."""

import pytest
from IPython.terminal.interactiveshell import TerminalInteractiveShell
from IPython.testing.globalipapp import start_ipython


@pytest.fixture(scope="session")
def ip():
    start_ipython()  # once per process; later calls return None
    shell = TerminalInteractiveShell.instance()
    shell.run_line_magic("load_ext", "workbench")
    return shell
