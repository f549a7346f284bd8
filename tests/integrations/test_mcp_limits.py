"""MCP servers can't outlive or outrun us: killed with their whole process group, bounded queries, no unsafe SQL."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench.integrations import ToolError
from workbench.runtime import Workbench

ROOT = Path(__file__).resolve().parents[2]
ANALYST = ROOT / "extensions" / "sqlite_analyst" / "server.py"
FLAKY = ROOT / "tests" / "data" / "mcp" / "flaky_server.py"
SPIN = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"


@pytest.fixture
def shop(tmp_path):
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, country TEXT)")
    conn.executemany("INSERT INTO customers (name, country) VALUES (?, ?)", [(f"c{i}", "UK") for i in range(5000)])
    conn.commit()
    conn.close()
    return db


def _servers(root: Path) -> list[psutil.Process]:
    """Every live process (below us, or orphaned) that runs an MCP server started from ``root``.

    A server starts in its project's root (with no config file: the folder the test runs in, its own),
    so its working folder tells it apart from other tests' servers.
    """
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        script = (proc.info["cmdline"] or ["", ""])[1:2]
        if script and script[0].endswith(("sqlite_analyst/server.py", "flaky_server.py")):
            try:
                if proc.cwd() == str(root) and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return found


def _dead(proc: psutil.Process, deadline_s: float = 3.0) -> bool:
    """Whether ``proc`` ended within the deadline (a process mid-exit still reads 'running' for a moment,
    after its folder is already unreadable, so ``_gone`` can see it leave first)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:  # exited, or only awaiting reaping
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _gone(root: Path, deadline_s: float = 5.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while _servers(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _servers(root)


def _wb(tmp_path, **servers):
    return Workbench.from_config(store=str(tmp_path / "m.db"), mcp={"servers": servers})


def test_a_query_that_outruns_the_timeout_kills_the_server_and_close_leaves_no_child(tmp_path, shop):
    wb = _wb(
        tmp_path,
        analyst={
            "command": sys.executable,
            "timeout_s": 2,
            "args": [str(ANALYST), "--db", str(shop), "--max-seconds", "60"],
        },
    )
    wb.mcp.connect("analyst")
    [server] = _servers(Path.cwd())
    t0 = time.monotonic()
    with pytest.raises(ToolError, match="did not answer within 2 s"):
        wb.mcp.call("analyst", "query", {"sql": SPIN})
    assert time.monotonic() - t0 < 10
    assert _gone(Path.cwd(), 3)
    assert _dead(server)  # the spinning server is gone, not orphaned at 100% CPU
    assert "5000" in wb.mcp.call("analyst", "query", {"sql": "SELECT COUNT(*) FROM customers"})  # restarts
    wb.close()
    assert _gone(Path.cwd(), 3)


def test_a_killed_client_takes_its_servers_with_it(tmp_path, shop):
    script = (
        f"import sys, time; from workbench.runtime import Workbench\n"
        f"wb = Workbench.from_config(store={str(tmp_path / 'c.db')!r}, mcp={{'servers': "
        f"{{'analyst': {{'command': sys.executable, 'args': [{str(ANALYST)!r}, '--db', {str(shop)!r}]}}}}}})\n"
        f"wb.mcp.connect('analyst'); print('up', flush=True); time.sleep(60)\n"
    )
    client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "up"
        [server] = _servers(Path.cwd())
    finally:
        os.kill(client.pid, signal.SIGKILL)
        client.wait()
    assert _gone(Path.cwd(), 5), [s.cmdline() for s in _servers(Path.cwd())]
    assert _dead(server)


def test_a_hung_flaky_server_is_killed_with_its_group(tmp_path):
    wb = _wb(tmp_path, flaky={"command": sys.executable, "args": [str(FLAKY)], "timeout_s": 1})
    wb.mcp.connect("flaky")
    with pytest.raises(ToolError, match="did not answer"):
        wb.mcp.call("flaky", "hang", {"seconds": 30})
    assert _gone(Path.cwd(), 3)
    wb.close()


def test_the_analyst_server_bounds_time_rows_and_bytes_and_allows_only_plain_functions(tmp_path, shop):
    wb = _wb(
        tmp_path,
        analyst={
            "command": sys.executable,
            "timeout_s": 20,
            "args": [str(ANALYST), "--db", str(shop), "--max-seconds", "1", "--max-rows", "100", "--max-bytes", "1000"],
        },
    )
    try:
        t0 = time.monotonic()
        with pytest.raises(ToolError, match="ran longer than 1 s and was stopped"):
            wb.mcp.call("analyst", "query", {"sql": SPIN})
        assert time.monotonic() - t0 < 12  # stopped by its 1 s limit (with the server's start), not the 20 s timeout
        rows = wb.mcp.call("analyst", "query", {"sql": "SELECT id, name FROM customers", "limit": 5000})
        assert "truncated: the first" in rows
        assert len(rows.encode()) < 1300
        few = wb.mcp.call("analyst", "query", {"sql": "SELECT id FROM customers ORDER BY id", "limit": 3})
        assert few.replace("\r", "").splitlines() == ["id", "1", "2", "3", few.replace("\r", "").splitlines()[-1]]
        for sql in (
            "SELECT fts3_tokenizer('simple')",
            "SELECT load_extension('x')",
            "SELECT zeroblob(1000000000)",
            "SELECT sqlite_compileoption_get(0)",
        ):
            with pytest.raises(ToolError, match="not authorized|prohibited|failed"):
                wb.mcp.call("analyst", "query", {"sql": sql})
        with pytest.raises(ToolError, match="too big"):  # no value may grow past 1 MB
            wb.mcp.call("analyst", "query", {"sql": "SELECT length(replace(printf('%.*c', 600000, 'x'), 'x', 'xx'))"})
        plain = wb.mcp.call(
            "analyst", "query", {"sql": "SELECT upper(name) AS n, round(1.5) AS r FROM customers LIMIT 1"}
        )
        assert plain.replace("\r", "").splitlines() == ["n,r", "C0,2.0"]
    finally:
        wb.close()
