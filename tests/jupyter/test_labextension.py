"""The panel's JupyterLab extension builds from its TypeScript source, and the prebuilt copy the package
installs is that source's build.

``.ci/run`` installs the extension's npm packages (``npm ci``, from its package-lock) in the background
while the suite starts, logging to ``extensions/workbench-panel/npm.log`` and touching
``node_modules/.ready``. Elsewhere: ``cd extensions/workbench-panel && npm ci``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SOURCE = ROOT / "extensions" / "workbench-panel"
PREBUILT = ROOT / "workbench" / "labextension"


def _node_modules() -> Path:
    modules = SOURCE / "node_modules"
    deadline = time.monotonic() + 600
    while (SOURCE / "npm.log").exists() and not (modules / ".ready").exists() and time.monotonic() < deadline:
        time.sleep(1)
    if not (modules / "@jupyterlab" / "builder").is_dir() or shutil.which("node") is None:
        message = "the panel's npm packages are missing: cd extensions/workbench-panel && npm ci"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run does this)")
        pytest.skip(message)
    return modules


def _code_chunks(folder: Path) -> set[str]:
    """The built files holding the extension's own code, named by their content's hash. (The entry point's hash
    also covers the version ranges of JupyterLab's shared packages, which follow the installed JupyterLab; the
    style chunk's module ids follow the folder it was built in: its CSS is compared as text.)
    """
    return {p.name for p in (folder / "static").glob("*.js") if "workbench-panel:plugin" in p.read_text()}


def _holds_the_css(folder: Path) -> bool:
    css = json.dumps((SOURCE / "style" / "index.css").read_text())[1:-1]  # as the bundle quotes it
    return any(css in p.read_text() for p in (folder / "static").glob("*.js"))


def test_the_extension_builds_from_source_and_the_installed_copy_is_that_build(tmp_path):
    modules = _node_modules()
    work = tmp_path / "workbench-panel"
    work.mkdir()
    for name in ("src", "style"):
        shutil.copytree(SOURCE / name, work / name)
    for name in ("tsconfig.json", "package-lock.json"):
        shutil.copy(SOURCE / name, work / name)
    (work / "node_modules").symlink_to(modules)
    package = json.loads((SOURCE / "package.json").read_text())
    package["jupyterlab"]["outputDir"] = "../built"  # (the builder joins it to the extension's folder)
    (work / "package.json").write_text(json.dumps(package))
    import jupyterlab

    core = Path(jupyterlab.__file__).parent / "staging"
    for command in (
        ["node", str(modules / "typescript" / "bin" / "tsc")],
        [
            "node",
            str(modules / "@jupyterlab" / "builder" / "lib" / "build-labextension.js"),
            "--core-path",
            str(core),
            ".",
        ],
    ):
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    built = json.loads((tmp_path / "built" / "package.json").read_text())
    assert built["name"] == "workbench-panel"
    assert (tmp_path / "built" / "static" / Path(built["jupyterlab"]["_build"]["load"]).name).is_file()
    assert _code_chunks(tmp_path / "built"), "the build holds the extension's code"
    assert _holds_the_css(tmp_path / "built")
    stale = "workbench/labextension is not the build of extensions/workbench-panel: run `npm run build` there"
    assert _code_chunks(tmp_path / "built") == _code_chunks(PREBUILT), stale
    assert _holds_the_css(PREBUILT), stale


def test_jupyterlab_lists_the_installed_extension_enabled():
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    out = listed.stdout + listed.stderr
    line = next((x for x in out.splitlines() if "workbench-panel" in x), "")
    assert "enabled" in line and "OK" in line, out
    servers = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    out = servers.stdout + servers.stderr
    assert "workbench.jupyter.server" in out and "enabled" in out, out
