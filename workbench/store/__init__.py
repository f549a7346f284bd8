"""SQLite store: schema migrations, atomic call records, the audit chain."""

from workbench.store.db import GENESIS, Store, audit_hash, cutoff, new_id, utcnow
from workbench.store.migrations import MIGRATIONS, migrate, spend_problems

__all__ = ["GENESIS", "MIGRATIONS", "Store", "audit_hash", "cutoff", "migrate", "new_id", "spend_problems", "utcnow"]
