"""A team on one machine: Redis for shared limits, a LiteLLM Proxy as the gateway, two analysts' stores.

Starts ``redis-server`` and, when ``.venv-proxy`` holds ``litellm[proxy]``, a LiteLLM Proxy
with the chaos server behind it standing in for the provider (else the analysts call the
chaos server directly). Then two analysts, each with their own SQLite store:

1. Ana sets the team's monthly budget; Bob sees it in his budget table.
2. Both call through the gateway (Bob holds only the proxy's key); the team's spend is what
   both stores recorded, and the proxy's reported cost sits beside the workbench's estimate.
3. Ana pulls the team's kill switch; Bob's next call is refused. Bob lifts it.

With ``--phoenix URL`` (a running Arize Phoenix, e.g. http://127.0.0.1:6006) both analysts
also stream their spans there over OTLP/HTTP.

Usage: python bench/team_demo.py [--phoenix URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from team import free_port, start_redis  # noqa: E402  (bench/team.py: a redis-server on a free port)

PROXY_KEY = "sk-team-demo-gateway-8c21"


def start_proxy(folder: Path, upstream: str) -> tuple[subprocess.Popen[bytes] | None, str | None]:
    binary = ROOT / ".venv-proxy" / "bin" / "litellm"
    if not binary.exists():
        print("(no .venv-proxy: the analysts call the provider directly; see README 'Working as a team')")
        return None, None
    config = {
        "model_list": [
            {
                "model_name": "team-gpt",
                "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": upstream, "api_key": "provider-key"},
            }
        ],
        "general_settings": {"master_key": PROXY_KEY},
    }
    (folder / "proxy.yaml").write_text(json.dumps(config))
    port = free_port()
    log = (folder / "proxy.log").open("w")
    proc = subprocess.Popen(
        [str(binary), "--config", str(folder / "proxy.yaml"), "--port", str(port), "--host", "127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(360):
        try:
            urllib.request.urlopen(f"{url}/health/liveliness", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit("the LiteLLM Proxy did not start: see " + str(folder / "proxy.log"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phoenix", help="a running Phoenix's base URL, e.g. http://127.0.0.1:6006")
    args = parser.parse_args()

    from workbench import KillSwitchActive
    from workbench.limits import ChaosServer
    from workbench.runtime import Workbench

    folder = Path(tempfile.mkdtemp(prefix="wb-team-demo-"))
    redis, redis_url = start_redis(folder)
    provider = ChaosServer(name="provider").start()
    proxy, gateway = start_proxy(folder, provider.url)
    os.environ["TEAM_GATEWAY_KEY"] = PROXY_KEY
    try:
        deployment = (
            {"model": "team-gpt", "gateway": gateway, "api_key_env": "TEAM_GATEWAY_KEY"}
            if gateway
            else {"model": "openai/gpt-4o-mini", "api_base": provider.url}
        )
        settings = {
            "team": {"redis_url": redis_url, "name": "demo"},
            "routes": {"team": {"deployments": [deployment]}},
            "prices": {"team-gpt": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}},
        }
        if args.phoenix:
            settings["otel"] = {"endpoint": args.phoenix}
        ana = Workbench.from_config(store=str(folder / "ana.db"), **settings)
        bob = Workbench.from_config(store=str(folder / "bob.db"), **settings)

        print(f"\n1. Redis at {redis_url}; gateway {gateway or '(none)'}; stores in {folder}")
        ana.budgets.set("global", 50.0, period="month")
        print("Bob's budget table, after Ana set the team's budget:")
        print(bob.budgets.df()[["scope", "period", "limit_usd", "spent_usd"]].to_string(index=False))

        print("\n2. Both analysts call through the gateway")
        for i in range(3):
            ana.ask(f"Summarise ticket {i}", model="team", user="ana", task="triage")
            bob.ask(f"Draft a reply to ticket {i}", model="team", user="bob", task="replies")
        for name, wb in (("ana", ana), ("bob", bob)):
            row = wb.store.query("SELECT COUNT(*) n, SUM(cost_usd) ours, SUM(gateway_cost_usd) proxy FROM calls")[0]
            print(f"{name}: {row['n']} calls, recorded ${row['ours']:.6f}, the proxy reported ${row['proxy'] or 0:.6f}")
        team_row = ana.budgets.df().set_index("scope").loc["global (team)"]
        print(f"the team's count: ${team_row['spent_usd']:.6f} of ${team_row['limit_usd']:.2f}")

        print("\n3. Ana pulls the team's kill switch")
        ana.kill("demo: a runaway notebook")
        time.sleep(0.06)
        try:
            bob.ask("one more", model="team", user="bob")
        except KillSwitchActive as exc:
            print("Bob:", exc)
        bob.budgets.lift()
        time.sleep(0.06)
        print("Bob lifts it:", ana.ask("back to work", model="team", user="ana").text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ana.close()
            bob.close()
        if args.phoenix:
            print(f"\nThe spans are in Phoenix: {args.phoenix} (project 'default')")
    finally:
        if proxy is not None:
            proxy.terminate()
        provider.stop()
        redis.terminate()


if __name__ == "__main__":
    main()
