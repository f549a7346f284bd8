"""P4: what failover costs when the primary deployment refuses connections.

A route's primary is a port nobody listens on; its fallback is a chaos server with
200 ms latency. Prints the median answer time over N calls through the route divided
by the fallback's own median (called directly, same run, interleaved). Target <= 1.2.

Circuit breakers are on (the default: open after 5 failures), so after the first few
calls the dead primary is skipped without a connection attempt; `--no-breaker` shows
the cost of retrying the refusal every time.

Usage: python bench/failover.py [--calls 50] [--latency-ms 200] [--no-breaker]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--no-breaker", action="store_true")
    args = parser.parse_args()

    from workbench.limits import ChaosServer
    from workbench.runtime import Workbench

    with socket.socket() as s:  # a port that refuses connections
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    folder = tempfile.mkdtemp(prefix="wb-bench-")
    os.chdir(folder)
    failures = 10**6 if args.no_breaker else 5
    wb = Workbench.from_config(store=os.path.join(folder, "b.db"), breaker={"failures": failures, "cooldown_s": 60})
    with ChaosServer(name="fallback", latency_ms=args.latency_ms) as fallback:
        wb.add_route(
            "failover",
            [
                {"name": "primary", "model": "openai/m", "api_base": dead},
                {"name": "fallback", "model": "openai/m", "api_base": fallback.url},
            ],
        )
        wb.add_route("direct", [{"name": "fallback", "model": "openai/m", "api_base": fallback.url}])
        wb.ask("warm up", model="direct")
        times: dict[str, list[float]] = {"failover": [], "direct": []}
        for i in range(args.calls):
            for route in ("failover", "direct") if i % 2 == 0 else ("direct", "failover"):
                t0 = time.perf_counter()
                result = wb.ask(f"question {i}", model=route)
                times[route].append((time.perf_counter() - t0) * 1000)
                assert result.text.startswith("[fallback]")
    f, d = statistics.median(times["failover"]), statistics.median(times["direct"])
    first = ", ".join(f"{t:.0f}" for t in times["failover"][:6])
    print(f"P4 breaker {'off' if args.no_breaker else 'on (opens after 5 failures)'}; {args.calls} calls each")
    print(f"P4 fallback alone: median {d:.1f} ms; through the failing route: median {f:.1f} ms (first calls: {first})")
    print(f"P4 ratio = {f / d:.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
