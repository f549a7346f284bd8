"""Rendering a notebook value for a model, measured against pandas itself in the same run.

V1  a 1,000,000-row DataFrame (int, float, text, timestamp columns) into a 2,000-token block, by
    render_value with the cautious character count and with litellm's tokenizer (what %%llm uses),
    beside df.describe() and str(df) (pandas' own repr) on the same frame; median of rounds.
    Target: < 50 ms, and peak memory far below the frame's (no copy).

Usage: python bench/values.py [--rounds 7] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tracemalloc

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from workbench.context.values import render_value
    from workbench.serving.router import litellm_module

    litellm = litellm_module()
    rng = np.random.default_rng(0)
    n = args.rows
    df = pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": rng.random(n) * 100,
            "region": rng.choice(["north", "south", "east", "west"], n),
            "at": pd.date_range("2026-01-01", periods=n, freq="s"),
        }
    )

    def tokens(text: str) -> int:
        return litellm.token_counter(model="gpt-4o", text=text)

    runs = {
        "render_value (cautious count)": lambda: render_value(df, 2000, name="df"),
        "render_value (litellm tokenizer)": lambda: render_value(df, 2000, name="df", count=tokens),
        "df.describe()": lambda: df.describe(),
        "str(df) (pandas repr)": lambda: str(df),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():  # side by side, in turn, each round
            t = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - t) * 1000)
    for name, values in times.items():
        spread = f"(min {min(values):.1f}, max {max(values):.1f})"
        print(f"V1 {name:34} median {statistics.median(values):7.1f} ms  {spread}")
    ours = statistics.median(times["render_value (litellm tokenizer)"])
    print(f"V1 ratio render_value(tokenizer) / df.describe(): {ours / statistics.median(times['df.describe()']):.2f}")
    tracemalloc.start()
    block = render_value(df, 2000, name="df", count=tokens)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frame_mb = df.memory_usage(deep=True).sum() / 1e6
    size = f"peak traced memory {peak / 1e6:.1f} MB vs the frame's {frame_mb:.0f} MB"
    print(f"V1 block {tokens(block.text)} tokens; {size}")


if __name__ == "__main__":
    main()
