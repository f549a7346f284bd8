"""Overhead of the workbench pipeline, measured against litellm itself in the same run.

P1  wb.ask on local/echo vs bare litellm.completion on the same local model, same
    process, by throughput: alternating blocks of calls, several rounds. Each round
    pairs an "ours" block with the adjacent "bare" block, so both sides of a ratio
    see the same machine state (this machine's bare cost drifts 2x between rounds);
    prints the median over rounds of (ours - bare) / bare. Target <= 0.25.
P2  `%load_ext workbench` wall time vs `import litellm`, each in fresh processes,
    median of 5. Target <= 0.1.
P8  resident memory growth of one process over N local/echo calls through wb.ask
    (litellm alone over the same N beside it), each side in a fresh process, after
    200 warm-up calls. Target <= 50 MB.

Usage: python bench/overhead.py [--block 200] [--rounds 7] [--calls 10000] [--only P1,P2,P8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MESSAGES = [{"role": "user", "content": "How long does the overhead of one call take?"}]


def _workbench():
    from workbench.runtime import Workbench

    folder = tempfile.mkdtemp(prefix="wb-bench-")
    os.chdir(folder)  # no project config: default settings, a fresh store
    return Workbench.from_config(store=os.path.join(folder, "bench.db"))


def p1(block: int, rounds: int) -> None:
    from workbench.serving import litellm_module

    litellm = litellm_module()
    wb = _workbench()
    prompt = MESSAGES[0]["content"]

    def bare() -> None:
        litellm.completion(model="local/echo", messages=MESSAGES)

    def ours() -> None:
        wb.ask(prompt, model="local/echo")

    for fn in (bare, ours):  # warm up: imports, tokenizer, statement cache
        for _ in range(50):
            fn()
    times: dict[str, list[float]] = {"bare": [], "ours": []}
    for r in range(rounds):
        order = (("bare", bare), ("ours", ours)) if r % 2 == 0 else (("ours", ours), ("bare", bare))
        for name, fn in order:
            t0 = time.perf_counter()
            for _ in range(block):
                fn()
            times[name].append((time.perf_counter() - t0) / block * 1000)
    b, o = statistics.median(times["bare"]), statistics.median(times["ours"])
    ratios = [(ours - bare) / bare for ours, bare in zip(times["ours"], times["bare"], strict=True)]
    print(f"P1 bare litellm.completion(local/echo): {b:.3f} ms/call (rounds: {_fmt(times['bare'])})")
    print(f"P1 wb.ask(local/echo):                  {o:.3f} ms/call (rounds: {_fmt(times['ours'])})")
    print(f"P1 per-round ratios: {_fmt(ratios)}")
    print(
        f"P1 added overhead: median {o - b:.3f} ms/call; ratio to litellm's own cost = "
        f"{statistics.median(ratios):.3f} (median of paired rounds; target <= 0.25)"
    )


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _fresh(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    )
    return float(out.stdout.strip().splitlines()[-1])


def p2(runs: int = 5) -> None:
    load = (
        "from IPython.testing.globalipapp import start_ipython; import time; ip = start_ipython();"
        "t = time.perf_counter(); ip.run_line_magic('load_ext', 'workbench');"
        "print(time.perf_counter() - t)"
    )
    imp = "import time; t = time.perf_counter(); import litellm; print(time.perf_counter() - t)"
    ext, lit = [], []
    for _ in range(runs):
        ext.append(_fresh(load))
        lit.append(_fresh(imp))
    e, m = statistics.median(ext), statistics.median(lit)
    print(f"P2 %load_ext workbench: median {e * 1000:.1f} ms ({_fmt([x * 1000 for x in ext])})")
    print(f"P2 import litellm:      median {m * 1000:.1f} ms ({_fmt([x * 1000 for x in lit])})")
    print(f"P2 ratio = {e / m:.4f} (target <= 0.1)")


def _p8_worker(side: str, calls: int) -> None:
    import gc

    import psutil

    from workbench.serving import litellm_module

    litellm = litellm_module()
    if side == "bare":

        def fn() -> None:
            litellm.completion(model="local/echo", messages=MESSAGES)
    else:
        wb = _workbench()

        def fn() -> None:
            wb.ask(MESSAGES[0]["content"], model="local/echo")

    proc = psutil.Process()
    for _ in range(200):
        fn()
    gc.collect()
    before = proc.memory_info().rss
    for _ in range(calls):
        fn()
    gc.collect()
    print((proc.memory_info().rss - before) / 2**20)


def p8(calls: int) -> None:
    growth = {}
    for side in ("bare", "ours"):
        out = subprocess.run(
            [sys.executable, __file__, "--p8-worker", side, "--calls", str(calls)],
            capture_output=True,
            text=True,
            check=True,
        )
        growth[side] = float(out.stdout.strip().splitlines()[-1])
    print(
        f"P8 RSS growth over {calls} calls, each in a fresh process: bare litellm {growth['bare']:.1f} MB; "
        f"wb.ask {growth['ours']:.1f} MB (target <= 50 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--only", default="P1,P2,P8")
    parser.add_argument("--p8-worker", choices=["bare", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.p8_worker:
        _p8_worker(args.p8_worker, args.calls)
        return
    only = set(args.only.upper().split(","))
    if "P2" in only:
        p2()
    if "P1" in only:
        p1(args.block, args.rounds)
    if "P8" in only:
        p8(args.calls)


if __name__ == "__main__":
    main()
