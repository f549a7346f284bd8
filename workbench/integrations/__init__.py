"""Factor 4, integrations: tools from typed Python functions (and MCP servers' tools)."""

from workbench.integrations.mcp import MCP
from workbench.integrations.tools import RISKS, Tool, ToolError, Tools, from_function, result_text, wire_name

__all__ = ["MCP", "RISKS", "Tool", "ToolError", "Tools", "from_function", "result_text", "wire_name"]
