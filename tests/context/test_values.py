"""Values rendered for a model fit their token budget, say what was cut, and never copy the frame."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from workbench.context.values import render_value
from workbench.serving.router import litellm_module


def _tokens(text: str) -> int:
    return litellm_module().token_counter(model="gpt-4o", text=text)


@pytest.mark.parametrize("budget", [60, 300, 2000])
def test_every_kind_fits_its_budget_by_the_real_tokenizer(budget):
    frame = pd.DataFrame({"city": ["Zürich", "東京", "São Paulo"] * 2000, "t": np.linspace(-5, 35, 6000)})
    values = [frame, frame["t"], {"k": list(range(5000))}, "日本語のテキスト" * 2000, object()]
    for value in values:
        rendered = render_value(value, budget, name="v", count=_tokens)
        assert _tokens(rendered.text) <= budget, (type(value).__name__, budget)
        assert rendered.tokens == _tokens(rendered.text)


def test_the_block_states_shape_dtypes_summary_and_what_was_cut():
    frame = pd.DataFrame({"units": [3, 1, None, 7], "name": list("abcd")})
    small = render_value(frame, 2000, name="orders").text
    assert small.splitlines()[:2] == ["DataFrame orders: 4 rows × 2 columns", "dtypes: units float64, name str"]
    described = frame.describe()["units"]
    assert f"| mean | {described['mean']:.6g} |" in small
    assert f"| 50% | {described['50%']:.6g} |" in small
    assert "rows (all 4 rows):" in small
    assert "cut" not in small
    big = render_value(pd.concat([frame] * 1000, ignore_index=True), 200, name="orders")
    assert big.cut == "[cut: " + big.cut.split("[cut: ")[1]
    assert big.text.endswith("rows not shown (max 200 tokens)]")
    assert "first " in big.text
    assert "| 3999 | " in big.text  # head and tail rows


def test_a_million_rows_are_not_copied():
    frame = pd.DataFrame({"a": np.arange(1_000_000), "b": np.random.default_rng(0).random(1_000_000)})
    tracemalloc.start()
    render_value(frame, 2000, name="big")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < frame.memory_usage(deep=True).sum() / 4  # no copy of the frame (16 MB): under 4 MB at the peak


def test_a_wide_frame_shows_its_first_columns_and_counts_the_rest_in_a_fraction_of_a_second():
    """A frame of 100,000 columns (one-hot features, a transposed table) took 23 s to render: a summary of every
    column, all of them in every row. Now its first 100 columns are shown and the rest counted by dtype.
    """
    import time

    wide = pd.concat([pd.DataFrame(np.zeros((10, 99_990))), pd.DataFrame({"label": list("abcdefghij")})], axis=1)
    wide.columns = [f"c{i}" for i in range(99_990)] + ["label"]
    t = time.perf_counter()
    rendered = render_value(wide, 2000, name="features")
    assert time.perf_counter() - t < 3.0
    lines = rendered.text.splitlines()
    assert lines[0] == "DataFrame features: 10 rows × 99,991 columns"
    assert lines[1].startswith("dtypes: c0 float64, c1 float64") and lines[1].endswith("c99 float64")
    assert lines[2] == "[cut: 99,891 of 99,991 columns not shown: 99,890 float64, 1 str]"
    dup = pd.DataFrame([[1, 2.5, "x"]], columns=["a", "a", "b"])  # columns by position: a repeated name is fine
    assert "| mean | 1 | 2.5 |" in render_value(dup, 2000, name="dup").text


def test_a_huge_dict_or_list_is_written_only_as_far_as_shows():
    for value in ({str(i): i for i in range(2_000_000)}, list(range(5_000_000))):
        rendered = render_value(value, 2000, name="v", count=_tokens)
        assert _tokens(rendered.text) <= 2000
        assert rendered.cut is not None and rendered.cut.startswith("[cut: all but the first ")


def test_a_budget_too_small_to_show_anything_is_refused():
    with pytest.raises(ValueError, match="at least 50"):
        render_value([1], 10)


def test_a_frame_whose_summary_alone_fills_the_budget_says_no_row_is_shown():
    frame = pd.DataFrame({"region": ["n", "s"] * 5000, "units": range(10000)})
    rendered = render_value(frame, 120, name="sales", count=_tokens)
    assert rendered.cut is not None
    assert rendered.cut.startswith("[cut: all 10,000 rows not shown (max 120 tokens)]")
    assert rendered.text.endswith("[cut: all 10,000 rows not shown (max 120 tokens)]")
    assert _tokens(rendered.text) <= 120


def test_values_fill_a_python_prompt_and_each_is_a_block_of_the_recorded_plan(wb):
    import json

    frame = pd.DataFrame({"region": ["north", "south"] * 500, "units": range(1000)})
    result = wb.ask(
        "Which region sells more?\n{sales}\nNotes: {notes}",
        values={"sales": frame, "notes": {"source": "erp", "year": 2026}},
        max_value_tokens=200,
        model="local/echo",
        system="Be brief.",
    )
    assert result.text.startswith("Which region sells more?\nDataFrame sales: 1,000 rows × 2 columns")
    assert '"source": "erp"' in result.text
    plan = json.loads(wb.calls.last()["context_plan"])
    blocks = {b["ref"]: b for b in plan["blocks"]}
    assert blocks["sales"]["source"] == "value"
    assert blocks["sales"]["status"] == "truncated"
    assert blocks["sales"]["reason"].startswith("[cut: ")
    assert blocks["notes"]["status"] == "included"
    assert wb.calls.last()["request"].count("Be brief.") == 1  # the system message is still sent
    with pytest.raises(Exception, match="is not defined"):
        wb.ask("{missing}", values={}, model="local/echo")
