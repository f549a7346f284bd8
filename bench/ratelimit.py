"""P3: how close to a deployment's rate limit the limiter runs, and how many errors users see.

One chaos server allows 600 rpm, enforced per second (a token bucket holding 1 s worth:
bursts of 10, then 10 a second), with 429 + Retry-After beyond that. N calls are made
by 20 threads:

- through a workbench route whose deployment declares ``rpm = 600`` (paced before sending);
- with bare ``litellm.completion(..., num_retries=R)`` on the same server, same run.

Prints, for each, the achieved rate as a fraction of the limit (calls answered / wall
time, over 600 a minute), the errors raised to the caller and the 429s the server sent.
Target for the workbench: >= 0.95 of the limit and 0 errors.

Usage: python bench/ratelimit.py [--calls 300] [--rpm 600] [--threads 20] [--retries 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


def run(label: str, call, calls: int, threads: int, server, rpm: int) -> None:
    server.stats.rate_limited = 0

    def one(i: int) -> bool:
        try:
            call(i)
            return True
        except Exception:
            return False

    time.sleep(2.0)  # let the server's bucket refill between runs
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ok = list(pool.map(one, range(calls)))
    wall = time.perf_counter() - t0
    errors = ok.count(False)
    answered = ok.count(True)
    fraction = answered / wall * 60 / rpm
    print(
        f"P3 {label:<34} {answered:>4} answered in {wall:5.1f} s: {fraction:.3f} of the limit; "
        f"errors seen by the caller: {errors}; 429s from the server: {server.stats.rate_limited}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--retries", type=int, default=3, help="num_retries for bare litellm")
    args = parser.parse_args()

    from workbench.limits import ChaosServer
    from workbench.runtime import Workbench
    from workbench.serving.router import litellm_module

    folder = tempfile.mkdtemp(prefix="wb-bench-")
    os.chdir(folder)
    wb = Workbench.from_config(store=os.path.join(folder, "b.db"))
    litellm = litellm_module()
    with ChaosServer(name="limited", rpm=args.rpm, window_s=1.0, latency_ms=20) as server:
        wb.add_route("paced", [{"name": "limited", "model": "openai/m", "api_base": server.url, "rpm": args.rpm}])
        warm = [{"role": "user", "content": "warm"}]
        litellm.completion(model="openai/m", api_base=server.url, api_key="k", messages=warm)
        print(f"P3 {args.calls} calls, {args.threads} threads, limit {args.rpm} rpm enforced per second")
        run(
            "workbench route (rpm declared)",
            lambda i: wb.ask(f"q{i}", model="paced", cache=False),
            args.calls,
            args.threads,
            server,
            args.rpm,
        )
        run(
            f"bare litellm (num_retries={args.retries})",
            lambda i: litellm.completion(
                model="openai/m",
                api_base=server.url,
                api_key="k",
                num_retries=args.retries,
                messages=[{"role": "user", "content": f"q{i}"}],
            ),
            args.calls,
            args.threads,
            server,
            args.rpm,
        )


if __name__ == "__main__":
    main()
