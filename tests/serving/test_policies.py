"""Routing policies choose the order of a route's deployments; the decision is recorded on the call."""

from types import SimpleNamespace

from workbench.config import Deployment, Route, Settings
from workbench.serving.policies import LatencyTracker, complexity, order
from workbench.serving.types import Request


def test_cheapest_first_by_this_requests_price(wb, chaos):
    dear, cheap = chaos(name="dear"), chaos(name="cheap")
    wb.add_route(
        "r",
        [
            {
                "name": "dear",
                "model": "openai/c",
                "api_base": dear.url,
                "input_cost_per_token": 0.01,
                "output_cost_per_token": 0.03,
            },
            {
                "name": "cheap",
                "model": "openai/c",
                "api_base": cheap.url,
                "input_cost_per_token": 0.001,
                "output_cost_per_token": 0.002,
            },
        ],
        policy="cheapest",
    )
    result = wb.ask("which one?", model="r", max_tokens=10)
    assert result.text == "[cheap] which one?"
    routing = wb.calls.last()["routing"]
    assert routing.startswith("cheapest: cheap $")
    assert routing.index("cheap $") < routing.index("dear $")


def test_cheapest_puts_a_deployment_whose_window_is_too_small_last():
    info = {
        "small/m": {"max_input_tokens": 5, "input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
        "large/m": {"max_input_tokens": 10_000, "input_cost_per_token": 1.0, "output_cost_per_token": 1.0},
    }
    litellm = SimpleNamespace(token_counter=lambda **kw: 50, get_model_info=lambda m: info[m])
    route = Route(deployments=[Deployment(model="small/m"), Deployment(model="large/m")], policy="cheapest")
    ranked, reason = order(
        route, Request("r", [{"role": "user", "content": "x"}]), Settings(), LatencyTracker(), litellm
    )
    assert [d.model for d in ranked] == ["large/m", "small/m"]
    assert "small/m $0.000000 (too long)" in reason


def test_fastest_learns_latency_and_prefers_the_faster_deployment(wb, chaos):
    slow, fast = chaos(name="slow", latency_ms=150), chaos(name="fast", latency_ms=5)
    wb.add_route(
        "r",
        [
            {"name": "slow", "model": "openai/c", "api_base": slow.url},
            {"name": "fast", "model": "openai/c", "api_base": fast.url},
        ],
        policy="fastest",
    )
    answers = [wb.ask(f"q{i}", model="r").text for i in range(4)]
    assert answers[0].startswith("[slow]")
    assert answers[1].startswith("[fast]")  # each measured once
    assert all(a.startswith("[fast]") for a in answers[2:])
    assert wb.calls.last()["routing"].startswith("fastest: fast ")


def test_complexity_sends_hard_prompts_to_the_strong_model_and_says_why(wb):
    wb.add_route("r", ["local/echo", "local/extractive"], policy="complexity")
    assert wb.ask("hi there", model="r").model == "local/echo"
    assert wb.calls.last()["routing"] == "complexity 0 (no signals): simple, cheapest first"
    hard = wb.ask("Explain step by step and debug this:\n```\ndef f(): return 1/0\n```\nWhy? How?", model="r")
    assert hard.model == "local/extractive"
    expected = "complexity 5 (code; cues: step by step, debug; 2 questions): hard, strongest first"
    assert wb.calls.last()["routing"] == expected


def test_complexity_score_is_transparent():
    def count(text):
        return len(text.split())

    def score(text):
        return complexity(Request("r", [{"role": "user", "content": text}]), count)

    assert score("What time is it?") == (0, [])
    assert score("word " * 150)[0] == 1
    assert score("word " * 500)[0] == 2
    assert score("SELECT * FROM t")[0] == 2
