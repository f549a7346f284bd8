"""Edits to a store's SQLite file made as someone holding the file (but not the audit key) would make them."""

import sqlite3

from workbench.runtime import Workbench


def tamper(wb: Workbench, *statements: str) -> None:
    """Run ``statements`` on ``wb``'s store file through a connection of its own, in one transaction."""
    conn = sqlite3.connect(wb.store.path)
    with conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()
