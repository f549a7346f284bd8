"""The workbench panel's cost to JupyterLab, and how soon a new call shows in it.

W1  Overhead. A real Jupyter server (the workbench extension enabled, as installed) with a
    notebook session open on a store that 4 writer processes fill at 50 calls/s in all
    (``local/echo``). Alternating blocks of --seconds: JupyterLab's own API calls
    (``GET /api/contents`` and ``/api/kernels``, 20 a second) with no panel open, then the
    same while --panels open panels each poll ``/workbench/api/poll`` once a second, as the
    sidebar does. p50/p95 of JupyterLab's calls per side, and what the panels add to p95
    (target < 5 ms).
W2  Latency of a new call. Each poll's new calls against the instant each call was recorded
    (its start + latency): median and p95 from a call ending to a panel seeing it (a 1 s poll:
    at most ~1 s plus the poll).

Usage: python bench/panel.py [--seconds 10] [--rounds 3] [--panels 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
sys.path.insert(0, str(Path(__file__).parents[1]))

TOKEN = "bench-panel"
WRITERS, RATE = 4, 50.0


def _writer(config: str, stop_at: float) -> None:
    import warnings

    from workbench.runtime import Workbench

    warnings.simplefilter("ignore")
    wb = Workbench.from_config(config)
    wb.ask("warm up", model="local/echo")
    period, n = WRITERS / RATE, 0
    start = time.monotonic()
    while time.monotonic() < stop_at:
        wb.ask(f"question {n} from {os.getpid()}", model="local/echo", cache=False)
        n += 1
        delay = start + n * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    wb.close()


def _get(base: str, path: str) -> tuple[float, object]:
    t = time.perf_counter()
    req = urllib.request.Request(base + path, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = json.loads(resp.read())
    return (time.perf_counter() - t) * 1000, body


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(q * len(ordered))) - 1)] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--panels", type=int, default=2)
    args = parser.parse_args()
    from tests.servers import free_port

    root = Path(tempfile.mkdtemp(prefix="wb-panel-bench-"))
    (root / "workbench.toml").write_text('store = "bench.db"\n')
    config = str(root / "workbench.toml")
    from workbench.runtime import Workbench

    Workbench.from_config(config).close()  # the store exists before the server looks for it
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".cfg"), "JUPYTER_RUNTIME_DIR": str(root / ".rt")}
    env.pop("WORKBENCH_STORE", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--allow-root", "--no-browser", "--ip=127.0.0.1"]
        + [f"--port={port}", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            _get(base, "/api/status")
            break
        except OSError:
            time.sleep(0.3)
    body = json.dumps({"path": "a.ipynb", "type": "notebook", "name": "", "kernel": {"name": "python3"}}).encode()
    req = urllib.request.Request(base + "/api/sessions", body, {"Authorization": f"token {TOKEN}"}, method="POST")
    urllib.request.urlopen(req, timeout=60).read()
    store = _get(base, "/workbench/api/stores")[1]["stores"][0]["id"]  # type: ignore[index]

    total = args.rounds * 2 * args.seconds + 20
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(config, time.monotonic() + total)) for _ in range(WRITERS)]
    for w in writers:
        w.start()
    time.sleep(8)  # the writers import and warm up

    lab: dict[str, list[float]] = {"no panel": [], "panels open": []}
    seen: list[float] = []
    polls: list[float] = []

    def panel(until: float, latest: list[str | None]) -> None:
        while time.monotonic() < until:
            t0 = time.monotonic()
            q = urllib.parse.urlencode({"store": store, **({"after": latest[0]} if latest[0] else {})})
            ms, data = _get(base, f"/workbench/api/poll?{q}")
            now = time.time()
            polls.append(ms)
            for call in data["calls"]:  # type: ignore[index]
                ended = datetime.fromisoformat(call["started_at"]).timestamp() + (call["latency_ms"] or 0) / 1000
                if latest[0] is not None:
                    seen.append((now - ended) * 1000)
            latest[0] = data["latest"] or latest[0]  # type: ignore[index]
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    for _ in range(args.rounds):
        for side in ("no panel", "panels open"):
            until = time.monotonic() + args.seconds
            threads = []
            if side == "panels open":
                threads = [threading.Thread(target=panel, args=(until, [None])) for _ in range(args.panels)]
                for t in threads:
                    t.start()
            while time.monotonic() < until:
                t0 = time.monotonic()
                for path in ("/api/contents", "/api/kernels"):
                    lab[side].append(_get(base, path)[0])
                time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
            for t in threads:
                t.join()
    for w in writers:
        w.terminate()
        w.join()
    server.terminate()
    server.wait(15)
    calls = Workbench.from_config(config).calls.df()
    span = (calls["started_at"].max(), calls["started_at"].min())
    print(
        f"W1 JupyterLab's API calls while {WRITERS} writers add {RATE:g} calls/s ({len(calls)} calls, {span[1][11:19]}"
        f"-{span[0][11:19]}), {args.rounds} rounds x {args.seconds:g} s per side, {args.panels} panels polling 1/s"
    )
    for side, values in lab.items():
        print(
            f"   {side:>12}: p50 {_quantile(values, 0.5):6.2f} ms   p95 {_quantile(values, 0.95):6.2f} ms"
            f"   (n={len(values)})"
        )
    added = _quantile(lab["panels open"], 0.95) - _quantile(lab["no panel"], 0.95)
    print(f"   the panels add to p95: {added:+.2f} ms (target < 5)")
    print(f"   a poll itself: p50 {_quantile(polls, 0.5):.1f} ms, p95 {_quantile(polls, 0.95):.1f} ms (n={len(polls)})")
    print(
        f"W2 a new call to a panel seeing it: median {statistics.median(seen):.0f} ms, "
        f"p95 {_quantile(seen, 0.95):.0f} ms (n={len(seen)})"
    )


if __name__ == "__main__":
    main()
