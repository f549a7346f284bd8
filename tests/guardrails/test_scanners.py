"""The secret and personal-data scanners: real formats found, look-alikes left alone."""

import pytest

from workbench.guardrails import find_pii, find_secrets, iban_valid, luhn, redact


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("key sk-proj-abcdefghijklmnopqrstuvwx123", "openai_key"),
        ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123", "openai_key"),  # the sk- family: found either way
        ("AKIAIOSFODNN7EXAMPLE in the config", "aws_access_key"),
        ("token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", "github_token"),
        ("xoxb-1234567890-abcdefghij", "slack_token"),
        ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "google_api_key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "private_key"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
    ],
)
def test_secret_formats_are_found(text, kind):
    [finding] = find_secrets(text)
    assert finding.kind == kind or (kind == "openai_key" and finding.kind == "anthropic_key")


@pytest.mark.parametrize(
    "text",
    [
        "the task-force meeting is at 10",
        "use the sk- prefix for keys",
        "AKIA is how AWS keys start",
        "a list: ghp_ tokens are GitHub's",
    ],
)
def test_secret_look_alikes_are_not(text):
    assert find_secrets(text) == []


def test_pii_is_found_with_checksums_and_dates_and_amounts_are_not():
    text = (
        "Mail ana@example.com or call +44 20 7946 0958. Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 "
        "7654 32, SSN 123-45-6789, NINO AB 12 34 56 C. Order 2024-11-28 costs 1234 euros; ref 4111 1111 1111 1112."
    )
    kinds = [f.kind for f in find_pii(text)]
    assert kinds == ["email", "phone", "card_number", "iban", "us_ssn", "uk_nino"]  # the bad-Luhn number is not a card
    assert redact(text, find_pii(text)).startswith("Mail [REDACTED:email] or call [REDACTED:phone]. Card [REDACTED")


def test_checksums():
    assert luhn("4111111111111111")
    assert not luhn("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00")
    assert not iban_valid("DE89 3704 0044 0532 0130 01")


def test_a_name_with_a_control_or_invisible_character_is_refused_before_anything_is_recorded(tmp_path):
    """Names are shown as written (the CLI, reports, the panel): a newline forges a line ("approved by: root"), a
    terminal escape recolours the terminal, a bidi override or a zero-width space hides what the name says.
    Letters of any script and an emoji's joiner are fine.
    """
    from workbench.errors import WorkbenchError
    from workbench.runtime import Workbench

    wb = Workbench.from_config(store=str(tmp_path / "n.db"))
    row = wb.approvals.request("db.drop", {"table": "t"}, risk="destructive", reason="r")
    attempts = {
        "session": lambda bad: wb.ask("hi", model="local/echo", session=bad),
        "user": lambda bad: wb.ask("hi", model="local/echo", user=bad),
        "by": lambda bad: wb.approvals.decide(row["id"], "reject", by=bad),
        "memory scope": lambda bad: wb.memory.add("Ana likes tea", f"user:{bad}"),
        "budget scope": lambda bad: wb.budgets.set(f"user:{bad}", 5),
        "workflow": lambda bad: wb.workflow(bad),
    }
    for bad in ("ana\napproved by: root", "ana\x1b[31m", "ana\u202egnp.exe", "an\u200ba", "ana\x00", "ana\tb"):
        for what, attempt in attempts.items():
            with pytest.raises(WorkbenchError, match="holds a control or invisible character") as caught:
                attempt(bad)
            assert "\n" not in str(caught.value), what
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    assert wb.approvals.get(row["id"])["status"] == "pending"
    assert wb.ask("hi", model="local/echo", session="👩‍💻 café Zürich 東京").session == "👩‍💻 café Zürich 東京"
    wb.close()


def test_a_name_of_megabytes_is_refused_in_a_short_line_before_anything_is_recorded(tmp_path):
    """A name is stored in every row and index entry that names it: one of a million characters was accepted and
    written into each; a name past 4,096 characters (PATH_MAX: a document's path is its name) is refused."""
    from workbench.errors import WorkbenchError
    from workbench.guardrails.scanners import MAX_NAME
    from workbench.runtime import Workbench

    wb = Workbench.from_config(store=str(tmp_path / "n.db"))
    for option in ("session", "user", "task", "agent", "model", "spec"):
        too_long = rf"the {option} given is 1,000,000 characters: a name is at most"
        with pytest.raises(WorkbenchError, match=too_long) as e:
            wb.ask("hi", **{"model": "local/echo", option: "n" * 1_000_000})
        assert len(str(e.value)) < 200
    with pytest.raises(WorkbenchError, match="at most 4,096"):
        wb.memory.add("Ana likes tea", "user:" + "a" * MAX_NAME)
    assert wb.store.query("SELECT COUNT(*) AS n FROM calls")[0]["n"] == 0
    assert wb.ask("hi", model="local/echo", session="s" * MAX_NAME).session == "s" * MAX_NAME
    wb.close()
