"""Helpers for tests that run a real server: a free port, a tool from its own venv, waiting for it to be up, and
a small HTTP server on a thread."""

import http.client
import os
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
# A chaos-server deployment priced in its configuration: a process that only calls such servers never imports
# litellm for its price map (seconds in each spawned process of a multi-process test).
FREE = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 from a thread; its base URL (``http://127.0.0.1:PORT``), stopped after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def venv_tool(venv: str, command: str, env_var: str, install: str) -> str:
    """``command`` from the venv ``venv`` at the repository's root, or the path in ``$env_var``.

    ``.ci/run`` installs such a venv in the background while the suite starts (logging to ``VENV.log`` and
    touching ``VENV/ready`` when done): wait for that. Missing: a skip that says how to install it, and a
    failure under ``CI`` (where .ci/run must have installed it).
    """
    folder = ROOT / venv
    found = os.environ.get(env_var) or str(folder / "bin" / command)
    deadline = time.monotonic() + 600
    installing = (ROOT / f"{venv}.log").exists()
    while installing and not (folder / "ready").exists() and time.monotonic() < deadline:
        time.sleep(1)
    if not Path(found).exists():
        message = f"no {command} in {venv}: {install}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    return found


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    """Poll ``url`` until it answers; a process that exits or a timeout fails with the tail of its ``log``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except (OSError, http.client.HTTPException):  # not up yet; or another program took the port meanwhile
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not start:\n" + log.read_text()[-3000:]) from None
            time.sleep(0.25)
