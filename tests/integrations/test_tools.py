"""Tools from typed functions: schema and validation from the signature, risk, the wb.tools table."""

import pytest

from workbench.integrations import ToolError, from_function
from workbench.runtime import Workbench


def revenue(region: str, months: int = 3, currency: str = "EUR") -> dict:
    """Revenue of a region over the last months.

    Args:
        region: the sales region, e.g. "north"
        months: how many months back
    """
    return {"region": region, "months": months, "total": 1200 * months, "currency": currency}


def test_schema_and_description_come_from_the_signature_and_docstring():
    tool = from_function(revenue, name="sales.revenue")
    assert tool.description == "Revenue of a region over the last months."
    assert tool.parameters == {
        "type": "object",
        "additionalProperties": False,
        "required": ["region"],
        "properties": {
            "region": {"type": "string", "description": 'the sales region, e.g. "north"'},
            "months": {"type": "integer", "default": 3, "description": "how many months back"},
            "currency": {"type": "string", "default": "EUR"},
        },
    }
    assert tool.schema()["function"]["name"] == "sales__revenue"
    assert tool.run({"region": "north", "months": "2"}) == {
        "region": "north",
        "months": 2,
        "total": 2400,
        "currency": "EUR",
    }
    with pytest.raises(ToolError, match="tool sales.revenue: months: Input should be a valid integer"):
        tool.run({"region": "north", "months": "many"})
    with pytest.raises(ToolError, match="extra: Extra inputs are not permitted"):
        tool.run({"region": "north", "extra": 1})


def test_bad_tools_are_refused_with_what_to_do():
    def untyped(x):
        return x

    with pytest.raises(ToolError, match="parameter 'x' needs a type hint"):
        from_function(untyped)
    with pytest.raises(ToolError, match="risk must be one of read, write, destructive"):
        from_function(revenue, risk="scary")


def test_the_decorator_registers_and_wb_tools_lists(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "t.db"))

    @wb.tool
    def today() -> str:
        """Today's date."""
        return "2026-11-28"

    @wb.tool(name="db.drop", risk="destructive")
    async def drop(table: str) -> str:
        """Drop a table."""
        return f"dropped {table}"

    assert today() == "2026-11-28"  # still the plain function
    assert wb.tools.df()[["name", "risk", "parameters"]].values.tolist() == [
        ["today", "read", ""],
        ["db.drop", "destructive", "table"],
    ]
    assert wb.tools.get("db__drop").run({"table": "t"}) == "dropped t"  # async tools run too
    assert [t.name for t in wb.tools.select("db.*")] == ["db.drop"]
    with pytest.raises(ToolError, match="unknown tool 'nope'; known: db.drop, today"):
        wb.tools.get("nope")


def test_tool_search_picks_the_tools_closest_to_the_task(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "s.db"))
    for name, doc in [
        ("crm.find_customer", "Find a customer by name or email."),
        ("crm.delete_accounts", "Delete the accounts of a segment."),
        ("weather.forecast", "The weather forecast for a city."),
        ("time.now", "The current time in a timezone."),
        ("sales.revenue", "Revenue of a region over months."),
    ]:

        def fn(x: str) -> str:
            return x

        fn.__doc__ = doc
        wb.tools(fn, name=name)
    picked = wb.tools.search("what's the weather forecast for Lisbon tomorrow", wb.tools.select(None), 2)
    assert picked[0].name == "weather.forecast"
    assert [t.name for t in wb.tools.search("find the customer called Ada", wb.tools.select("crm.*"), 1)] == [
        "crm.find_customer"
    ]
