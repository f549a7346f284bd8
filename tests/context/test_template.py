"""Filling {name} in a prompt: what each mistake says."""

import pytest

from tests.hostile import nested
from workbench.context.template import fill, fill_values
from workbench.errors import TemplateError


@pytest.mark.parametrize("prompt", ['Parse this: {"a": 1}', 'Fix:\n{\n  "name": "x"\n}', "{ 'k': [1, 2] }"])
def test_json_in_a_prompt_says_to_double_the_braces(prompt):
    with pytest.raises(TemplateError, match=r"the prompt holds JSON .*double its braces"):
        fill(prompt, {})
    assert fill(prompt.replace("{", "{{").replace("}", "}}"), {}) == prompt  # and doubling them works


def test_a_missing_name_and_a_filled_one():
    with pytest.raises(TemplateError, match=r"\{nobody\} in the prompt is not defined: define nobody in a cell above"):
        fill("Hello {nobody}", {})
    assert fill("Hello {who}", {"who": "Ada"}) == "Hello Ada"


class _Report:
    title = "Q3"

    def __init__(self):
        self._token = "internal-value-123"


@pytest.mark.parametrize(
    "field",
    ["doc._token", "doc.__class__", "doc.__init__.__globals__[__name__]", "doc.__dict__", "rows[0].__class__"],
)
def test_a_prompt_cannot_walk_into_an_objects_insides(field, wb):
    """A prompt given with values may come from elsewhere (a form, a file): like Jinja's sandbox, it reads public
    attributes and items only, never a private one or a dunder on the way to module globals.
    """
    with pytest.raises(TemplateError, match=r"names a private attribute .*public attributes and items only"):
        wb.ask(f"Summarise {{{field}}}", model="local/echo", values={"doc": _Report(), "rows": [_Report()]})
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    assert wb.ask(
        "Summarise {doc.title} and {rows[0].title}", model="local/echo", values={"doc": _Report(), "rows": [_Report()]}
    ).text == ("Summarise Q3 and Q3")


@pytest.mark.parametrize("spec", [">300000000", ".100000000f", "0>20000", "_<99999"])
def test_a_format_spec_cannot_build_a_huge_string_before_the_length_check(spec):
    with pytest.raises(TemplateError, match=r"asks for a width or precision over 10,000 characters"):
        fill(f"Summarise {{x:{spec}}}", {"x": 1.5})
    assert fill("{x:>8.2f}|{y:_<6}", {"x": 1.5, "y": "ab"}) == "    1.50|ab____"


class _Unprintable:
    def __str__(self):
        raise RuntimeError("boom")

    __repr__ = __str__


def test_a_value_that_cannot_be_rendered_is_one_line():
    deep = nested()
    with pytest.raises(TemplateError, match=r"^\{v\} in the prompt is nested too deeply to render \(RecursionError"):
        fill("Look at {v}", {"v": deep})  # (str() of it)
    shown = fill_values("Look at {v}", {"v": deep})  # rendered for a model: written only as far as fits
    assert shown.text.startswith("Look at [\n [\n  [") and shown.values[0][1].cut.startswith("[cut: all but the first")
    with pytest.raises(TemplateError, match=r"^\{v\} in the prompt could not be rendered \(RuntimeError: boom\)"):
        fill_values("Look at {v}", {"v": _Unprintable()})
