"""Structured output: JSON matching a schema, one automatic re-ask, a clear error after that."""

import json

import pytest
from pydantic import BaseModel

from workbench.guardrails import SchemaViolation
from workbench.guardrails.schema import conform, extract_json
from workbench.runtime import Workbench

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
    "required": ["city", "temp_c"],
    "additionalProperties": False,
}


class Weather(BaseModel):
    city: str
    temp_c: float


def test_json_is_found_in_fences_and_prose():
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('Here you go: {"a": [1, 2]} hope it helps') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="no JSON value"):
        extract_json("no json here")
    assert conform('{"city": "Oslo"}', SCHEMA) == (None, "the value: 'temp_c' is a required property")
    value, error = conform('{"city": "Oslo", "temp_c": "cold"}', Weather)
    assert value is None
    assert error.startswith("temp_c: Input should be a valid number")


def test_a_wrong_answer_is_asked_again_once_and_the_value_parsed(tmp_path):
    rules = [
        {"pattern": "did not match", "reply": '{"city": "Oslo", "temp_c": -3.5}'},
        {"pattern": "weather", "reply": "It is cold in Oslo, about -3.5 degrees."},
    ]
    wb = Workbench.from_config(store=str(tmp_path / "s.db"), scripted={"rules": rules})
    result = wb.ask("What's the weather in Oslo?", model="local/scripted", schema=Weather)
    assert result.data == Weather(city="Oslo", temp_c=-3.5)
    requests = [json.loads(r["request"]) for r in wb.store.query("SELECT request FROM calls ORDER BY started_at")]
    assert len(requests) == 2
    assert (
        "did not match the required JSON schema (the answer holds no JSON value)"
        in requests[-1]["messages"][-1]["content"]
    )
    system = requests[0]["messages"][0]["content"]
    assert system.startswith("Answer with only a JSON value (no prose) that matches this JSON schema:")
    [event] = wb.guard.df().to_dict("records")
    assert (event["scanner"], event["action"]) == ("schema", "reask")
    first_time = wb.ask("the weather please, did not match", model="local/scripted", schema=SCHEMA)
    assert first_time.data == {"city": "Oslo", "temp_c": -3.5}
    assert len(wb.calls.df()) == 3  # valid: no re-ask


def test_two_wrong_answers_raise_and_both_calls_are_recorded(tmp_path):
    wb = Workbench.from_config(
        store=str(tmp_path / "f.db"), scripted={"rules": [{"pattern": ".", "reply": '{"city": "Oslo"}'}]}
    )
    with pytest.raises(SchemaViolation, match=r"after one re-ask \(the value: 'temp_c' is a required property\)"):
        wb.ask("weather?", model="local/scripted", schema=SCHEMA)
    assert len(wb.calls.df()) == 2
    assert wb.guard.df()["action"].tolist() == ["block", "reask"]


async def _aask(wb):
    return await wb.aask("weather?", model="local/scripted", schema=Weather)


def test_aask_conforms_too(tmp_path):
    import asyncio

    wb = Workbench.from_config(
        store=str(tmp_path / "a.db"),
        scripted={
            "rules": [
                {"pattern": "did not match", "reply": '{"city": "Rome", "temp_c": 21}'},
                {"pattern": ".", "reply": "warm"},
            ]
        },
    )
    assert asyncio.run(_aask(wb)).data == Weather(city="Rome", temp_c=21)
