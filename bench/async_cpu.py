"""P7 side by side, one worker process per implementation: wall time and CPU per call of parallel async calls.

A chaos server (its own process) answers every call in ``--latency-ms`` (200). Three long-lived workers
each make ``--calls`` (100) calls at once, ``--parallel`` (20) at a time, per block:

- ``workbench``: ``wb.aask`` down a route whose deployment is ``openai/m`` at the server with
  ``max_parallel = 20`` (recorded durably, default guards, traced, priced, rate-limited);
- ``litellm``: bare ``litellm.acompletion`` behind an ``asyncio.Semaphore(20)``;
- ``openai``: the ``openai`` SDK's ``AsyncOpenAI`` behind the same semaphore;
- with ``--kinds``, also ``httpx`` (a bare ``httpx.AsyncClient``) and ``aiohttp`` (a bare ``ClientSession``):
  the transports' own floors.

The driver runs one block per worker in turn (alternating order each round, so none competes with
another), and prints each one's median wall time over the ideal (5 waves x 200 ms = 1.0 s; target
<= 1.3) and its CPU per call (the worker's user + system time for the block / calls; target for
the workbench <= 1.2x the ``openai`` SDK's).

Usage: python bench/async_cpu.py [--rounds 5] [--calls 100] [--parallel 20] [--latency-ms 200]
       [--kinds workbench,litellm,openai,httpx,aiohttp]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WORKER = r"""
import asyncio, json, os, sys, time
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
kind, url, calls, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def messages(i):
    return [{"role": "user", "content": f"question {i} about the quarterly numbers"}]

if kind == "workbench":
    from workbench.runtime import Workbench
    folder = sys.argv[5]
    wb = Workbench.from_config(store=os.path.join(folder, "bench.db"))
    wb.add_route("capped", [{"model": "openai/m", "api_base": url, "max_parallel": parallel,
                             "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}], cache=False)

    async def one(i, gate):
        await wb.aask(f"question {i} about the quarterly numbers", model="capped")
else:
    if kind == "litellm":
        import litellm

        async def send(i):
            await litellm.acompletion(model="openai/m", api_base=url, api_key="k", messages=messages(i))
    elif kind == "httpx":
        import httpx
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=100))

        async def send(i):
            r = await client.post(url + "/chat/completions", json={"model": "m", "messages": messages(i)},
                                  headers={"Authorization": "Bearer k"})
            r.json()
    elif kind == "aiohttp":
        import aiohttp
        session = None

        async def send(i):
            global session
            if session is None:
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            async with session.post(url + "/chat/completions", json={"model": "m", "messages": messages(i)},
                                    headers={"Authorization": "Bearer k"}) as r:
                await r.json()
    else:
        from openai import AsyncOpenAI
        client = AsyncOpenAI(base_url=url, api_key="k", max_retries=0)

        async def send(i):
            await client.chat.completions.create(model="m", messages=messages(i))

    async def one(i, gate):
        async with gate:
            await send(i)

async def block():
    gate = asyncio.Semaphore(parallel)
    await asyncio.gather(*(one(i, gate) for i in range(calls)))

async def main():
    await block()  # warm-up: imports, connections, first-call set-up
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        cpu, wall = time.process_time(), time.perf_counter()
        await block()
        print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}), flush=True)

asyncio.run(main())
"""

KINDS = ("workbench", "litellm", "openai", "httpx", "aiohttp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--kinds", default="workbench,litellm,openai", help=f"any of {','.join(KINDS)}")
    args = parser.parse_args()
    kinds = tuple(k for k in KINDS if k in args.kinds.split(","))
    assert "workbench" in kinds and "openai" in kinds, "the ratio needs workbench and openai"

    port = _free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}
    server = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "chaos-server", "--port", str(port)]
        + ["--latency-ms", str(args.latency_ms)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    folder = tempfile.mkdtemp(prefix="wb-bench-")
    workers = {}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        for kind in kinds:
            workers[kind] = subprocess.Popen(
                [sys.executable, "-c", WORKER, kind, url, str(args.calls), str(args.parallel), folder],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=folder,
            )
        for kind, worker in workers.items():
            assert worker.stdout.readline().strip() == "ready", f"{kind} worker did not start"
        results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
        for r in range(args.rounds):
            order = kinds if r % 2 == 0 else tuple(reversed(kinds))
            for kind in order:
                workers[kind].stdin.write("go\n")
                workers[kind].stdin.flush()
                results[kind].append(json.loads(workers[kind].stdout.readline()))
    finally:
        for worker in workers.values():
            worker.kill()
        server.kill()

    ideal = -(-args.calls // args.parallel) * args.latency_ms / 1000
    print(
        f"P7 {args.calls} parallel calls, {args.latency_ms:g} ms latency, {args.parallel} at a time; ideal "
        f"{ideal:.2f} s; {args.rounds} rounds, one worker process each, the server in its own"
    )
    cpu = {k: statistics.median(r["cpu"] for r in results[k]) / args.calls * 1000 for k in kinds}
    for kind in kinds:
        walls = [r["wall"] for r in results[kind]]
        print(
            f"P7 {kind:<9} wall {statistics.median(walls):.3f} s = {statistics.median(walls) / ideal:.3f}x ideal "
            f"(rounds {', '.join(f'{w:.2f}' for w in walls)}); CPU {cpu[kind]:.2f} ms/call "
            f"= {cpu[kind] / cpu['openai']:.2f}x the openai SDK's"
        )
    print(
        f"P7 ratio wall {statistics.median(r['wall'] for r in results['workbench']) / ideal:.3f} (target <= 1.3), "
        f"CPU {cpu['workbench'] / cpu['openai']:.2f}x openai SDK (target <= 1.2)"
    )


if __name__ == "__main__":
    main()
