"""Local models answered in-process (no litellm) record exactly what they record through litellm's custom
provider, and a process that only uses local models never imports litellm (seconds on a small machine)."""

import json
import subprocess
import sys
import textwrap

import pytest

from workbench import ProviderError, pipeline
from workbench.plugins import REGISTRY
from workbench.runtime import Workbench
from workbench.serving import router

RULES = [
    {
        "pattern": "(?i)revenue of (?P<r>\\w+) and (?P<s>\\w+)",
        "calls": [
            {"tool": "sales__revenue", "arguments": {"region": "\\g<r>"}},
            {"tool": "sales__revenue", "arguments": {"region": "\\g<s>"}},
        ],
    },
    {"role": "tool", "pattern": '"total": (?P<n>\\d+)', "reply": "The last region made \\g<n>."},
]
ASKS = [
    {"prompt": "hello there"},
    {"prompt": "hello there, word by word", "stream": True},
    {"prompt": "one two three four five six seven", "max_tokens": 3},
    {"prompt": "one two three four five six seven", "max_tokens": 3, "stream": True},
    {"prompt": "When does the shop open?", "model": "local/extractive", "context": ["The shop opens at 9am."]},
    {"prompt": "revenue of north and south", "model": "local/scripted", "system": "You are terse."},
    {"prompt": "Shout this", "model": "local/shout", "temperature": 0.3},
    {"prompt": "Say nothing", "model": "local/shout", "stream": True},  # an empty stream: a failed attempt
]
VOLATILE = {"id", "call_id", "trace_id", "started_at", "latency_ms", "ttft_ms", "request_id"}


def _workload(wb: Workbench) -> list[str]:
    @wb.tool(name="sales.revenue")
    def revenue(region: str) -> dict:
        """Revenue of a region."""
        return {"region": region, "total": 1000 + len(region)}

    answers = []
    for ask in ASKS:
        try:
            answers.append(wb.ask(session="s", **ask).text)
        except Exception as exc:  # noqa: BLE001 - the error is part of what must match
            answers.append(f"{type(exc).__name__}: {exc}")
    run = wb.agent("analyst", tools=["sales.*"], model="local/scripted").run("What is the revenue of north and south?")
    return [*answers, run.answer]


def _rows(wb: Workbench, table: str) -> list[dict]:
    rows = wb.store.db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()  # noqa: S608 - a fixed name
    names = [d[0] for d in wb.store.db.execute(f"SELECT * FROM {table} LIMIT 0").description]  # noqa: S608
    return [{k: v for k, v in zip(names, row, strict=True) if k not in VOLATILE} for row in rows]


@pytest.fixture
def shout():
    REGISTRY.add(
        "model",
        "local/shout",
        lambda messages, params: (
            "" if "nothing" in messages[-1]["content"] else f"{messages[-1]['content'].upper()} {params}"
        ),
    )
    yield
    REGISTRY._tables["model"].pop("local/shout", None)


def test_in_process_and_through_litellm_record_the_same_calls(tmp_path, monkeypatch, shout):
    def no_litellm():
        raise AssertionError("a local model's call reached litellm")

    with monkeypatch.context() as m:  # the in-process path may not touch litellm at all
        m.setattr(router, "litellm_module", no_litellm)
        m.setattr(pipeline, "litellm_module", no_litellm)
        direct = Workbench.from_config(store=str(tmp_path / "direct.db"), scripted={"rules": RULES})
        direct_answers = _workload(direct)
    monkeypatch.setenv(router.VIA_LITELLM, "1")
    via = Workbench.from_config(store=str(tmp_path / "via.db"), scripted={"rules": RULES})
    via_answers = _workload(via)

    assert direct_answers == via_answers
    assert direct_answers[1] == "hello there, word by word"
    assert direct_answers[-1] == "The last region made 1005."
    for table in ("calls", "attempts"):
        assert _rows(direct, table) == _rows(via, table), table
    assert direct_answers[2] == direct_answers[3] == "one two three"  # cut at max_tokens=3, streamed or not
    calls = _rows(direct, "calls")
    assert [(c["finish_reason"], c["completion_tokens"]) for c in calls[2:4]] == [("length", 3)] * 2
    assert direct_answers[6] == "SHOUT THIS {'temperature': 0.3, 'max_retries': 0}"  # litellm's optional_params
    assert direct_answers[7].startswith("ProviderError")
    assert [(a["status"], a["error_class"]) for a in _rows(direct, "attempts")][7] == ("error", "EmptyStream")
    assert json.loads(_rows(direct, "calls")[-2]["tool_calls"])[1]["function"]["arguments"] == '{"region": "south"}'


def test_a_process_using_only_local_models_never_imports_litellm(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from workbench.runtime import Workbench
        price = {{"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
        wb = Workbench.from_config(store={str(tmp_path / "w.db")!r}, scripted={{"rules": {RULES!r}}},
                                   prices={{"local/echo": price}})
        wb.budgets.set("global", 1.0)

        @wb.tool(name="sales.revenue")
        def revenue(region: str) -> dict:
            '''Revenue of a region.'''
            return {{"region": region, "total": 1000 + len(region)}}

        assert wb.ask("hello", max_tokens=5).cost_usd > 0
        assert wb.ask("hello", stream=True).text == "hello"
        assert wb.agent("a", tools=["sales.*"], model="local/scripted").run("revenue of n and s").answer
        assert wb.count_tokens("some text") == 2
        print("litellm imported:", "litellm" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "litellm imported: False"


def test_a_local_model_that_raises_is_a_failed_attempt_either_way(tmp_path, monkeypatch):
    def exploding(messages, params):
        raise ValueError("model exploded")

    REGISTRY.add("model", "local/exploding", exploding)
    try:
        seen = []
        for via in ("", "1"):
            monkeypatch.setenv(router.VIA_LITELLM, via)
            wb = Workbench.from_config(store=str(tmp_path / f"w{via}.db"))
            with pytest.raises(ProviderError, match="model exploded"):
                wb.ask("hi", model="local/exploding")
            calls, attempts = _rows(wb, "calls"), _rows(wb, "attempts")
            assert [c["status"] for c in calls] == ["error"]
            seen.append([(a["status"], a["error_class"]) for a in attempts])
        assert seen[0] == seen[1] == [("error", "APIConnectionError")] * 2  # retried once, as litellm does
    finally:
        REGISTRY._tables["model"].pop("local/exploding", None)
