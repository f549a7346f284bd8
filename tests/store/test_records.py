"""The call and attempt records are the tables' columns, and a misspelled key is refused, not dropped."""

import pytest

from workbench.store import Store
from workbench.store.records import ATTEMPT_COLUMNS, CALL_COLUMNS


def _row(**extra):
    base = {"id": "c1", "trace_id": "t" * 32, "started_at": "2026-01-01T00:00:00", "mode": "live", "route": "r"}
    return {**base, "model": "m", "status": "ok", "fingerprint": "f", "text": "x", **extra}


def test_the_records_name_every_column_the_migrations_create(tmp_path):
    store = Store(tmp_path / "r.db")
    calls = {c.name for c in store.db["calls"].columns} - {"compacted_at"}  # set by retention, not by a call
    attempts = {c.name for c in store.db["attempts"].columns} - {"id"}  # the row id SQLite assigns
    assert set(CALL_COLUMNS) == calls
    assert set(ATTEMPT_COLUMNS) == attempts
    store.close()


def test_a_misspelled_key_is_refused_and_nothing_is_written(tmp_path):
    store = Store(tmp_path / "r.db")
    with pytest.raises(KeyError, match="calls has no column 'cost_usdd'"):
        store.record_call(_row(cost_usdd=1.0), [], [])
    with pytest.raises(KeyError, match="attempts has no column 'latency'"):
        store.record_call(_row(), [{"call_id": "c1", "n": 1, "latency": 3.0}], [])
    assert store.db["calls"].count == 0
    store.record_call(_row(cost_usd=0.5), [], [])
    assert store.db["calls"].get("c1")["cost_usd"] == 0.5
    store.close()
