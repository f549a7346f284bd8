"""The widgets in real JupyterLab, driven by headless Chromium: what a user sees and clicks.

Needs Chromium at /usr/bin/chromium (``apt-get install chromium``; ``.ci/run`` installs it)
and the ``playwright`` Python package (in the test extra). Nothing is downloaded.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from tests.servers import free_port

CHROMIUM = "/usr/bin/chromium"
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
TOKEN = "workbench-browser-test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a temp folder, with its own config dirs and store."""
    assert Path(CHROMIUM).exists(), "browser tests need Chromium: apt-get install -y chromium"
    root = tmp_path_factory.mktemp("lab")
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_DATA_DIR": str(root / ".data"),
        "IPYTHONDIR": str(root / ".ipython"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
        "WORKBENCH_STORE": str(root / "lab.db"),
    }
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
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(f"JupyterLab did not start: {server.stderr.read().decode()[-2000:]}") from None
            time.sleep(0.3)
    yield url, root
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


def _notebook(root: Path, name: str, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / name)


def _run_all(page, url: str, name: str) -> None:
    """Open the notebook, wait for its kernel (requests sent before it connects are lost), Run All Cells."""
    workspace = Path(name).stem  # its own workspace: no tabs restored from another test
    page.goto(f"{url}/lab/workspaces/{workspace}/tree/{name}?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('Idle')", timeout=60_000)
    page.click("text=Run >> nth=0")
    page.click("text=Run All Cells")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_the_memory_inspector_forgets_what_the_user_clicks(lab, browser):
    url, root = lab
    _notebook(
        root,
        "memory.ipynb",
        [
            "%load_ext workbench",
            "import workbench\nwb = workbench.get()\n"
            "tea = wb.memory.add('Ana prefers green tea', 'user:ana', 'preference')\n"
            "wb.memory.add('Ana works on the billing team', 'user:ana')",
            "%llm_memory user:ana",
        ],
    )
    page = browser.new_page()
    try:
        _run_all(page, url, "memory.ipynb")
        inspector = page.locator(".wb-memory-inspector")
        inspector.wait_for(timeout=60_000)
        assert inspector.locator("table.wb-memories tr[data-id]").count() == 2
        assert "Ana prefers green tea" in inspector.inner_text()
        inspector.locator("input[type='text']").fill("tea")
        inspector.locator("input[type='text']").press("Enter")
        page.wait_for_function("document.querySelectorAll('.wb-memory-inspector tr[data-id]').length === 1")
        inspector.locator("button", has_text="history").click()
        page.wait_for_selector(".wb-memory-inspector table.wb-history")
        inspector.locator("button", has_text="forget").click()
        page.wait_for_selector(".wb-memory-inspector :text('forgot')", timeout=30_000)
    finally:
        page.close()
    rows = sqlite3.connect(root / "lab.db").execute("SELECT text FROM memories").fetchall()
    assert rows == [("Ana works on the billing team",)]  # the click reached the kernel and the store


def test_the_context_view_shows_blocks_and_the_final_messages(lab, browser):
    url, root = lab
    (root / "contexts").mkdir(exist_ok=True)
    (root / "contexts" / "faq.yaml").write_text(
        "system: Be brief.\nbudget_tokens: 300\nsources:\n  - {kind: documents, collection: faq, k: 2}\n"
    )
    _notebook(
        root,
        "context.ipynb",
        [
            "%load_ext workbench",
            "import workbench\nwb = workbench.get()\nwb.docs.add('faq', 'The office opens at 9 on Saturdays.')",
            '%llm_context faq --input "When does the office open on Saturdays"',
        ],
    )
    page = browser.new_page()
    try:
        _run_all(page, url, "context.ipynb")
        view = page.locator(".wb-context-view")
        view.wait_for(timeout=60_000)
        assert view.locator("tr.wb-block").count() == 3
        assert "of 300 tokens" in view.inner_text()
        assert view.locator("tr.wb-included", has_text="documents:faq").count() == 1
        view.get_by_text("final messages (2)").click()
        page.wait_for_function("document.querySelector('.wb-context-view').innerText.includes('When does the office')")
    finally:
        page.close()


SCRIPTED = r"""[[scripted.rules]]
pattern = "(?i)drop the (?P<t>\\w+) table"
tool = "db__drop"
arguments = { table = "\\g<t>" }

[[scripted.rules]]
role = "tool"
pattern = "dropped (?P<t>\\w+)"
reply = "The \\g<t> table is gone."

[[scripted.rules]]
role = "tool"
pattern = "rejected"
reply = "Nothing was dropped."
"""


def _agent_notebook(root: Path, name: str, table: str) -> None:
    (root / "workbench.toml").write_text(SCRIPTED)
    _notebook(
        root,
        name,
        [
            "%load_ext workbench",
            "import workbench\nfrom pathlib import Path\nwb = workbench.get()\n\n"
            "@wb.tool(name='db.drop', risk='destructive')\n"
            "def drop(table: str) -> str:\n"
            "    '''Drop a table.'''\n"
            f"    with open('{name}.ran', 'a') as f:\n"
            "        f.write(table + '\\n')\n"
            "    return f'dropped {table}'",
            f"%%llm -m local/scripted -t db.*\nPlease drop the {table} table",
        ],
    )


def _decisions(root: Path) -> list[tuple]:
    return (
        sqlite3.connect(root / "lab.db")
        .execute("SELECT tool, arguments, status, decision_reason FROM approvals ORDER BY created_at")
        .fetchall()
    )


def test_approve_on_the_card_runs_the_destructive_tool_once_and_shows_the_result(lab, browser):
    url, root = lab
    _agent_notebook(root, "approve.ipynb", "staging")
    page = browser.new_page()
    try:
        _run_all(page, url, "approve.ipynb")
        card = page.locator(".wb-approval-card")
        card.wait_for(timeout=60_000)
        assert "db.drop" in card.inner_text()
        assert '"table": "staging"' in card.locator("textarea").input_value()
        assert not (root / "approve.ipynb.ran").exists()  # nothing ran before the click
        card.locator("input[type='text']").fill("staging is disposable")
        card.locator("button", has_text="Approve").click()
        page.wait_for_selector(".wb-approval-card :text('The staging table is gone.')", timeout=30_000)
        assert card.locator("button", has_text="Approve").is_disabled()
    finally:
        page.close()
    assert (root / "approve.ipynb.ran").read_text() == "staging\n"  # ran exactly once
    assert ("db.drop", '{"table": "staging"}', "approved", "staging is disposable") in _decisions(root)


def test_reject_on_the_card_never_runs_the_tool(lab, browser):
    url, root = lab
    _agent_notebook(root, "reject.ipynb", "customers")
    page = browser.new_page()
    try:
        _run_all(page, url, "reject.ipynb")
        card = page.locator(".wb-approval-card")
        card.wait_for(timeout=60_000)
        card.locator("input[type='text']").fill("production data")
        card.locator("button", has_text="Reject").click()
        page.wait_for_selector(".wb-approval-card :text('Nothing was dropped.')", timeout=30_000)
    finally:
        page.close()
    assert not (root / "reject.ipynb.ran").exists()
    assert ("db.drop", '{"table": "customers"}', "rejected", "production data") in _decisions(root)


def test_a_card_takes_up_a_decision_taken_elsewhere_and_resumes_the_run(lab, browser):
    url, root = lab
    _agent_notebook(root, "elsewhere.ipynb", "scratch")
    page = browser.new_page()
    try:
        _run_all(page, url, "elsewhere.ipynb")
        card = page.locator(".wb-approval-card")
        card.wait_for(timeout=60_000)
        pending = (
            sqlite3.connect(root / "lab.db")
            .execute("SELECT id FROM approvals WHERE status = 'pending' AND arguments LIKE '%scratch%'")
            .fetchone()[0]
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "workbench.cli",
                "approvals",
                "approve",
                pending,
                "--by",
                "ops",
                "--reason",
                "from a terminal",
            ],
            cwd=root,
            capture_output=True,
            text=True,
            env={**os.environ, "WORKBENCH_STORE": str(root / "lab.db")},
        )
        assert done.returncode == 0, done.stderr
        page.wait_for_selector(".wb-approval-card :text('approved by ops (elsewhere)')", timeout=30_000)
        assert card.locator("button", has_text="Approve").is_disabled()  # no live buttons on a decided card
        # the live kernel resumes the run by itself: no click
        page.wait_for_selector(".wb-approval-card :text('The scratch table is gone.')", timeout=30_000)
    finally:
        page.close()
    assert (root / "elsewhere.ipynb.ran").read_text() == "scratch\n"


def test_a_code_answer_appears_as_a_new_cell_below_and_is_not_run(lab, browser):
    url, root = lab
    _notebook(
        root,
        "code.ipynb",
        ["%load_ext workbench", "%%llm -m local/echo --format code\nTry:\n```python\nprint(6 * 7)\n```"],
    )
    page = browser.new_page()
    try:
        _run_all(page, url, "code.ipynb")
        page.wait_for_function("document.querySelectorAll('.jp-Notebook .jp-Cell').length === 3", timeout=60_000)
        cells = page.locator(".jp-Notebook .jp-Cell")
        new = cells.nth(2)
        assert new.locator(".jp-InputArea-editor").inner_text().strip() == "print(6 * 7)"
        assert new.locator(".jp-OutputArea-output").count() == 0  # proposed, never run
        assert new.locator(".jp-InputPrompt").inner_text().strip() == "[ ]:"  # no execution count
    finally:
        page.close()


XSS = '<img src=x onerror="window.__wbxss = 1"><script>window.__wbxss = 2</script>'


def test_the_workbench_panel_shows_calls_decides_approvals_and_holds_the_kill_switch(lab, browser):
    """The sidebar panel (the JupyterLab extension): a call appears, the badge counts the parked approval,
    approving it there resumes the run in the notebook's live kernel (its card shows the result), an
    approval from another process is rejected there with a reason, the status bar shows spend and its
    kill switch stops a call in another process;
    hostile text in a prompt, a tool argument, a reason and an approver's reason is shown as text.
    """
    from workbench.errors import KillSwitchActive
    from workbench.runtime import Workbench

    url, root = lab
    _agent_notebook(root, "panel.ipynb", "orders")
    nb = nbformat.read(root / "panel.ipynb", as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(f"%%llm -m local/echo -s panel\n{XSS} hello"))
    nbformat.write(nb, root / "panel.ipynb")
    other = Workbench.from_config(root / "workbench.toml", store=str(root / "lab.db"))
    page = browser.new_page()
    try:
        _run_all(page, url, "panel.ipynb")
        page.locator(".wb-approval-card").wait_for(timeout=60_000)  # the agent is parked
        tab = page.locator(".lm-TabBar-tab[data-id='workbench-panel']")
        tab.click()
        panel = page.locator(".wb-panel")
        panel.locator("tr.wb-call", has_text="panel").first.wait_for(timeout=15_000)
        page.wait_for_function(
            "document.querySelector(\".lm-TabBar-tab[data-id='workbench-panel']\").dataset.pending === '1'",
            timeout=15_000,
        )
        panel.locator("tr.wb-call", has_text="panel").first.click()
        prompt = panel.locator("pre.wb-prompt")
        prompt.wait_for(timeout=15_000)
        assert prompt.inner_text().startswith(XSS)  # the markup, as text
        card = panel.locator(".wb-approval", has_text="db.drop")
        assert '"table": "orders"' in card.inner_text()
        card.locator("button.wb-approve").click()
        panel.locator(".wb-inbox .wb-empty").wait_for(timeout=30_000)  # (a machine busy with 5 kernels: 15 s ran out)
        page.wait_for_function(
            "document.querySelector(\".lm-TabBar-tab[data-id='workbench-panel']\").dataset.pending === undefined"
        )
        notebook_card = page.locator(".wb-approval-card")
        page.wait_for_selector(".wb-approval-card :text('(elsewhere)')", timeout=30_000)
        # notebook A's live kernel resumes the run: its card shows the result, nobody clicks there
        page.wait_for_selector(".wb-approval-card :text('The orders table is gone.')", timeout=30_000)
        assert notebook_card.locator("button", has_text="Approve").is_disabled()

        # an approval asked for from another process, hostile in its arguments and reason: rejected from the sidebar
        hostile = other.approvals.request("db.drop", {"table": XSS}, risk="destructive", reason=f"because {XSS}")
        card = panel.locator(f".wb-approval[data-id='{hostile['id']}']")
        card.wait_for(timeout=15_000)
        assert XSS in card.inner_text()  # shown, as text
        card.locator("button.wb-reject").click()
        page.locator(".jp-Dialog input").fill(f"no: {XSS}")
        page.locator(".jp-Dialog .jp-mod-accept").click()
        panel.locator(".wb-inbox .wb-empty").wait_for(timeout=15_000)
        assert other.approvals.get(hostile["id"])["status"] == "rejected"
        assert other.approvals.get(hostile["id"])["decision_reason"] == f"no: {XSS}"

        # an alert fired in another process shows (the poll says the newest alert moved; the panel reads alerts)
        other.alerts.add("any latency", "p95_latency_ms", 0.0, min_calls=1)
        with pytest.warns(UserWarning, match="any latency"):
            other.ask("slow enough", model="local/echo")
        panel.locator(".wb-alert", has_text="any latency").wait_for(timeout=15_000)

        other.budgets.set("global", 5.0, period="day")
        spend = page.locator(".wb-spend")
        page.wait_for_function(
            "document.querySelector('.wb-spend').innerText.endsWith('/ $5.00 today')", timeout=15_000
        )
        spend.click()
        page.locator(".wb-spend-menu .lm-Menu-item", has_text="Kill switch").click()
        page.locator(".jp-Dialog input").fill("panel test")
        page.locator(".jp-Dialog .jp-mod-accept").click()
        page.wait_for_function("document.querySelector('.wb-spend').innerText === 'KILL SWITCH ON'", timeout=15_000)
        with pytest.raises(KillSwitchActive, match="panel test"):
            other.ask("anyone there?", model="local/echo")
        spend.click()
        page.locator(".wb-spend-menu .lm-Menu-item", has_text="Lift the kill switch").click()
        page.wait_for_function("document.querySelector('.wb-spend').innerText !== 'KILL SWITCH ON'", timeout=15_000)
        assert other.ask("back again", model="local/echo").text == "back again"
        assert page.evaluate("window.__wbxss") is None  # nothing hostile ran
        assert panel.locator("img").count() == 0
    finally:
        page.close()
        other.budgets.lift()
        other.budgets.remove("global", period="day", missing_ok=True)
        other.close()
    assert (root / "panel.ipynb.ran").read_text() == "orders\n"  # approved in the panel, ran once
    assert ("db.drop", '{"table": "orders"}', "approved", "") in _decisions(root)
