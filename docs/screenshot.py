"""Take docs/quickstart.png: the quickstart notebook, with its committed outputs, in JupyterLab;
with ``--panel``, docs/panel.png: the Workbench sidebar beside it.

    python docs/screenshot.py [--panel]   # needs /usr/bin/chromium and the playwright package (the test extra)

JupyterLab serves a temporary copy of notebooks/ on 127.0.0.1; headless Chromium opens the
notebook (no kernel runs: what shows is what the tour's committed outputs show) and the
first screenful is saved. For the panel, the folder's store first gets a few calls, a parked
approval of a destructive tool and a day's budget, made here with the offline models.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "workbench-screenshot"


def _panel_store(root: Path) -> None:
    """A store with what the panel shows: calls in two sessions, a parked approval, a budget."""
    from workbench.runtime import Workbench

    (root / "workbench.toml").write_text(
        'store = "panel.db"\ndefault_route = "local/scripted"\n'
        '[prices."local/echo"]\ninput_cost_per_token = 0.0001\noutput_cost_per_token = 0.0002\n'
    )
    rules = [
        {"pattern": "(?i)drop the (?P<t>\\w+) table", "tool": "db__drop", "arguments": {"table": "\\g<t>"}},
    ]
    wb = Workbench.from_config(root / "workbench.toml", store=str(root / "panel.db"), scripted={"rules": rules})

    @wb.tool(name="db.drop", risk="destructive")
    def drop(table: str) -> str:
        """Drop a table."""
        return f"dropped {table}"

    for prompt in ("When does the office open?", "Summarise the refund policy.", "Which plan has SSO?"):
        wb.ask(prompt, model="local/echo", session="support")
    wb.ask("What changed in the Q3 numbers?", model="local/extractive", session="finance")
    wb.agent("ops", tools=["db.*"]).run("Please drop the staging table", session="ops")
    wb.budgets.set("global", 0.05, period="day")
    wb.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    panel = "--panel" in sys.argv
    root = Path(tempfile.mkdtemp(prefix="wb-shot-"))
    shutil.copy2(ROOT / "notebooks" / "00_quickstart.ipynb", root / "00_quickstart.ipynb")
    if panel:
        _panel_store(root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_DATA_DIR": str(root / ".data"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
    }
    env.pop("WORKBENCH_STORE", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--allow-root",
            "--no-browser",
            "--ip",
            "127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
            page.goto(f"{url}/lab/workspaces/shot/tree/00_quickstart.ipynb?reset&token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            time.sleep(1)
            toast = page.get_by_role("button", name="No", exact=True)  # "get notified about Jupyter news?"
            if toast.count():
                toast.first.click()
            page.keyboard.press("Escape")
            if panel:
                page.locator(".lm-TabBar-tab[data-id='workbench-panel']").click()
                handle = page.locator(
                    "#jp-main-split-panel > .lm-SplitPanel-handle"
                ).first.bounding_box()  # a wider sidebar
                if handle:
                    y = handle["y"] + handle["height"] / 2
                    page.mouse.move(handle["x"] + 1, y)
                    page.mouse.down()
                    page.mouse.move(560, y, steps=10)
                    page.mouse.up()
                page.locator(".wb-panel tr.wb-call").first.wait_for(timeout=30_000)
                page.locator(".wb-panel tr.wb-call", has_text="support").first.click()
                page.locator(".wb-panel .wb-span").first.wait_for(timeout=30_000)
            else:
                page.keyboard.press("Control+b")  # hide the file browser: the notebook is the picture
                page.locator(".jp-Cell").nth(5).scroll_into_view_if_needed()  # the first answers, with their footers
            time.sleep(2)
            out = ROOT / "docs" / ("panel.png" if panel else "quickstart.png")
            page.screenshot(path=str(out))
            browser.close()
        print(out)
    finally:
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
