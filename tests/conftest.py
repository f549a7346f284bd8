from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.servers import serving
from workbench.limits import ChaosServer
from workbench.runtime import Workbench


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch) -> None:
    """Run each test from an empty folder with no WORKBENCH_* settings (the notebooks' store stays theirs)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for name in (
        "WORKBENCH_STORE",
        "WORKBENCH_MODE",
        "WORKBENCH_CONFIG",
        "WORKBENCH_DEFAULT_ROUTE",
        "WORKBENCH_VIA_LITELLM",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _close_workbenches(monkeypatch) -> Iterator[list[Workbench]]:
    """Every Workbench a test opens is closed when it ends (MCP servers stopped, store closed), even
    when the test forgot or failed first: closing twice is harmless."""
    opened: list[Workbench] = []
    init = Workbench.__init__

    def tracked(self: Workbench, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(Workbench, "__init__", tracked)
    yield opened
    for bench in reversed(opened):
        bench.close()


@pytest.fixture
def make_wb(tmp_path: Path) -> Callable[..., Workbench]:
    """Build Workbenches on real SQLite files in this test's folder: ``make_wb(name="wb", **settings)``
    (``store=`` or a config path override the file). All are closed at the end of the test."""

    def make(config: str | Path | None = None, *, name: str = "wb", **settings) -> Workbench:
        if config is None:
            settings.setdefault("store", str(tmp_path / f"{name}.db"))
        return Workbench.from_config(config, **settings)

    return make


@pytest.fixture
def wb(make_wb) -> Workbench:
    """A Workbench on a real SQLite file, with default settings (closed at the end of the test)."""
    return make_wb()


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

    with serving(Handler) as url:
        yield f"{url}/hook?token=hook-secret-123", received
