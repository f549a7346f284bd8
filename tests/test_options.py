"""One AskOptions object flows from wb.ask / the magic / the agent loop through the pipeline."""

import pytest

from workbench.errors import WorkbenchError
from workbench.options import AskKwargs, AskOptions


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
