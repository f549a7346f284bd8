"""A LiteLLM Proxy as the team's gateway, tested against a real proxy (``litellm[proxy]``, in its own venv) with
the chaos server behind it as the provider: the analyst holds only the proxy's key.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import free_port, venv_tool, wait_until_up
from workbench import BudgetExceeded, ProviderError
from workbench.limits import ChaosServer
from workbench.runtime import Workbench

KEY = "sk-wb-gateway-test-5d1c8e"  # the proxy's master key: the only key the analyst's side holds


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    binary = venv_tool(
        ".venv-proxy",
        "litellm",
        "WORKBENCH_LITELLM_PROXY",
        "python3 -m venv .venv-proxy && .venv-proxy/bin/pip install 'litellm[proxy]'",
    )
    folder = tmp_path_factory.mktemp("proxy")
    upstream = ChaosServer(name="upstream").start()
    shutil.copy(Path(__file__).with_name("gateway_hooks.py"), folder / "gateway_hooks.py")
    config = {
        "model_list": [
            {
                "model_name": "team-gpt",
                "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": upstream.url, "api_key": "upstream-key"},
            }
        ],
        "general_settings": {"master_key": KEY},
        "litellm_settings": {"callbacks": ["gateway_hooks.seen", "gateway_hooks.policy"]},
    }
    (folder / "config.yaml").write_text(json.dumps(config))  # YAML is a superset of JSON
    port, seen = free_port(), folder / "seen.jsonl"
    env = {**os.environ, "WB_SEEN": str(seen), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(folder)}
    log = (folder / "proxy.log").open("w")
    proc = subprocess.Popen(
        [binary, "--config", str(folder / "config.yaml"), "--port", str(port), "--host", "127.0.0.1"],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/health/liveliness", proc, folder / "proxy.log", "the LiteLLM Proxy", 90)
    yield {"url": url, "seen": seen, "upstream": upstream}
    proc.terminate()
    proc.wait(15)
    upstream.stop()


@pytest.fixture
def analyst(tmp_path, gateway, monkeypatch):
    monkeypatch.setenv("TEAM_GATEWAY_KEY", KEY)

    def make(**settings) -> Workbench:
        wb = Workbench.from_config(store=str(tmp_path / "w.db"), **settings)
        wb.add_route(
            "team",
            [
                {"model": "team-gpt", "gateway": gateway["url"], "api_key_env": "TEAM_GATEWAY_KEY"},
                {"model": "local/echo"},  # a fallback the gateway's budget refusal must not go around
            ],
            retries=0,
        )
        return wb

    return make


def seen(gateway, user: str) -> list[dict]:
    """What the proxy logged for ``user``'s calls, once it has logged one (it logs after it answers, so the file
    may exist, holding earlier calls, before this one's line is in it).
    """
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if gateway["seen"].exists():
            lines = [json.loads(line) for line in gateway["seen"].read_text().splitlines()]
            if mine := [s for s in lines if s["user"] == user]:
                return mine
        time.sleep(0.05)
    return []


def test_a_call_goes_through_the_gateway_with_who_and_the_reported_cost(analyst, gateway):
    wb = analyst()
    result = wb.ask("hello through the gateway", model="team", user="ana", session="s1", task="triage")
    assert result.text == "[upstream] hello through the gateway"
    row = wb.store.query("SELECT deployment, cost_usd, gateway_cost_usd FROM calls")[0]
    assert row["deployment"] == "team-gpt"
    assert row["gateway_cost_usd"] > 0  # what the proxy billed (x-litellm-response-cost)
    assert row["cost_usd"] == pytest.approx(row["gateway_cost_usd"])  # no price of our own for its alias
    logged = seen(gateway, "ana")
    assert logged and logged[-1]["tags"] == ["session:s1", "task:triage"]  # the proxy logged who asked
    assert wb.audit.verify().ok


def test_our_estimate_is_kept_beside_the_gateways_and_the_larger_counts(analyst):
    prices = {"team-gpt": {"input_cost_per_token": 0.01, "output_cost_per_token": 0.01}}
    wb = analyst(prices=prices)
    wb.ask("priced both ways", model="team")
    row = wb.store.query("SELECT cost_usd, gateway_cost_usd, prompt_tokens, completion_tokens FROM calls")[0]
    own = (row["prompt_tokens"] + row["completion_tokens"]) * 0.01
    assert row["cost_usd"] == pytest.approx(own) and row["gateway_cost_usd"] < own


def test_a_stream_through_the_gateway(analyst):
    wb = analyst()
    pieces: list[str] = []
    result = wb.ask("streamed through the gateway", model="team", stream=True, on_token=pieces.append)
    assert result.text == "[upstream] streamed through the gateway"
    assert len(pieces) > 1 and "".join(p for p in pieces if p) == result.text


def test_the_gateways_rate_limit_is_our_error_with_its_reason(analyst):
    wb = analyst()
    wb.add_route("gateway-only", [wb.routes["team"].deployments[0]], retries=0)
    with pytest.raises(ProviderError, match="RateLimitError: rpm limit reached for end user over-rpm"):
        wb.ask("too fast", model="gateway-only", user="over-rpm")
    attempt = wb.calls.attempts().iloc[0]
    assert (attempt["error_class"], attempt["status_code"]) == ("RateLimitError", 429)


def test_the_gateways_budget_refusal_is_budget_exceeded_and_not_gone_around(analyst):
    wb = analyst()
    with pytest.raises(BudgetExceeded, match=r"the gateway at 127\.0\.0\.1:\d+ refused the call: Budget has been"):
        wb.ask("over the team's budget", model="team", user="over-budget")
    call = wb.calls.df().iloc[0]
    assert call["status"] == "refused"
    assert list(wb.calls.attempts(call["call_id"])["deployment"]) == ["team-gpt"]  # local/echo was not tried


def test_the_gateway_key_is_never_stored(analyst, tmp_path):
    wb = analyst()
    wb.ask("a call", model="team", user="ana")
    wb.close()
    for path in tmp_path.glob("w.db*"):
        assert KEY.encode() not in path.read_bytes()
