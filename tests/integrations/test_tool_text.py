"""A tool's text result: plain text to a model, a table in a notebook when it is CSV."""

from workbench.integrations.text import ToolText


def test_csv_text_is_a_table_and_other_text_is_not():
    result = ToolText("country,customers\r\nUS,8\r\nUK,3\r\n")
    assert isinstance(result, str)
    assert result.startswith("country")  # what an agent sends the model
    assert result.df().to_dict("records") == [{"country": "US", "customers": 8}, {"country": "UK", "customers": 3}]
    assert "<table" in result._repr_html_()
    for text in ("It is 8 degrees.", "one line only", "a,b\n1,2,3", "", "x\n\n"):
        assert ToolText(text).df() is None and ToolText(text)._repr_html_() is None, text


def test_a_dead_mcp_connection_is_judged_by_its_error_code_not_its_text():
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, REQUEST_TIMEOUT

    from workbench.integrations.mcp import _fatal

    assert _fatal(MCPError(CONNECTION_CLOSED, "the peer went away"))
    assert _fatal(MCPError(REQUEST_TIMEOUT, "slow"))
    assert _fatal(ExceptionGroup("task group", [ValueError("x"), BrokenPipeError()]))
    assert not _fatal(MCPError(INVALID_PARAMS, "Connection closed is not the point"))  # the text alone is not it
    assert not _fatal(ValueError("timed out"))
