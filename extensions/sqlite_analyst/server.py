"""A read-only SQLite analyst, as an MCP server: the schema as resources, a ``query`` tool.

    python extensions/sqlite_analyst/server.py --db shop.db              # stdio
    python extensions/sqlite_analyst/server.py --db shop.db --http 8765  # streamable HTTP at /mcp

- resources: ``schema://tables`` (every table's CREATE statement) and ``schema://table/NAME``
  (one table's columns, types and row count);
- tools: ``query(sql, limit=200)`` runs one read-only query and answers with CSV; anything
  else (a write, a second statement, PRAGMA, ATTACH) is refused. Three locks, any one of
  which would do: the statement is checked before it runs, the file is opened read-only
  (``mode=ro``), and SQLite's authorizer denies every action but reading;
  ``tables()`` lists the tables with their row counts;
- prompts: ``explore(table)``, a starting question about one table.

Built with the ``mcp`` SDK (2.x ``MCPServer``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from workbench.guardrails import sql_problems

_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}


def _authorize(action: int, *_: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def build(db: Path) -> MCPServer:
    """The server for one database file."""
    if not db.exists():
        raise SystemExit(f"no database at {db}")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.set_authorizer(_authorize)
        return conn

    def table_names() -> list[str]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name NOT LIKE 'sqlite_%' ORDER BY name")]  # fmt: skip
        finally:
            conn.close()

    server = MCPServer("sqlite-analyst", instructions=f"Read-only SQL over {db.name}. Read schema://tables first.")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False))
    def query(sql: str, limit: int = 200) -> str:
        """Run one read-only SQL query (SELECT or WITH ... SELECT) and return the rows as CSV.

        Args:
            sql: a single SELECT statement
            limit: the most rows to return

        """
        problems = sql_problems(sql)
        if problems:
            raise ToolError(f"only one read-only query is allowed ({', '.join(problems)})")
        conn = connect()
        try:
            cur = conn.execute(sql)
            rows = cur.fetchmany(max(1, min(limit, 10_000)))
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow([d[0] for d in cur.description or []])
            writer.writerows(rows)
            return out.getvalue()
        except sqlite3.DatabaseError as exc:
            raise ToolError(f"the query failed: {exc}") from None
        finally:
            conn.close()

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False))
    def tables() -> str:
        """List the tables and how many rows each has."""
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            counts = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in table_names()}
            return "\n".join(f"{t}: {n} rows" for t, n in counts.items())
        finally:
            conn.close()

    @server.resource("schema://tables", name="schema", description="every table's CREATE statement",
                     mime_type="text/plain")  # fmt: skip
    def schema() -> str:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return "\n\n".join(r[0] for r in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"))
        finally:
            conn.close()

    def describer(name: str):  # one resource per table, each a function of no arguments
        def describe() -> str:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                cols = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
                count = conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
            finally:
                conn.close()
            return f"table {name} ({count} rows)\n" + "\n".join(f"  {c[1]} {c[2]}" for c in cols)

        return describe

    for name in table_names():
        server.resource(f"schema://table/{name}", name=f"table {name}", mime_type="text/plain")(describer(name))

    @server.prompt()
    def explore(table: str) -> str:
        """A first look at one table."""
        return f"Look at schema://table/{table}, then summarise what {table} holds with two example queries."

    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Read-only SQLite analyst MCP server (stdio)")
    parser.add_argument("--db", required=True, type=Path, help="the SQLite file to serve (opened read-only)")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    args = parser.parse_args()
    server = build(args.db.resolve())
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
