"""One AskOptions object flows from wb.ask / the magic / the agent loop through the pipeline."""

import re
from typing import get_args

import pytest

from workbench.errors import WorkbenchError
from workbench.options import FORMATS, AskKwargs, AskOptions


def test_the_keyword_surface_is_exactly_the_options_fields():
    fields = AskOptions.__dataclass_fields__
    assert set(AskKwargs.__annotations__) == set(fields)
    for name, field in fields.items():  # the same types, so a type checker sees what the pipeline gets
        assert str(AskKwargs.__annotations__[name]).removeprefix("ForwardRef('").split("'")[0] == field.type, name


def test_a_misspelled_option_is_a_type_error_with_a_hint(wb):
    with pytest.raises(TypeError, match="unexpected keyword argument 'temprature'; did you mean 'temperature'"):
        wb.ask("hi", model="local/echo", temprature=0)
    with pytest.raises(TypeError, match="must be an AskOptions"):
        wb.ask("hi", {"model": "local/echo"})


def test_an_options_object_is_reused_and_keywords_override_it(wb):
    opts = AskOptions(model="local/echo", user="ana", task="triage", session="o")
    first = wb.ask("one", opts)
    second = wb.ask("two", opts, user="bob")
    rows = wb.calls.df(session="o").set_index("call_id")
    assert rows.loc[first.call_id, "user"] == "ana"
    assert rows.loc[second.call_id, "user"] == "bob"
    assert (rows["task"] == "triage").all()
    assert opts.user == "ana"  # frozen: the override made a new object
    with pytest.raises(AttributeError):
        opts.user = "eve"  # type: ignore[misc]


def test_the_reask_keeps_attribution_and_drops_the_conversation():
    opts = AskOptions(model="m", session="s", spec="faq", memory="user:a", remember=True, user="u", budget=0.1)
    again = opts.for_reask()
    assert (again.model, again.user, again.budget) == ("m", "u", 0.1)
    assert (again.session, again.spec, again.memory, again.remember, again.schema) == (None, None, None, False, None)


def test_a_step_refuses_options_it_cannot_honour(wb):
    with pytest.raises(WorkbenchError, match="a step sends its messages as given, so spec, memory cannot apply"):
        wb.step([{"role": "user", "content": "hi"}], model="local/echo", spec="faq", memory="user:a")
    result = wb.step([{"role": "user", "content": "hi"}], AskOptions(model="local/echo", user="ana"))
    assert wb.calls.df().set_index("call_id").loc[result.call_id, "user"] == "ana"


BAD = {
    "max_tokens": ([-5, 0, "10", True, 2.5], "max_tokens must be a whole number of tokens above 0"),
    "temperature": ([float("nan"), float("inf"), -1.0, "hot"], "temperature must be a number from 0"),
    "budget": ([float("nan"), -0.01, "1"], r"budget must be dollars \(0 or more\)"),
    "format": (["yaml", None], "format must be one of markdown, text, json, code"),
    "cache": (["yes", 1], "cache must be True, False or None"),
    "stream": (["no"], "stream is True or False"),
    "remember": ([1], "remember is True or False"),
    "priority": ([1.5, "high"], "priority must be a whole number"),
    "max_value_tokens": ([0, -3], "max_value_tokens must be a whole number above 0"),
}


@pytest.mark.parametrize("name", BAD)
def test_a_value_no_call_can_take_is_a_one_line_error_before_anything_is_recorded(wb, name):
    values, message = BAD[name]
    for value in values:
        with pytest.raises(WorkbenchError, match=f"^{message}.*{re.escape(repr(value))}$"):
            wb.ask("hi", model="local/echo", **{name: value})
        with pytest.raises(WorkbenchError, match=message):
            wb.ask("hi", AskOptions(model="local/echo", **{name: value}))
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0


def test_edge_values_that_are_fine_pass_and_one_image_need_not_be_a_list(wb, tmp_path):
    import numpy as np
    from PIL import Image

    from workbench.result import Format

    assert FORMATS == get_args(Format)
    for ok in (dict(temperature=0), dict(max_tokens=np.int64(5)), dict(budget=float("inf")), dict(budget=0.5)):
        assert wb.ask("hi", model="local/echo", **ok).text
    plain = AskOptions.of(None, {"max_tokens": np.int64(5), "temperature": np.float32(0.5)})
    assert (type(plain.max_tokens), type(plain.temperature)) == (int, float)  # a request is JSON
    Image.new("RGB", (4, 4), "red").save(tmp_path / "dot.png")
    shown = wb.ask("what is this?", model="local/echo", images=str(tmp_path / "dot.png"))
    assert shown.text.count("[image 4x4 png") == 1


@pytest.mark.parametrize(
    "options",
    [
        {"max_tokens": [1] * 1_000_000},
        {"temperature": "x" * 10_000_000},
        {"format": "y" * 100_000},
        {"priority": list(range(1_000_000))},
        {"response_format": "z" * 1_000_000},
    ],
)
def test_a_huge_wrong_value_is_quoted_short_in_its_one_line_error(wb, options):
    """The error quotes the start of what was given, not a million items or characters of it."""
    with pytest.raises(WorkbenchError) as caught:
        wb.ask("hi", model="local/echo", **options)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message[:300]
    assert "..." in message
    assert wb.calls.df().empty  # nothing was recorded


def test_a_huge_since_is_quoted_short():
    from workbench.store.db import cutoff

    with pytest.raises(WorkbenchError, match=r"^'q+\.\.\.q+' is not a time: write an age") as caught:
        cutoff("q" * 5000)
    assert len(str(caught.value)) < 300
