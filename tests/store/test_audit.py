from workbench.audit import AuditLog
from workbench.store import Store


def test_chain_verifies_and_detects_edits_and_deletions(wb):
    for prompt in ("one", "two", "three"):
        wb.ask(prompt)
    assert wb.audit.verify().ok and wb.audit.verify().entries == 3
    store: Store = wb.store
    store.execute("UPDATE audit SET payload = replace(payload, 'local/echo', 'other') WHERE id = 2")
    bad = AuditLog(store).verify()
    assert not bad and bad.first_bad_id == 2 and "hash" in bad.reason


def test_deleting_an_entry_breaks_the_chain(wb):
    for prompt in ("one", "two", "three"):
        wb.ask(prompt)
    wb.store.execute("DELETE FROM audit WHERE id = 2")
    bad = wb.audit.verify()
    assert not bad and bad.first_bad_id == 3
