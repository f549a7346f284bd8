"""Per-call overhead against LiteLLM's Router, each implementation in its own long-lived worker process.

P1r On ``local/echo``: bare ``litellm.completion``; a ``litellm.Router`` with two deployments and
    fallbacks; ``wb.ask`` with its defaults (input and output guardrails, budgets checked, a span
    tree, every call recorded durably in SQLite). A ``Router`` in a process slows plain
    ``litellm.completion`` in that process (1.66 -> 3.34 ms measured), so each runs in a worker of
    its own; the driver alternates blocks between them, round after round, and each round's
    figures come from adjacent blocks. Prints per implementation the median ms per call, and the
    ratio (wb - bare) / (router - bare): what the workbench adds over litellm as a fraction of what
    the Router adds. Target <= 0.2. ``wb`` here sends local/echo through litellm's custom provider
    (``WORKBENCH_VIA_LITELLM=1``), as bare and the Router do, so the three do the same work;
    ``wb-direct`` is what a user gets by default: local models answered in-process, without litellm.

Usage: python bench/router_overhead.py [--block 200] [--rounds 9]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MESSAGES = [{"role": "user", "content": "Summarise the refund policy for a damaged kettle."}]


def _worker(kind: str, conn: Any) -> None:
    if kind == "wb":
        os.environ["WORKBENCH_VIA_LITELLM"] = "1"
    from workbench.serving.router import litellm_module

    litellm = litellm_module()  # registers the local models (local/echo) as the bare call sees them too
    if kind == "bare":

        def call(i: int) -> None:
            litellm.completion(model="local/echo", messages=MESSAGES)

    elif kind == "router":
        router = litellm.Router(
            model_list=[
                {"model_name": "echo", "litellm_params": {"model": "local/echo"}},
                {"model_name": "echo-b", "litellm_params": {"model": "local/echo"}},
            ],
            fallbacks=[{"echo": ["echo-b"]}],
            num_retries=0,
        )

        def call(i: int) -> None:
            router.completion(model="echo", messages=MESSAGES)

    else:
        from workbench.runtime import Workbench

        wb = Workbench.from_config(store=os.path.join(tempfile.mkdtemp(), "w.db"))

        def call(i: int) -> None:
            wb.ask(MESSAGES[0]["content"], model="local/echo")

    for i in range(100):
        call(i)  # warm up
    conn.send("ready")
    while True:
        n = conn.recv()
        if n is None:
            return
        t = time.perf_counter()
        for i in range(n):
            call(i)
        conn.send((time.perf_counter() - t) / n * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    kinds = ("bare", "router", "wb", "wb-direct")
    workers = {}
    for kind in kinds:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(kind, child), daemon=True)
        proc.start()
        workers[kind] = (proc, parent)
    for _, conn in workers.values():
        assert conn.recv() == "ready"
    per: dict[str, list[float]] = {k: [] for k in kinds}
    ratios = []
    for r in range(args.rounds):
        order = kinds if r % 2 == 0 else tuple(reversed(kinds))
        got = {}
        for kind in order:
            workers[kind][1].send(args.block)
            got[kind] = workers[kind][1].recv()
            per[kind].append(got[kind])
        ratios.append((got["wb"] - got["bare"]) / (got["router"] - got["bare"]))
    for _, conn in workers.values():
        conn.send(None)
    med = {k: statistics.median(v) for k, v in per.items()}
    print(
        f"P1r ms per call, median of {args.rounds} rounds of {args.block}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in med.items())
    )
    print(
        f"    added over bare: router {med['router'] - med['bare']:+.3f} ms, wb {med['wb'] - med['bare']:+.3f} ms; "
        f"(wb - bare) / (router - bare) per round: min {min(ratios):.3f} / median {statistics.median(ratios):.3f} / "
        f"max {max(ratios):.3f} (target <= 0.2)"
    )
    direct = [d / b for d, b in zip(per["wb-direct"], per["bare"], strict=True)]
    print(
        f"    wb-direct (local models in-process, the default) / bare litellm per round: min {min(direct):.3f} / "
        f"median {statistics.median(direct):.3f} / max {max(direct):.3f}"
    )


if __name__ == "__main__":
    main()
