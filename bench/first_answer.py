"""A fresh kernel's first answer: ``%load_ext workbench``, a pause for typing, then the first ``%%llm`` cell.

F1  Each round starts a new IPython kernel (jupyter_client), runs ``%load_ext workbench``, waits
    ``--pause`` seconds (someone typing the first prompt), then times the first ``%%llm -m local/echo``
    cell to its answer. Rounds alternate the default (``%load_ext`` warms litellm, the local models and
    the tokenizer on a background thread) with ``WORKBENCH_NO_WARMUP=1`` (everything on the first call),
    each in a kernel of its own, in a fresh folder and store; medians of the rounds.

F2  Side by side with jupyter-ai (``--jupyter-ai PYTHON``: a Python with ``jupyter-ai-magics`` and
    ``langchain-openai``, in a venv of its own), both answering from the same chaos server (an
    OpenAI-compatible server on 127.0.0.1) so both go over HTTP: a fresh kernel, ``%load_ext``, the
    pause, then the first cell — ``%%llm -m chaos`` (a route to the server in the kernel's
    workbench.toml; litellm's map has no price for its model, which is known without importing
    litellm) against ``%%ai openai-chat-custom:c`` with ``openai_api_base`` set to it; the
    workbench's ``%%llm -m priced`` (the same server with its price configured: an OpenAI-compatible
    server is called over HTTP directly, so neither call needs litellm) and ``%%llm -m local/echo``.
    Rounds alternate the sides; medians, and the ratio of the workbench's load + first cell to
    jupyter-ai's (target < 1).

        python3 -m venv /tmp/jai && /tmp/jai/bin/pip install jupyter-ai-magics "langchain-openai<0.4" ipykernel

Usage: python bench/first_answer.py [--rounds 5] [--pause 2] [--jupyter-ai /tmp/jai/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

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


WORKBENCH_TOML = """
[routes.chaos]
deployments = [{{ model = "openai/c", api_base = "{url}", api_key_env = "CHAOS_KEY" }}]

[routes.priced]  # the same server with its price configured (a self-hosted one's is often 0): litellm's map unused
deployments = [{{ model = "openai/p", api_base = "{url}", api_key_env = "CHAOS_KEY" }}]

[prices."openai/p"]
input_cost_per_token = 0.0
output_cost_per_token = 0.0
"""
F2_SIDES = {
    "workbench, chaos server": ("%load_ext workbench", "%%llm -m chaos --no-stream\nWhen does the office open?"),
    "workbench, chaos, priced": ("%load_ext workbench", "%%llm -m priced --no-stream\nWhen does the office open?"),
    "workbench, local/echo": ("%load_ext workbench", "%%llm -m local/echo --no-stream\nWhen does the office open?"),
    "jupyter-ai, chaos server": (
        "%load_ext jupyter_ai_magics",
        '%%ai openai-chat-custom:c --model-parameters {{"openai_api_base":"{url}"}}\nWhen does the office open?',
    ),
}


def round_f2(side: str, pause: float, url: str, jai_python: str) -> tuple[float, float]:
    from jupyter_client.manager import KernelManager

    folder = tempfile.mkdtemp(prefix="wb-first-")
    with open(os.path.join(folder, "workbench.toml"), "w") as f:
        f.write(WORKBENCH_TOML.format(url=url))
    env = {**os.environ, "CHAOS_KEY": "sk-local", "OPENAI_API_KEY": "sk-local"}
    env.pop("WORKBENCH_STORE", None)
    env.pop("WORKBENCH_NO_WARMUP", None)
    kernel = KernelManager(kernel_name="jupyter-ai-bench" if side.startswith("jupyter-ai") else "python3")
    kernel.start_kernel(env=env, cwd=folder)
    load_code, cell = F2_SIDES[side]
    try:
        load = _run(kernel, load_code)
        time.sleep(pause)
        first = _run(kernel, cell.format(url=url))
    finally:
        kernel.shutdown_kernel(now=True)
    return load, first


def f2(rounds: int, pause: float, jai_python: str) -> None:
    from workbench.limits.chaos import ChaosServer

    spec = Path(tempfile.mkdtemp(prefix="wb-jai-")) / "kernels" / "jupyter-ai-bench"  # a kernel in the other venv
    spec.mkdir(parents=True)
    argv = [jai_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "jupyter-ai", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(spec.parents[1]), os.environ.get("JUPYTER_PATH", "")])
    server = ChaosServer(name="chaos")
    server.start()
    times: dict[str, list[tuple[float, float]]] = {side: [] for side in F2_SIDES}
    try:
        for r in range(rounds):
            sides = list(F2_SIDES) if r % 2 == 0 else list(reversed(F2_SIDES))
            for side in sides:
                times[side].append(round_f2(side, pause, server.url, jai_python))
        answered = server.stats.requests
    finally:
        server.stop()
    print(f"F2 first answer beside jupyter-ai ({rounds} rounds, {pause:g} s pause after %load_ext; medians)")
    total = {}
    for side, values in times.items():
        load = statistics.median(t[0] for t in values)
        first = statistics.median(t[1] for t in values)
        total[side] = statistics.median(t[0] + t[1] for t in values)
        spread = ", ".join(f"{t[0] + t[1]:.2f}" for t in values)
        print(f"   {side:>25}: %load_ext {load * 1000:6.0f} ms, first cell {first * 1000:6.0f} ms ({spread} s in all)")
    theirs = total["jupyter-ai, chaos server"]
    for side in ("workbench, chaos server", "workbench, chaos, priced", "workbench, local/echo"):
        print(f"   {side} / jupyter-ai (load + first cell): {total[side] / theirs:.2f}")
    print(f"   requests the chaos server answered: {answered} (one per round of each HTTP side)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--jupyter-ai", help="a Python with jupyter-ai-magics and langchain-openai: run F2 only")
    args = parser.parse_args()
    if args.jupyter_ai:
        f2(args.rounds, args.pause, args.jupyter_ai)
        return
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
