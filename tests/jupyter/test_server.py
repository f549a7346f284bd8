"""The panel's server extension in a real Jupyter server, over HTTP with its token: what the panel reads and does.

The extension is enabled by the config file the package installs (nothing is passed on the
command line): the server here finds it the way a user's JupyterLab does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest

from tests.servers import free_port
from workbench.errors import KillSwitchActive
from workbench.runtime import Workbench

TOKEN = "workbench-panel-test"
RULES = [
    {"pattern": "(?i)delete the file (?P<p>\\S+)", "tool": "files__delete", "arguments": {"path": "\\g<p>"}},
    {"role": "tool", "pattern": "deleted (?P<p>\\S+)", "reply": "Deleted \\g<p>."},
]
CONFIG = """
store = "panel.db"
default_route = "local/scripted"
[guardrails.tools]
paths = ["data"]
arguments = [{ tool = "files.*", argument = "path", check = "path" }]
[prices."local/echo"]
input_cost_per_token = 0.001
output_cost_per_token = 0.001
"""


class Jupyter:
    """A jupyter server on 127.0.0.1 with a token, serving ``root``."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(root / ".config"),
            "JUPYTER_DATA_DIR": str(root / ".data"),
            "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
            "IPYTHONDIR": str(root / ".ipython"),
        }
        env.pop("WORKBENCH_STORE", None)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "server",
                "--allow-root",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={root}",
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.request("GET", "/api/status")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    error = self.proc.stderr.read().decode()[-2000:]
                    raise AssertionError(f"jupyter server did not start: {error}") from None
                time.sleep(0.3)

    def request(self, method: str, path: str, body: object = None, token: str | None = TOKEN) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"token {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, text.decode(errors="replace")

    def open_notebook(self, path: str) -> None:
        status, _ = self.request(
            "POST", "/api/sessions", {"path": path, "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        )
        assert status == 201

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A project folder with a workbench.toml, a notebook of it open, and a second project nobody opened."""
    root = tmp_path_factory.mktemp("panel")
    project, other = root / "project", root / "other"
    for folder in (project, other):
        folder.mkdir()
        (folder / "data").mkdir()
        (folder / "workbench.toml").write_text(CONFIG)
        nbformat.write(nbformat.v4.new_notebook(), folder / "a.ipynb")
    # (the suite sets WORKBENCH_STORE for its own processes: the store is named here as the config names it)
    wb = Workbench.from_config(project / "workbench.toml", store=str(project / "panel.db"), scripted={"rules": RULES})
    wb.deleted = []

    @wb.tool(name="files.delete", risk="destructive")
    def delete(path: str) -> str:
        """Delete a file."""
        wb.deleted.append(path)
        return f"deleted {path}"

    # a store exists there too, but no notebook of it is open
    Workbench.from_config(other / "workbench.toml", store=str(other / "panel.db")).close()
    server = Jupyter(root)
    server.open_notebook("project/a.ipynb")
    yield server, wb, root
    server.stop()
    wb.close()


def _store(server: Jupyter) -> str:
    status, body = server.request("GET", "/workbench/api/stores")
    assert status == 200
    (store,) = body["stores"]
    return store["id"]


def test_the_stores_are_those_of_open_notebooks_only(served):
    server, wb, root = served
    status, body = server.request("GET", "/workbench/api/stores")
    assert status == 200
    assert [(s["label"], s["notebooks"]) for s in body["stores"]] == [("project/panel.db", ["project/a.ipynb"])]
    assert str(root) not in json.dumps(body)  # labels relative to the server's root: no absolute paths


def test_a_store_is_named_by_its_id_never_by_a_path(served):
    server, wb, root = served
    import hashlib

    other = hashlib.sha256(str((root / "other" / "panel.db").resolve()).encode()).hexdigest()[:16]
    for probe in (other, "../other/panel.db", str(root / "other" / "panel.db"), "..%2F..%2Fetc%2Fpasswd"):
        status, body = server.request("GET", f"/workbench/api/calls?store={probe}")
        assert status == 404, probe
    status, _ = server.request("GET", "/workbench/api/calls")
    assert status == 400


def test_without_the_token_nothing_is_served(served):
    server, wb, root = served
    store = _store(server)
    for method, path, body in (
        ("GET", "/workbench/api/stores", None),
        ("GET", f"/workbench/api/calls?store={store}", None),
        ("POST", f"/workbench/api/kill?store={store}", {"reason": "x"}),
    ):
        status, _ = server.request(method, path, body, token=None)
        assert status == 403, path
    status, _ = server.request("GET", "/workbench/api/stores", token="wrong")
    assert status == 403


def test_calls_newest_first_then_only_new_ones_with_their_detail(served):
    server, wb, root = served
    store = _store(server)
    hostile = "<img src=x onerror=alert(1)> what is 2+2?"
    wb.ask("first question", model="local/echo", session="s1")
    wb.ask(hostile, model="local/echo", session="s2")
    status, body = server.request("GET", f"/workbench/api/calls?store={store}")
    assert status == 200
    assert [c["session"] for c in body["calls"][:2]] == ["s2", "s1"]
    newest = body["calls"][0]
    assert newest["model"] == "local/echo" and newest["status"] == "ok" and newest["cost_usd"] > 0
    assert newest["prompt_tokens"] > 0 and newest["latency_ms"] >= 0
    latest = body["latest"]
    status, body = server.request("GET", f"/workbench/api/calls?store={store}&after={quote(latest)}")
    assert body["calls"] == []
    wb.ask("third", model="local/echo", session="s1")
    status, body = server.request("GET", f"/workbench/api/calls?store={store}&after={quote(latest)}")
    assert [c["session"] for c in body["calls"]] == ["s1"]
    status, body = server.request("GET", f"/workbench/api/calls?store={store}&session=s2")
    assert [c["session"] for c in body["calls"]] == ["s2"]
    status, detail = server.request("GET", f"/workbench/api/calls/{newest['id']}?store={store}")
    assert status == 200
    assert detail["call"]["prompt"] == hostile  # data, as stored: the panel renders it as text
    assert [a["status"] for a in detail["attempts"]] == ["ok"]
    assert detail["spans"] and detail["spans"][0]["offset_ms"] == 0
    status, _ = server.request("GET", f"/workbench/api/calls/nope?store={store}")
    assert status == 400


def _park(wb: Workbench, path: str) -> str:
    run = wb.agent("ops", tools=["files.*"]).run(f"delete the file {path}")
    assert run.status == "waiting"
    return run.waiting_on


def test_two_people_deciding_at_once_get_one_winner(served):
    server, wb, root = served
    store = _store(server)
    approval = _park(wb, "data/old.csv")
    status, body = server.request("GET", f"/workbench/api/approvals?store={store}")
    assert status == 200
    pending = {a["id"]: a for a in body["approvals"]}
    assert pending[approval]["tool"] == "files.delete"
    assert pending[approval]["arguments"] == {"path": "data/old.csv"}
    results = []
    barrier = threading.Barrier(2)

    def decide(decision: str) -> None:
        barrier.wait()
        body = {"decision": decision, "reason": "<b>no</b>", "by": "mallory"}
        results.append(server.request("POST", f"/workbench/api/approvals/{approval}?store={store}", body))

    threads = [threading.Thread(target=decide, args=(d,)) for d in ("approve", "reject")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 409]
    loser = next(body for status, body in results if status == 409)
    assert "already" in loser["message"] or "someone else" in loser["message"]
    row = wb.approvals.get(approval)
    assert row["status"] in ("approved", "rejected")
    assert row["decided_by"] != "mallory"  # who decides comes from Jupyter's auth, not the request body


def test_modified_arguments_are_checked_like_the_models(served):
    server, wb, root = served
    store = _store(server)
    approval = _park(wb, "data/new.csv")
    path = f"/workbench/api/approvals/{approval}?store={store}"
    status, body = server.request("POST", path, {"decision": "modify", "arguments": {"path": "/etc/passwd"}})
    assert status == 409 and "were refused" in body["message"] and "outside" in body["message"]
    assert wb.approvals.get(approval)["status"] == "pending"
    status, body = server.request("POST", path, {"decision": "maybe"})
    assert status == 400 and "approve, reject, modify or escalate" in body["message"]
    status, body = server.request("POST", path, {"decision": "modify", "arguments": {"path": "data/new2.csv"}})
    assert status == 200
    done = wb.resume(wb.approvals.get(approval)["run_id"])
    assert done.answer == "Deleted data/new2.csv."
    assert wb.deleted[-1] == "data/new2.csv"


def test_the_kill_switch_from_the_panel_stops_calls_and_lifts(served):
    server, wb, root = served
    store = _store(server)
    wb.budgets.set("global", 5.0, period="day")
    status, body = server.request("GET", f"/workbench/api/spend?store={store}")
    assert status == 200
    assert body["budget"]["label"].endswith("/ $5.00 today") and body["killed"] is None
    assert {m["model"] for m in body["by_model"]} >= {"local/echo"}
    status, body = server.request("POST", f"/workbench/api/kill?store={store}", {"reason": "runaway agent"})
    assert status == 200 and "runaway agent" in body["killed"]
    with pytest.raises(KillSwitchActive, match="runaway agent"):
        wb.ask("anyone?", model="local/echo")
    status, body = server.request("DELETE", f"/workbench/api/kill?store={store}")
    assert status == 200 and body["killed"] is None
    assert wb.ask("back", model="local/echo").text == "back"
    status, body = server.request("POST", f"/workbench/api/kill?store={store}", {"reason": " "})
    assert status == 400
    wb.budgets.remove("global", period="day")


def test_one_poll_carries_new_calls_pending_count_and_spend(served):
    server, wb, root = served
    store = _store(server)
    status, body = server.request("GET", f"/workbench/api/poll?store={store}")
    assert status == 200
    assert set(body) >= {"calls", "latest", "pending", "spend"}
    status, again = server.request("GET", f"/workbench/api/poll?store={store}&after={quote(body['latest'])}")
    assert again["calls"] == []
    status, alerts = server.request("GET", f"/workbench/api/alerts?store={store}")
    assert status == 200 and set(alerts) == {"alerts", "guard"}


def test_a_sessions_report_and_the_dashboard_open_as_pages(served):
    server, wb, root = served
    store = _store(server)
    wb.ask("<script>alert(1)</script> for the report", model="local/echo", session="reported")
    req = urllib.request.Request(
        f"{server.url}/workbench/api/report?store={store}&session=reported", headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read().decode()
    assert "reported" in page and "<script>alert(1)</script>" not in page  # escaped, as in wb.report
    status, body = server.request("GET", f"/workbench/api/report?store={store}&session=nobody")
    assert status == 400
    req = urllib.request.Request(
        f"{server.url}/workbench/api/dashboard?store={store}", headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=120) as resp:
        assert "plotly" in resp.read().decode()
