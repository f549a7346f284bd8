from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workbench.limits import ChaosServer
from workbench.runtime import Workbench


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch) -> None:
    """Run each test from an empty folder with no WORKBENCH_* settings (the notebooks' store stays theirs)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in ("WORKBENCH_STORE", "WORKBENCH_MODE", "WORKBENCH_CONFIG", "WORKBENCH_DEFAULT_ROUTE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def wb(tmp_path: Path) -> Iterator[Workbench]:
    """A Workbench on a real SQLite file, with default settings."""
    bench = Workbench.from_config(store=str(tmp_path / "wb.db"))
    yield bench
    bench.close()


@pytest.fixture
def chaos() -> Iterator[callable]:
    """Start chaos servers on 127.0.0.1; all are stopped at the end of the test."""
    servers: list[ChaosServer] = []

    def start(**options) -> ChaosServer:
        server = ChaosServer(**options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def hook():
    """A real webhook receiver on 127.0.0.1: the JSON bodies it was POSTed."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?token=hook-secret-123", received
    server.shutdown()
    server.server_close()
