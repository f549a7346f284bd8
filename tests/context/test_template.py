"""Filling {name} in a prompt: what each mistake says."""

import pytest

from workbench.context.template import fill
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
