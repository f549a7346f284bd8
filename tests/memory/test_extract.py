"""What the rules extractor remembers from a user's message."""

from workbench.memory.extract import extract


def test_preferences_and_facts_are_found_and_questions_are_not():
    text = (
        "I prefer short answers. My team is the payments squad. Please remember that the audit is in March. "
        "What is my plan? The weather is nice."
    )
    assert extract(text) == [
        ("preference", "I prefer short answers."),
        ("fact", "My team is the payments squad."),
        ("fact", "the audit is in March."),
    ]
