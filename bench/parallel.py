"""P7: 100 parallel ``aask`` calls at 200 ms latency with a concurrency cap of 20, and budget overspend.

A chaos server answers in 200 ms; the route's deployment declares ``max_parallel = 20``.
The ideal wall time for 100 calls is 5 waves x 200 ms = 1.0 s. Prints the workbench's
wall time over the ideal, side by side (same run, alternating) with bare
``litellm.acompletion`` behind a hand-written ``asyncio.Semaphore(20)``, as the median of
several rounds. Target <= 1.3.

Then the budget check: a budget (for user:bench) that pays for about half the calls, 100 parallel
calls against it. Prints how many were answered, how many refused with BudgetExceeded,
and the overspend (spent - limit, must be 0).

Usage: python bench/parallel.py [--calls 100] [--latency-ms 200] [--parallel 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from workbench.errors import BudgetExceeded
    from workbench.limits import ChaosServer
    from workbench.runtime import Workbench
    from workbench.serving.router import litellm_module

    folder = tempfile.mkdtemp(prefix="wb-bench-")
    os.chdir(folder)
    wb = Workbench.from_config(store=os.path.join(folder, "b.db"))
    litellm = litellm_module()
    ideal = -(-args.calls // args.parallel) * args.latency_ms / 1000
    with ChaosServer(name="capped", latency_ms=args.latency_ms) as server:
        deployment = {
            "name": "capped",
            "model": "openai/m",
            "api_base": server.url,
            "max_parallel": args.parallel,
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 2e-6,
        }
        wb.add_route("capped", [deployment], cache=False)

        async def workbench_round() -> None:
            await asyncio.gather(*(wb.aask(f"q{i}", model="capped") for i in range(args.calls)))

        async def litellm_round() -> None:
            gate = asyncio.Semaphore(args.parallel)

            async def one(i: int) -> None:
                async with gate:
                    await litellm.acompletion(
                        model="openai/m",
                        api_base=server.url,
                        api_key="k",
                        messages=[{"role": "user", "content": f"q{i}"}],
                    )

            await asyncio.gather(*(one(i) for i in range(args.calls)))

        async def timed(round_) -> float:
            t0 = time.perf_counter()
            await round_()
            return time.perf_counter() - t0

        async def rounds() -> dict[str, list[float]]:
            await wb.aask("warm up", model="capped")
            walls: dict[str, list[float]] = {"workbench": [], "litellm": []}
            for r in range(args.rounds):
                order = ("workbench", "litellm") if r % 2 == 0 else ("litellm", "workbench")
                for name in order:
                    server.stats.max_in_flight = 0
                    walls[name].append(await timed(workbench_round if name == "workbench" else litellm_round))
                    assert server.stats.max_in_flight <= args.parallel, server.stats.max_in_flight
            return walls

        walls = asyncio.run(rounds())
        print(
            f"P7 {args.calls} parallel calls, {args.latency_ms:g} ms latency, {args.parallel} at a time; "
            f"ideal {ideal:.2f} s; {args.rounds} rounds"
        )
        for name, label in (("workbench", "workbench aask, max_parallel"), ("litellm", "bare litellm + Semaphore")):
            med = statistics.median(walls[name])
            print(
                f"P7 {label:<30} median wall {med:.3f} s: ratio {med / ideal:.3f} (target <= 1.3); "
                f"rounds: {', '.join(f'{w:.2f}' for w in walls[name])}"
            )

        # Budget: 100 parallel calls against a user's budget that pays for about half of them. A small
        # max_tokens keeps each call's reserved worst case close to its real cost.
        estimate, _ = wb.budgets.estimate(wb.resolve("capped")[1], _request("b0"))
        limit = estimate * args.calls / 2
        wb.budgets.set("user:bench", limit)

        async def budgeted() -> list[object]:
            calls = (wb.aask(f"b{i}", model="capped", max_tokens=4, user="bench") for i in range(args.calls))
            return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(budgeted())
        refused = sum(isinstance(r, BudgetExceeded) for r in results)
        other = [r for r in results if isinstance(r, BaseException) and not isinstance(r, BudgetExceeded)]
        spent = float(wb.budgets.df().set_index("scope").loc["user:bench", "spent_usd"])
        print(
            f"P7 budget ${limit:.6f}: {args.calls - refused - len(other)} answered, {refused} refused "
            f"(BudgetExceeded), {len(other)} other errors; spent ${spent:.6f}; "
            f"overspend ${max(0.0, spent - limit):.6f} (must be 0)"
        )


def _request(prompt: str):
    from workbench.serving.types import Request

    return Request("capped", [{"role": "user", "content": prompt}], {"max_tokens": 4})


if __name__ == "__main__":
    main()
