"""The input and output stages: block before sending, redact, flag; events recorded without the text."""

import pytest

from workbench import GuardrailViolation
from workbench.runtime import Workbench

KEY = "sk-proj-abcdefghijklmnopqrstuvwx123"


def test_a_secret_in_the_input_blocks_the_call_before_anything_is_sent(wb, chaos):
    server = chaos(name="provider")
    wb.add_route("r", [{"name": "p", "model": "openai/c", "api_base": server.url}])
    blocked = r"blocked by the secrets guardrail: found openai_key \(characters 11-46\); nothing was sent"
    with pytest.raises(GuardrailViolation, match=blocked):
        wb.ask(f"please use {KEY} to fetch the report", model="r", session="s")
    assert server.stats.requests == 0 and wb.calls.df().empty
    [event] = wb.guard.df("s").to_dict("records")
    assert (event["stage"], event["scanner"], event["action"]) == ("input", "secrets", "block")
    wb.close()
    for path in wb.store.path.parent.glob(wb.store.path.name + "*"):
        assert KEY.encode() not in path.read_bytes()


def test_redact_and_flag_policies(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "g.db"),
                               guardrails={"input": {"secrets": "redact", "pii": "redact"}})  # fmt: skip
    result = wb.ask(f"my key is {KEY}, mail me at ana@example.com", model="local/echo")
    assert result.text == "my key is [REDACTED:openai_key], mail me at [REDACTED:email]"  # echo shows what was sent
    assert KEY not in wb.calls.last()["request"]
    flagged = Workbench.from_config(store=str(tmp_path / "f.db"))
    assert flagged.ask("write to ana@example.com", model="local/echo").text == "write to ana@example.com"
    assert flagged.guard.df()[["stage", "scanner", "action"]].values.tolist() == [
        ["output", "pii", "flag"], ["input", "pii", "flag"]]


def test_secrets_in_an_answer_are_redacted_before_it_is_shown_or_stored(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "o.db"), guardrails={"input": {"secrets": "off"}})
    result = wb.ask(f"repeat {KEY}", model="local/echo")
    assert result.text == "repeat [REDACTED:openai_key]" and wb.calls.last()["text"] == result.text


def test_overlong_input_and_bad_policy(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "l.db"), guardrails={"max_input_chars": 10})
    with pytest.raises(GuardrailViolation, match="max_length guardrail: found over_10_chars"):
        wb.ask("this is more than ten characters", model="local/echo")
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"guardrails.output.secrets: Input should be 'redact', 'flag' or 'off'"):
        Workbench.from_config(store=str(tmp_path / "x.db"), guardrails={"output": {"secrets": "block"}})
