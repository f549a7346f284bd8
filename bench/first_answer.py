"""A fresh kernel's first answer: ``%load_ext workbench``, a pause for typing, then the first ``%%llm`` cell.

F1  Each round starts a new IPython kernel (jupyter_client), runs ``%load_ext workbench``, waits
    ``--pause`` seconds (someone typing the first prompt), then times the first ``%%llm -m local/echo``
    cell to its answer. Rounds alternate the default (``%load_ext`` warms litellm, the local models and
    the tokenizer on a background thread) with ``WORKBENCH_NO_WARMUP=1`` (everything on the first call),
    each in a kernel of its own, in a fresh folder and store; medians of the rounds.

Usage: python bench/first_answer.py [--rounds 5] [--pause 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


def _run(kernel: object, code: str) -> float:
    client = kernel.client()  # type: ignore[attr-defined]
    client.start_channels()
    client.wait_for_ready(timeout=60)
    t = time.perf_counter()
    reply = client.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
    elapsed = time.perf_counter() - t
    client.stop_channels()
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{code!r} failed: {reply['content']}")
    return elapsed


def round_(warm: bool, pause: float) -> tuple[float, float]:
    from jupyter_client.manager import KernelManager

    folder = tempfile.mkdtemp(prefix="wb-first-")
    env = {**os.environ, "WORKBENCH_STORE": os.path.join(folder, "first.db")}
    if not warm:
        env["WORKBENCH_NO_WARMUP"] = "1"
    else:
        env.pop("WORKBENCH_NO_WARMUP", None)
    kernel = KernelManager()
    kernel.start_kernel(env=env, cwd=folder)
    try:
        load = _run(kernel, "%load_ext workbench")
        time.sleep(pause)
        first = _run(kernel, "%%llm -m local/echo --no-stream\nWhen does the office open?")
    finally:
        kernel.shutdown_kernel(now=True)
    return load, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0)
    args = parser.parse_args()
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for r in range(args.rounds):
        for warm in (True, False) if r % 2 == 0 else (False, True):
            times[warm].append(round_(warm, args.pause))
    print(f"F1 a fresh kernel's first answer ({args.rounds} rounds, {args.pause:g} s pause after %load_ext; medians)")
    for warm, label in ((False, "WORKBENCH_NO_WARMUP=1"), (True, "default (warm-up thread)")):
        load = statistics.median(t[0] for t in times[warm])
        first = statistics.median(t[1] for t in times[warm])
        print(f"   {label:>25}: %load_ext {load * 1000:6.0f} ms, first %%llm cell {first * 1000:6.0f} ms")
    cold = statistics.median(t[1] for t in times[False])
    warm_ = statistics.median(t[1] for t in times[True])
    print(f"   first cell, warm / cold: {warm_ / cold:.2f}")


if __name__ == "__main__":
    main()
