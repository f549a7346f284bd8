import sqlite3

import pytest

from workbench.cli import main
from workbench.errors import ReplayMiss, WorkbenchError
from workbench.runtime import Workbench
from workbench.store import utcnow
from workbench.store.retention import compact


def test_compact_keeps_aggregates_and_a_verifiable_chain(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "wb.db"), default_route="local/extractive")
    for i in range(40):
        wb.ask(f"question {i} " + "padding " * 200, session="old", context="Some context sentence. " * 30)
    cut = utcnow()  # compaction takes an age or an instant: everything before this is "old"
    wb.ask("a fresh question", session="new")
    costs_before = wb.costs.df(by="session").set_index("session")["cost_usd"].to_dict()
    tokens_before = wb.store.query("SELECT SUM(total_tokens) t FROM calls")[0]["t"]
    dry = compact(wb.store, cut, dry_run=True)
    assert dry.dry_run
    assert dry.calls == 40
    assert dry.bytes_freed == 0
    assert wb.store.query("SELECT COUNT(*) n FROM calls WHERE text IS NULL")[0]["n"] == 0
    done = compact(wb.store, cut)
    assert done.calls == 40
    assert done.spans > 0
    assert done.audit_entries == 41
    assert done.bytes_freed > 100_000
    assert "bytes freed" in str(done)
    old = wb.store.query("SELECT * FROM calls WHERE session = 'old'")
    assert all(r["prompt"] is None and r["text"] is None and r["request"] is None and r["compacted_at"] for r in old)
    assert all(r["cost_usd"] is not None and r["total_tokens"] for r in old)
    assert wb.costs.df(by="session").set_index("session")["cost_usd"].to_dict() == costs_before
    assert wb.store.query("SELECT SUM(total_tokens) t FROM calls")[0]["t"] == tokens_before
    assert wb.store.query("SELECT text FROM calls WHERE session = 'new'")[0]["text"]
    check = wb.audit.verify()
    assert check.ok, check
    wb.ask("after compaction")  # the chain goes on from the checkpoint
    assert wb.audit.verify().ok
    first = wb.store.query("SELECT MIN(id) i FROM audit")[0]["i"]
    _tamper = sqlite3.connect(wb.store.path)
    with _tamper:
        _tamper.execute("UPDATE audit SET payload = payload || ' ' WHERE id = ?", (first,))
    assert wb.audit.verify().first_bad_id == first


def test_compacted_calls_are_not_served_from_cache_or_replay(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "wb.db"))
    wb.ask("remember me")
    compact(wb.store, utcnow())
    replay = Workbench.from_config(store=str(tmp_path / "wb.db"), mode="replay")
    with pytest.raises(ReplayMiss):
        replay.ask("remember me")
    assert wb.ask("remember me").cache_hit is False


def test_compact_refuses_a_broken_chain_and_bad_ages(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "wb.db"))
    wb.ask("one")
    wb.ask("two")
    conn = sqlite3.connect(wb.store.path)
    with conn:
        conn.execute("UPDATE audit SET payload = '{}' WHERE id = 2")
    with pytest.raises(WorkbenchError, match="broken at entry 2.*erase the evidence"):
        compact(wb.store, "0d")
    with pytest.raises(WorkbenchError, match="an age such as 30d"):
        compact(wb.store, "a month")


def test_cli_audit_and_compact(tmp_path, capsys):
    (tmp_path / "workbench.toml").write_text('store = "w.db"\n[retention]\nolder_than = "30d"\n')
    config = str(tmp_path / "workbench.toml")
    wb = Workbench.from_config(config)
    for p in ("a", "b", "c"):
        wb.ask(p)
    assert main(["--config", config, "audit", "verify"]) == 0
    assert "audit chain intact: 4 entries" in capsys.readouterr().out
    out = tmp_path / "a.jsonl"
    assert main(["--config", config, "audit", "export", "--since", "1d", "-o", str(out)]) == 0
    assert "4 entries and their proof" in capsys.readouterr().out
    assert main(["--config", config, "audit", "verify", "--file", str(out)]) == 0
    capsys.readouterr()
    cut = wb.store.query("SELECT started_at FROM calls WHERE prompt = 'b'")[0]["started_at"]
    assert main(["--config", config, "store", "compact", "--older-than", cut, "--dry-run"]) == 0
    assert "would compact 1 calls" in capsys.readouterr().out
    assert main(["--config", config, "store", "compact", "--older-than", cut]) == 0
    assert "compacted 1 calls" in capsys.readouterr().out
    assert main(["--config", config, "audit", "verify"]) == 0
    capsys.readouterr()
    conn = sqlite3.connect(wb.store.path)
    with conn:
        conn.execute("DELETE FROM audit WHERE id = (SELECT MAX(id) FROM audit)")
    assert main(["--config", config, "audit", "verify"]) == 1
    assert "BROKEN" in capsys.readouterr().out
