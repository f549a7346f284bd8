"""pytest integration: every ``*.eval.yaml`` under the test paths is a test item.

The item runs the suite with the settings of the nearest workbench.toml (offline models and
replay mode run it with no API keys) and fails when a scorer's mean is under its
threshold, or, with ``--wb-baseline latest|RUN``, when the regression gate says a scorer
regressed against the baseline. Registered through the ``pytest11`` entry point; workbench
itself is imported only when a suite is collected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import TerminalRepr


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--wb-baseline``, ``--wb-repeats``, ``--wb-model``."""
    group = parser.getgroup("workbench", "workbench eval suites (*.eval.yaml)")
    group.addoption("--wb-baseline", default=None, help="fail on a regression against this eval run (or 'latest')")
    group.addoption("--wb-repeats", type=int, default=None, help="run each case this many times")
    group.addoption("--wb-model", action="append", default=None, help="run the suites on this model (repeatable)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect ``NAME.eval.yaml`` files."""
    if file_path.name.endswith(".eval.yaml"):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class EvalFailed(Exception):
    """A suite missed a threshold or regressed."""


class SuiteFile(pytest.File):
    """One suite file: one item."""

    def collect(self) -> Iterator[pytest.Item]:
        """The suite, named after its file."""
        yield SuiteItem.from_parent(self, name=self.path.name.removesuffix(".eval.yaml"))


class SuiteItem(pytest.Item):
    """Runs a suite; fails on a missed threshold or a regression."""

    def runtest(self) -> None:
        """Run the suite and check it."""
        from workbench.config import find_config
        from workbench.runtime import Workbench

        config, _ = find_config(self.path.parent)
        wb = Workbench.from_config(config)
        try:
            options = self.config.option
            report = wb.evals.run(self.path, models=options.wb_model, repeats=options.wb_repeats, progress=False)
            problems = report.failures()
            if options.wb_baseline:
                for run, baseline, gate in wb.evals.gate(report, options.wb_baseline):
                    if gate is None:
                        continue
                    problems += [
                        f"{run['model']}: {r.scorer} regressed {r.baseline:.3f} -> {r.candidate:.3f} "
                        f"(95% CI of the change {r.ci_low:+.3f}..{r.ci_high:+.3f}) against run {baseline}"
                        for r in gate.itertuples()
                        if r.verdict == "regressed"
                    ]
            self.user_properties.append(("eval_runs", ",".join(report.run_ids)))
            if problems:
                raise EvalFailed("\n".join(problems))
        finally:
            wb.close()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        """The problems, one per line, without a traceback (a suite error is one line too)."""
        from workbench.errors import WorkbenchError

        if isinstance(excinfo.value, EvalFailed | WorkbenchError):  # one line: no pytest traceback
            return f"eval suite {self.name}:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        """Where the item comes from."""
        return self.path, 0, f"eval suite {self.name}"
