"""The JSON text the store hashes and keeps is what ``json.dumps`` gives, with its encoder built once."""

import json

import pytest

from workbench.store.jsontext import encoder

OPTIONS = [
    {},
    {"sort_keys": True, "default": str},
    {"separators": (",", ":"), "ensure_ascii": False, "default": str},
    {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False, "default": str},
]
VALUES = [
    "plain",
    'é \u2028 \x00 "quoted" \\',
    0,
    -(2**70),
    1.5,
    1e300,
    float("nan"),
    float("-inf"),
    None,
    True,
    [],
    {},
    (1, "two"),
    {"b": 1, "a": [1, "é", None, {"z": 2.0, "y": [{}]}], "c": {"nested": True}},
    {1: "int key", 2.5: "float key", None: "none key", False: "bool key"},
]


@pytest.mark.parametrize("options", OPTIONS)
def test_the_text_is_byte_for_byte_json_dumps(options):
    encode = encoder(**options)
    for value in VALUES:
        if options.get("sort_keys") and isinstance(value, dict) and None in value:
            continue  # (keys of several kinds cannot be sorted: below)
        assert encode(value) == json.dumps(value, **options)


def test_unknown_objects_go_through_default_and_without_one_are_refused():
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    assert encoder(default=str)({"x": Thing()}) == '{"x": "a thing"}'
    with pytest.raises(TypeError, match="not JSON serializable"):
        encoder()({"x": Thing()})
    with pytest.raises(TypeError):
        encoder(sort_keys=True)({1: "a", "b": 2})  # (keys of two kinds cannot be sorted, as with json.dumps)


def test_a_value_that_contains_itself_is_an_error_not_a_hang():
    loop: list = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        encoder()(loop)
