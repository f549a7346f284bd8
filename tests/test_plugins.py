"""One plug-in registry: the example package, installed for real, adds a scanner, scorer, check, model and tool
through the one ``workbench`` entry-point group, and each works through a real Workbench."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.plugins import REGISTRY, PluginError, Registry

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "extensions" / "workbench_plugin_example"

USE = r"""
import json, sys
from workbench.runtime import Workbench
from workbench.evals.scorers import ScoreContext, score
from workbench.errors import GuardrailViolation

wb = Workbench.from_config(
    store=sys.argv[1],
    guardrails={"input": {"ticket_ids": "redact"},
                "tools": {"arguments": [{"tool": "tickets.*", "argument": "ticket", "check": "ticket_id"}]}},
)
out = {}
out["model"] = wb.ask("where is my order?", model="local/upper").text
out["redacted"] = wb.ask("see TCK-000042", model="local/echo").text
try:
    wb.ask("hi", model="local/uper")
except Exception as exc:
    out["unknown"] = str(exc)
out["scorer"] = [score("no_shouting", t, {}, ScoreContext(wb), {}).value for t in ("LOUD", "calm")]
out["tool"] = wb.tools.get("tickets.lookup").run({"ticket": "TCK-000042"})
wb.guard.check_tool_call("tickets.lookup", {"ticket": "TCK-000043"})
try:
    wb.guard.check_tool_call("tickets.lookup", {"ticket": "../../etc/passwd"})
    out["check"] = "allowed"
except GuardrailViolation as exc:
    out["check"] = str(exc).splitlines()[0]
wb.close()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example plug-in installed by pip (a real wheel build, no index) into a folder of its own."""
    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "example"
    shutil.copytree(EXAMPLE, source)  # the build leaves build/ and *.egg-info beside the source: not in the repo
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    assert (target / "workbench_plugin_example").is_dir()
    return target


def _run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)


def test_workbench_plugins_lists_the_installed_package_and_the_built_ins(site, tmp_path):
    listed = _run(site, "-m", "workbench.cli", "plugins")
    assert listed.returncode == 0, listed.stderr
    rows = {tuple(line.split(None, 2)) for line in listed.stdout.splitlines()}
    source = "entry point example (workbench-plugin-example)"
    for kind, name in [("scanner", "ticket_ids"), ("scorer", "no_shouting"), ("check", "ticket_id")]:
        assert (kind, name, source) in rows
    assert ("model", "local/upper", source) in rows
    assert ("tool", "tickets.lookup", source) in rows
    assert ("scanner", "secrets", "workbench") in rows
    assert ("check", "read_only_sql", "workbench") in rows
    only = _run(site, "-m", "workbench.cli", "plugins", "--kind", "tool")
    assert [line.split()[0] for line in only.stdout.splitlines()] == ["tool"]


def test_each_piece_of_the_installed_plugin_works_through_a_workbench(site, tmp_path):
    used = _run(site, "-c", USE, str(tmp_path / "p.db"))
    assert used.returncode == 0, used.stderr
    out = json.loads(used.stdout.strip().splitlines()[-1])
    assert out["model"] == "WHERE IS MY ORDER?"
    assert out["redacted"] == "see [REDACTED:ticket_id]"
    assert "local/echo, local/extractive, local/scripted, local/upper" in out["unknown"]  # the hint names plug-ins
    assert out["scorer"] == [0.0, 1.0]
    assert out["tool"] == "printer on floor 3 is out of toner (open)"
    assert "ticket: '../../etc/passwd' is not a ticket id" in out["check"]


def test_a_broken_plugin_is_named_and_the_others_still_load(tmp_path):
    site = tmp_path / "site"
    (site / "good_plugin").mkdir(parents=True)
    (site / "good_plugin" / "__init__.py").write_text(
        "def register(r):\n    r.add('scorer', 'always_one', lambda *a, **k: 1.0)\n"
    )
    (site / "bad_plugin.py").write_text("raise ImportError('needs a package that is not installed')\n")
    for name, target in [("good", "good_plugin:register"), ("bad", "bad_plugin:register")]:
        info = site / f"{name}_plugin-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[workbench]\n{name} = {target}\n")
    listed = _run(site, "-m", "workbench.cli", "plugins", "--kind", "scorer")
    assert listed.returncode == 1
    assert "always_one" in listed.stdout
    assert "broken plug-in: entry point bad (bad-plugin): ImportError: needs a package" in listed.stderr


def test_code_registers_in_the_same_registry_with_clear_errors():
    registry = Registry()
    with pytest.raises(PluginError, match="unknown plug-in kind 'widget'"):
        registry.add("widget", "x", object())
    with pytest.raises(PluginError, match="call it 'local/upper'"):
        registry.add("model", "upper", lambda m, p: "")
    with pytest.raises(PluginError, match="scorer 'x' must be callable"):
        registry.add("scorer", "x", 3)
    from workbench.plugins import scorer

    @scorer("always_half")
    def half(output, case, ctx):
        return 0.5

    assert REGISTRY.get("scorer", "always_half") is half
    assert REGISTRY.table("scorer")["always_half"].source == "code"
