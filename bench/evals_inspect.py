"""Evals beside Inspect AI: the same 80-sample mock task, cold (a fresh process: import + first run) and warm.

V1  Cold. Each round starts a fresh Python process per side, in alternating order: the workbench
    imports, opens a store and runs an 80-case suite on ``local/echo`` with the ``contains``
    scorer, every call recorded in SQLite; Inspect AI (``--inspect PYTHON``: a Python with
    ``inspect-ai``, in a venv of its own) imports and runs an 80-sample ``Task`` on
    ``mockllm/model`` with ``generate()`` and ``includes()``, writing its log. Wall time of each
    process, median over rounds, and the ratio workbench / Inspect (target <= 1).
V2  Warm. One long-lived process per side runs the task ``--runs`` times; samples per second of
    every run after the first, median, and the ratio workbench / Inspect (target >= 2.5).

    python3 -m venv /tmp/insp && /tmp/insp/bin/pip install inspect-ai

    Inspect's mock model counts tokens with tiktoken, which fetches its files from the internet on
    first use; offline, its process is pointed at the same files litellm bundles (TIKTOKEN_CACHE_DIR).

Usage: python bench/evals_inspect.py --inspect /tmp/insp/bin/python [--rounds 5] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = 80

WORKBENCH = """
import json, sys, time
t0 = time.perf_counter()
from workbench.runtime import Workbench
wb = Workbench.from_config("workbench.toml")
rates = []
for run in range({runs}):
    t = time.perf_counter()
    report = wb.evals.run("mock.eval.yaml", progress=False)
    rates.append({samples} / (time.perf_counter() - t))
    if run == 0:
        first = time.perf_counter() - t0
print(json.dumps({{"first": first, "rates": rates, "score": float(report.summary()["mean"].iloc[0])}}))
"""

INSPECT = """
import json, sys, time
t0 = time.perf_counter()
from inspect_ai import Task, eval
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate
samples = [Sample(input=f"Question {{i}}: say the default output", target="Default output") for i in range({samples})]
task = Task(
    dataset=samples,
    solver=generate(),
    scorer=includes(),
)
rates = []
for run in range({runs}):
    t = time.perf_counter()
    log = eval(task, model="mockllm/model", log_dir="logs", display="none")[0]
    rates.append({samples} / (time.perf_counter() - t))
    if run == 0:
        first = time.perf_counter() - t0
print(json.dumps({{"first": first, "rates": rates, "score": log.results.scores[0].metrics["accuracy"].value}}))
"""


def _folder() -> Path:
    """A fresh folder with the workbench's suite (80 cases) and config; Inspect writes its logs there too."""
    folder = Path(tempfile.mkdtemp(prefix="evals-"))
    cases = [
        {"id": f"s{i}", "input": f"Question {i}: say the default output", "expected": "default output"}
        for i in range(SAMPLES)
    ]
    (folder / "mock.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    (folder / "mock.eval.yaml").write_text(
        'name: mock\ndataset: mock.jsonl\nprompt: "{input}"\nmodel: local/echo\nscorers:\n  - contains\n'
    )
    (folder / "workbench.toml").write_text('store = "evals.db"\n')
    return folder


def _tiktoken_files() -> Path:
    """The tiktoken files litellm ships (what the workbench counts with), found without importing litellm."""
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"


def _run(python: str, script: str, runs: int) -> tuple[float, dict]:
    folder = _folder()
    code = script.format(runs=runs, samples=SAMPLES)
    t = time.perf_counter()
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(_tiktoken_files())}
    done = subprocess.run([python, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600, env=env)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inspect", required=True, help="a Python with inspect-ai installed")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("INSPECT_DISPLAY", "none")
    sides = {"workbench": (sys.executable, WORKBENCH), "inspect": (args.inspect, INSPECT)}
    cold: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        for name in sides if r % 2 == 0 else reversed(list(sides)):
            python, script = sides[name]
            wall, out = _run(python, script, 1)
            assert out["score"] == 1.0, (name, out)  # every sample scored right on both sides
            cold[name].append(wall)
    wb, ins = (statistics.median(cold[k]) for k in sides)
    print(f"V1 cold (a fresh process: import + first run of {SAMPLES} samples), median of {args.rounds} rounds")
    for name in sides:
        print(f"    {name:>9}: {statistics.median(cold[name]):.2f} s ({', '.join(f'{x:.2f}' for x in cold[name])})")
    print(f"    workbench / Inspect: {wb / ins:.2f} (target <= 1)")
    warm = {name: _run(python, script, args.runs)[1]["rates"][1:] for name, (python, script) in sides.items()}
    wbr, insr = (statistics.median(warm[k]) for k in sides)
    print(f"V2 warm ({args.runs - 1} runs after the first, one process each), samples/s median")
    for name in sides:
        print(f"    {name:>9}: {statistics.median(warm[name]):.0f} ({', '.join(f'{x:.0f}' for x in warm[name])})")
    print(f"    workbench / Inspect: {wbr / insr:.2f} (target >= 2.5)")


if __name__ == "__main__":
    main()
