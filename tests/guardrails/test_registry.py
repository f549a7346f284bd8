"""Scanners are plug-ins: registered in code or installed as an entry point, then named in a policy."""

import sys

import pytest

from workbench.errors import GuardrailViolation
from workbench.guardrails import Finding, Scanner, register_scanner
from workbench.plugins import REGISTRY
from workbench.runtime import Workbench

PLUGIN = """
from workbench.guardrails import Finding, Scanner

def _competitors(text, ctx):
    i = text.lower().find("globex")
    return [Finding("competitor", i, i + 6)] if i >= 0 else []

scanner = Scanner("competitors", _competitors, frozenset({"input", "output"}), "mentions of competitors")
"""


def test_a_scanner_registered_in_code_runs_where_the_policy_names_it(tmp_path):
    register_scanner(
        Scanner(
            "shouting",
            lambda text, ctx: [Finding("caps", 0, len(text))] if text.isupper() else [],
            frozenset({"input"}),
        )
    )
    wb = Workbench.from_config(store=str(tmp_path / "r.db"), guardrails={"input": {"shouting": "block"}})
    with pytest.raises(GuardrailViolation, match="blocked by the shouting guardrail: found caps"):
        wb.ask("HELLO THERE", model="local/echo")
    assert wb.ask("hello there", model="local/echo").text == "hello there"
    assert "shouting" in set(wb.guard.scanners()["scanner"])
    with pytest.raises(ValueError, match="unknown stages"):
        register_scanner(Scanner("bad", lambda t, c: [], frozenset({"later"})))


def test_an_installed_plugin_is_loaded_from_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "acme_guard").mkdir(parents=True)
    (site / "acme_guard" / "__init__.py").write_text(PLUGIN)
    info = site / "acme_guard-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-guard\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[workbench.scanners]\ncompetitors = acme_guard:scanner\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(REGISTRY, "_loaded", False)  # as in a fresh process: installed plug-ins not read yet
    assert "competitors" not in REGISTRY.names("scanner", load=False)
    wb = Workbench.from_config(store=str(tmp_path / "p.db"), guardrails={"output": {"competitors": "redact"}})
    assert wb.ask("compare us with Globex", model="local/echo").text == "compare us with [REDACTED:competitor]"
    sys.modules.pop("acme_guard", None)
