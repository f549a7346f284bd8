"""P1 per-call overhead of two source trees of workbench, side by side (for "before/after" of a change).

Each tree runs in its own long-lived worker process (a process's earlier imports change litellm's
speed, so one process per implementation), warmed with 200 calls; the driver alternates blocks of
200 `wb.ask` calls on local/echo, swapping the order each round, and prints ms/call per tree and
the median over rounds of after/before.

Usage:
    git worktree add /tmp/wb-before <commit>
    python bench/revisions.py /tmp/wb-before . [--rounds 11] [--block 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap

WORKER = textwrap.dedent(
    """
    import json, os, sys, tempfile, time
    sys.path.insert(0, sys.argv[1])
    os.environ.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_OFFLINE_MODE="true", HF_HUB_OFFLINE="1")
    import workbench
    assert workbench.__file__.startswith(sys.argv[1]), workbench.__file__
    from workbench.runtime import Workbench
    folder = tempfile.mkdtemp(prefix="wb-rev-")
    os.chdir(folder)
    wb = Workbench.from_config(store=os.path.join(folder, "b.db"))
    prompt = "How long does the overhead of one call take?"
    for _ in range(200):
        wb.ask(prompt, model="local/echo")
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        t = time.perf_counter()
        for _ in range(n):
            wb.ask(prompt, model="local/echo")
        print(json.dumps((time.perf_counter() - t) / n * 1000), flush=True)
    """
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("before", help="a source tree of workbench (a git worktree of the older commit)")
    parser.add_argument("after", help="another source tree (usually .)")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--block", type=int, default=200)
    args = parser.parse_args()
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    workers = {
        name: subprocess.Popen(
            [sys.executable, "-c", WORKER, tree], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for name, tree in trees.items()
    }
    try:
        for worker in workers.values():
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        times: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name in list(trees) if r % 2 == 0 else list(reversed(trees)):
                worker = workers[name]
                assert worker.stdin is not None and worker.stdout is not None
                worker.stdin.write(f"{args.block}\n")
                worker.stdin.flush()
                times[name].append(float(worker.stdout.readline()))
        for name, values in times.items():
            print(f"P1 {name:6} {statistics.median(values):.3f} ms/call (min {min(values):.3f}, max {max(values):.3f})")
        ratios = [a / b for a, b in zip(times["after"], times["before"], strict=True)]
        print(f"P1 after/before: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    finally:
        for worker in workers.values():
            worker.kill()


if __name__ == "__main__":
    main()
