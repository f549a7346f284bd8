"""Team scale through Redis: two stores stand in for two analysts' machines, sharing one redis-server.

T1  Budget: 4 processes over 2 stores (two each), 100 concurrent calls each (threads), against one
    team budget ($5) that fits a part of them. Overspend = the spend both stores recorded minus the
    limit (must be <= 0); also what Redis counted against it, and the holds left (must be 0).
T2  Rate limit: 2 processes, one per store, each with 8 threads calling a deployment limited to
    600 rpm on a chaos server, for --seconds. Achieved rate over the server's arrivals / 10 per
    second, and errors.
T3  Kill switch: a process on store B calls local/echo in a loop; a process on store A sets the
    team's kill switch. Milliseconds from the switch being set to B's first refused call.
T4  Added time per call on local/echo (one process, alternating blocks): no budget; a budget in
    this store (SQLite); a team budget in Redis. The difference team - store is what Redis adds.
    Then the same with a team alert rule (every call goes into the team's window and is checked).

Usage: python bench/team.py [--rounds 5] [--block 200] [--seconds 10] [--only T1,T2,T3,T4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

PRICES = {"local/echo": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is missing: apt-get install redis-server")
    port = free_port()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
    proc = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    raise SystemExit("redis-server did not start")


def analyst(path: str, url: str, **settings: object):  # noqa: ANN201
    from workbench.runtime import Workbench

    return Workbench.from_config(store=path, prices=PRICES, team={"redis_url": url, "name": "bench"}, **settings)


# ---- T1 --------------------------------------------------------------------------------


def _t1_worker(path: str, url: str, n: int) -> None:
    from workbench import BudgetExceeded
    from workbench.cost import BudgetWarning

    wb = analyst(path, url)

    def one(i: int) -> None:
        try:
            wb.ask(f"question {i} from {os.getpid()} " * 3, max_tokens=5, user="team")
        except BudgetExceeded:
            pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BudgetWarning)
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(one, range(n)))


def t1(url: str, folder: Path, limit: float = 5.0) -> dict[str, float]:
    stores = [str(folder / "t1-a.db"), str(folder / "t1-b.db")]
    setup = analyst(str(folder / "t1-setup.db"), url)
    setup.budgets.set("user:team", limit, since="now")  # each round counts from now
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_t1_worker, args=(stores[i % 2], url, 100)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    recorded = answered = refused = 0.0
    for path in stores:
        wb = analyst(path, url)
        rows = wb.store.query("SELECT status, COUNT(*) n, COALESCE(SUM(cost_usd), 0) c FROM calls GROUP BY status")
        for r in rows:
            if r["status"] == "ok":
                recorded, answered = recorded + r["c"], answered + r["n"]
            elif r["status"] == "refused":
                refused += r["n"]
        wb.close()
    row = setup.budgets.df().set_index("scope").loc["user:team (team)"]
    for path in stores:
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)
    return {
        "answered": answered,
        "refused": refused,
        "overspend_usd": round(recorded - limit, 6),
        "redis_counted_usd": round(float(row["spent_usd"]), 6),
        "recorded_usd": round(recorded, 6),
        "holds_left_usd": float(row["reserved_usd"]),
    }


# ---- T2 --------------------------------------------------------------------------------


def _t2_worker(path: str, url: str, api_base: str, seconds: float, start: float, out: object) -> None:
    wb = analyst(path, url)
    wb.add_route("r", [{"name": "shared", "model": "openai/c", "api_base": api_base, "rpm": 600}])
    wb.ask("warm up", model="r")  # litellm's import and the HTTP client: before the measured window
    time.sleep(max(0.0, start - time.time()))
    errors = 0
    stop = start + seconds

    def loop(_: int) -> None:
        nonlocal errors
        while time.time() < stop:
            try:
                wb.ask("ping", model="r", cache=False)
            except Exception:  # noqa: BLE001 - counted: the figure is how many failed
                errors += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(loop, range(8)))
    out.put(errors)  # type: ignore[attr-defined]


def t2(url: str, folder: Path, seconds: float) -> dict[str, float]:
    from workbench.limits import ChaosServer

    server = ChaosServer(name="shared").start()
    start = time.time() + 8.0  # both workers warmed up by then (a spawned process imports litellm: ~3 s)
    start_mono = time.monotonic() + 8.0
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_t2_worker, args=(str(folder / f"t2-{i}.db"), url, server.url, seconds, start, out))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    errors = sum(out.get() for _ in procs)
    server.stop()
    arrivals = sorted(t for t in server.stats.arrivals if t >= start_mono)  # the measured window only
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    return {"requests": len(arrivals), "per_s": round(rate, 3), "of_limit": round(rate / 10.0, 3), "errors": errors}


# ---- T3 --------------------------------------------------------------------------------


def _t3_caller(path: str, url: str, seconds: float, out: object) -> None:
    from workbench import KillSwitchActive

    wb = analyst(path, url)
    wb.ask("warm up")
    out.put("ready")  # type: ignore[attr-defined]
    stop = time.time() + seconds
    while time.time() < stop:
        try:
            wb.ask("ping", cache=False)
        except KillSwitchActive:
            out.put(time.time())  # type: ignore[attr-defined]
            return
    out.put(None)  # type: ignore[attr-defined]


def t3(url: str, folder: Path) -> float:
    wb = analyst(str(folder / "t3-a.db"), url)
    wb.budgets.lift()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    caller = ctx.Process(target=_t3_caller, args=(str(folder / "t3-b.db"), url, 30.0, out))
    caller.start()
    assert out.get(timeout=120) == "ready"
    time.sleep(0.5)  # the caller is calling in a loop
    at = time.time()
    wb.kill("bench")
    refused = out.get(timeout=60)
    caller.join()
    wb.budgets.lift()
    if refused is None:
        raise SystemExit("T3: the kill switch never stopped the other store's calls")
    return (refused - at) * 1000


# ---- T4 --------------------------------------------------------------------------------


def t4(url: str, folder: Path, block: int, rounds: int) -> dict[str, float]:
    from workbench.runtime import Workbench

    plain = Workbench.from_config(store=str(folder / "t4-plain.db"), prices=PRICES)
    local = Workbench.from_config(store=str(folder / "t4-local.db"), prices=PRICES)
    local.budgets.set("global", 1e9)
    team = analyst(str(folder / "t4-team.db"), url)
    team.budgets.set("user:t4", 1e9)  # a team budget covering these calls
    rule = {"name": "errors", "metric": "error_rate", "above": 0.5, "min_calls": 5}
    watched = analyst(str(folder / "t4-alerts.db"), url.replace("/0", "/1"), alerts={"rules": [rule]})
    watched.budgets.set("user:t4", 1e9)  # the same, on another database: a team with an alert rule
    runs = {
        "none": (plain, {}),
        "store budget": (local, {}),
        "team budget": (team, {"user": "t4"}),
        "team budget + alert rule": (watched, {"user": "t4"}),
    }
    for wb, kw in runs.values():
        for _ in range(50):
            wb.ask("warm up the path", max_tokens=5, **kw)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name, (wb, kw) in runs.items():
            t = time.perf_counter()
            for i in range(block):
                wb.ask(f"q {r} {i}", max_tokens=5, **kw)
            times[name].append((time.perf_counter() - t) / block * 1000)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {
        **{f"{name} ms": round(v, 3) for name, v in med.items()},
        "redis adds ms (team - store)": round(med["team budget"] - med["store budget"], 3),
        "team / store": round(med["team budget"] / med["store budget"], 3),
        "an alert rule adds ms": round(med["team budget + alert rule"] - med["team budget"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", default="T1,T2,T3,T4")
    args = parser.parse_args()
    only = set(args.only.split(","))
    folder = Path(tempfile.mkdtemp(prefix="wb-team-"))
    proc, url = start_redis(folder)
    try:
        if "T1" in only:
            for r in range(args.rounds):
                print(f"T1 budget, round {r + 1}: {t1(url, folder)}", flush=True)
        if "T2" in only:
            for r in range(args.rounds):
                print(f"T2 600 rpm shared, round {r + 1}: {t2(url, folder, args.seconds)}", flush=True)
        if "T3" in only:
            ms = [t3(url, folder) for _ in range(args.rounds)]
            print(
                f"T3 kill switch to the other store's first refusal: min {min(ms):.1f} / median "
                f"{statistics.median(ms):.1f} / max {max(ms):.1f} ms",
                flush=True,
            )
        if "T4" in only:
            figures = t4(url, folder, args.block, args.rounds)
            print(f"T4 per call, medians of {args.rounds} blocks of {args.block}: {figures}")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
