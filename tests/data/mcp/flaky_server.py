"""A small MCP server for the client's failure tests: a tool whose description comes from the
environment (to change a definition between runs), one that hangs, one that kills the server; it
prints ``SAY_ON_STDERR`` to its stderr on start (what a server that logs its settings does)."""

import os
import sys
import time

from mcp.server.mcpserver import MCPServer

server = MCPServer("flaky")


@server.tool(description=os.environ.get("ECHO_DESCRIPTION", "Repeat the text."))
def echo(text: str) -> str:
    return text


@server.tool()
def hang(seconds: float) -> str:
    """Sleep, then answer (a server that stops responding)."""
    time.sleep(seconds)
    return "woke up"


@server.tool()
def die() -> str:
    """Exit the server process in the middle of a call."""
    os._exit(3)


if __name__ == "__main__":
    if os.environ.get("SAY_ON_STDERR"):
        print(os.environ["SAY_ON_STDERR"], file=sys.stderr, flush=True)
    server.run("stdio")
