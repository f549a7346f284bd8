"""Every error workbench raises on purpose is a WorkbenchError importable from `workbench`."""

import importlib
import pkgutil
import subprocess
import sys

import workbench
from workbench.errors import WorkbenchError


def _all_error_classes() -> set[type]:
    found: set[type] = set()
    for info in pkgutil.walk_packages(workbench.__path__, "workbench."):
        if info.name.startswith(("workbench.jupyter", "workbench.evals.pytest_plugin")):
            continue  # IPython's UsageError wrapper and the pytest plugin are not raised to API users
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, WorkbenchError) and value.__module__ == info.name:
                found.add(value)
    return found


def test_every_error_is_exported_and_documented():
    tree = sys.modules["workbench.errors"].__doc__
    for cls in _all_error_classes():
        assert getattr(workbench, cls.__name__) is cls, f"workbench.{cls.__name__} is not exported"
        assert cls.__name__ in workbench.__all__, cls.__name__
        assert f" {cls.__name__} " in tree, f"{cls.__name__} missing from the tree in errors.py"


def test_exporting_errors_keeps_import_light():
    heavy = "('litellm', 'pandas', 'plotly', 'mcp')"
    code = f"import sys, workbench; assert not [m for m in {heavy} if m in sys.modules], sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
