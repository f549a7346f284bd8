"""What a change does to wb.ask's cost per call: two checkouts of the workbench side by side, with bare litellm.

A1  Bare ``litellm.completion``, ``wb.ask`` from checkout A and ``wb.ask`` from checkout B (``git worktree add
    /tmp/wbA <commit>``), each in a worker process of its own that imports its checkout, on ``local/echo`` through
    litellm's custom provider (as P1r sends it; ``--direct``: local models answered in-process, the default, where
    litellm's own ~1 ms is not in the figure). The driver alternates blocks of calls between the three, round after
    round, and prints each checkout's cost over bare and, per round, B - A: what the change between them adds (a
    saving is negative). The machine's noise is about +-30 us a call through litellm, +-15 us direct: quote the
    median of several runs.

Usage: python bench/checkouts.py A_PATH [B_PATH (default: this checkout)] [--rounds 9] [--block 300] [--direct]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "Summarise the refund policy for a damaged kettle."


def _worker(kind: str, checkout: str, direct: bool, conn: Any) -> None:
    sys.path.insert(0, checkout)
    if not direct:
        os.environ["WORKBENCH_VIA_LITELLM"] = "1"
    import workbench

    assert workbench.__file__.startswith(checkout), f"{workbench.__file__} is not from {checkout}"
    from workbench.serving.router import litellm_module

    litellm = litellm_module()
    if kind == "bare":

        def call() -> None:
            litellm.completion(model="local/echo", messages=[{"role": "user", "content": PROMPT}])
    else:
        from workbench.runtime import Workbench

        wb = Workbench.from_config(store=os.path.join(tempfile.mkdtemp(), "w.db"))

        def call() -> None:
            wb.ask(PROMPT, model="local/echo")

    for _ in range(300):
        call()  # warm up
    conn.send("ready")
    while (n := conn.recv()) is not None:
        t = time.perf_counter()
        for _ in range(n):
            call()
        conn.send((time.perf_counter() - t) / n * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b", nargs="?", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--block", type=int, default=300)
    parser.add_argument("--direct", action="store_true")
    args = parser.parse_args()
    a, b = (str(Path(p).resolve()) for p in (args.a, args.b))
    ctx = multiprocessing.get_context("spawn")
    kinds = {"bare": b, "A": a, "B": b}
    conns = {}
    for kind, checkout in kinds.items():
        parent, child = ctx.Pipe()
        ctx.Process(target=_worker, args=(kind, checkout, args.direct, child), daemon=True).start()
        conns[kind] = parent
    for conn in conns.values():
        assert conn.recv() == "ready"
    us: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind in list(kinds) if r % 2 == 0 else list(reversed(kinds)):
            conns[kind].send(args.block)
            us[kind].append(conns[kind].recv())
    for conn in conns.values():
        conn.send(None)
    over = {k: statistics.median(x - y for x, y in zip(us[k], us["bare"], strict=True)) for k in ("A", "B")}
    change = [y - x for x, y in zip(us["A"], us["B"], strict=True)]
    print(
        f"A1 {'direct' if args.direct else 'through litellm'}, us a call: bare {statistics.median(us['bare']):.0f}; "
        f"A {over['A']:+.0f} over bare, B {over['B']:+.0f}; B - A per round: median {statistics.median(change):+.0f} "
        f"(min {min(change):+.0f}, max {max(change):+.0f})"
    )


if __name__ == "__main__":
    main()
