"""A read-only SQLite analyst, as an MCP server: the schema as resources, a ``query`` tool.

    python extensions/sqlite_analyst/server.py --db shop.db              # stdio
    python extensions/sqlite_analyst/server.py --db shop.db --http 8765  # streamable HTTP at /mcp

- resources: ``schema://tables`` (every table's CREATE statement) and ``schema://table/NAME``
  (one table's columns, types and row count);
- tools: ``query(sql, limit=200)`` runs one read-only query and answers with CSV; anything
  else (a write, a second statement, PRAGMA, ATTACH) is refused. Three locks, any one of
  which would do: the statement is checked before it runs, the file is opened read-only
  (``mode=ro``), and SQLite's authorizer denies every action but reading — and every
  function but an allowlist of plain SQL ones (no ``fts3_tokenizer``, ``load_extension``).
  A query runs at most ``--max-seconds`` (a progress handler stops it), returns at most
  ``--max-rows`` rows and ``--max-bytes`` of CSV (the answer says when it was cut), and no
  value may grow past 1 MB (``SQLITE_LIMIT_LENGTH``);
  ``tables()`` lists the tables with their row counts;
- prompts: ``explore(table)``, a starting question about one table.

Built with the ``mcp`` SDK (2.x ``MCPServer``).
"""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from workbench.guardrails import sql_problems

_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
FUNCTIONS = frozenset(
    """
    abs avg char coalesce concat concat_ws count date datetime format glob group_concat hex ifnull iif instr
    julianday length like likelihood likely lower ltrim max min nullif octet_length printf quote random replace
    round rtrim sign strftime string_agg substr substring sum time timediff total trim typeof unhex unicode
    unixepoch unlikely upper acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log
    log10 log2 mod pi pow power radians sin sinh sqrt tan tanh trunc json json_array json_array_length
    json_extract json_group_array json_group_object json_object json_type json_valid json_quote row_number rank
    dense_rank ntile lag lead first_value last_value nth_value percent_rank cume_dist
""".split()
)  # plain SQL: no fts3_tokenizer (it leaks a pointer), load_extension, or anything that reaches outside
MAX_VALUE_BYTES = 1_000_000


def _authorize(action: int, arg1: object, arg2: object, *_: object) -> int:
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_OK if str(arg2).lower() in FUNCTIONS else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def build(db: Path, max_seconds: float = 5.0, max_rows: int = 1000, max_bytes: int = 200_000) -> MCPServer:
    """The server for one database file, with a time limit per query and caps on what a query returns."""
    if not db.exists():
        raise SystemExit(f"no database at {db}")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        conn.set_authorizer(_authorize)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        deadline = time.monotonic() + max_seconds
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        return conn

    def table_names() -> list[str]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
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
            cap = max(1, min(limit, max_rows))
            rows = cur.fetchmany(cap + 1)
            more = len(rows) > cap
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow([d[0] for d in cur.description or []])
            shown = 0
            for row in rows[:cap]:
                before = out.tell()
                writer.writerow(row)
                if out.tell() > max_bytes:
                    out.seek(before)
                    out.truncate()
                    more = True
                    break
                shown += 1
            if more:
                out.write(
                    f"(truncated: the first {shown} rows; the result has more. Narrow the query, or aggregate "
                    f"it: at most {cap} rows and {max_bytes:,} bytes are returned)\n"
                )
            return out.getvalue()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise ToolError(f"the query ran longer than {max_seconds:g} s and was stopped; narrow it") from None
            raise ToolError(f"the query failed: {exc}") from None
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

    @server.resource(
        "schema://tables", name="schema", description="every table's CREATE statement", mime_type="text/plain"
    )
    def schema() -> str:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return "\n\n".join(
                r[0]
                for r in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            )
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
    parser.add_argument("--max-seconds", type=float, default=5.0, help="stop a query that runs longer (default 5)")
    parser.add_argument("--max-rows", type=int, default=1000, help="rows a query returns at most (default 1000)")
    parser.add_argument("--max-bytes", type=int, default=200_000, help="CSV bytes a query returns at most")
    args = parser.parse_args()
    server = build(args.db.resolve(), args.max_seconds, args.max_rows, args.max_bytes)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
