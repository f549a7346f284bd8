"""Documents are chunked into SQLite, retrieved with FTS5 BM25, and cited by chunk id."""

import pytest

from workbench.context.docs import fts_query
from workbench.errors import WorkbenchError

HANDBOOK = """# Opening hours

The office opens at 9 on Saturdays and closes at 13.

# Refunds

Refunds are paid within 30 days of a return, to the card used for the purchase.
"""


def test_markdown_is_chunked_by_heading_and_searched_by_bm25(wb, tmp_path):
    (tmp_path / "handbook.md").write_text(HANDBOOK)
    assert wb.docs.add("handbook", [tmp_path / "handbook.md"]) == 2
    [best, *_] = wb.docs.search("handbook", "How long until my refund is paid?")
    assert best.id == "handbook.md#2" and "30 days" in best.text and best.score > 0
    assert wb.docs.get("handbook.md#1").text.startswith("# Opening hours")
    wb.docs.add("other", ["Parking is free on Sundays."])
    assert wb.docs.search("other", "refund") == []  # collections are separate
    with pytest.raises(WorkbenchError, match=r"no documents in collection 'handbok' \(collections: handbook, other\)"):
        wb.docs.search("handbok", "refund")  # a mistyped name says so, instead of finding nothing


def test_a_context_spec_naming_a_collection_with_no_documents_fails_before_anything_is_sent(make_wb, tmp_path):
    (tmp_path / "contexts").mkdir(exist_ok=True)
    (tmp_path / "contexts" / "typo.yaml").write_text("sources:\n  - {kind: documents, collection: handbok, k: 3}\n")
    wb = make_wb(contexts=str(tmp_path / "contexts"))
    wb.docs.add("handbook", ["Refunds take 30 days."])
    with pytest.raises(WorkbenchError, match="no documents in collection 'handbok'"):
        wb.ask("How long do refunds take?", model="local/echo", spec="typo")
    assert wb.store.query("SELECT count(*) AS n FROM calls")[0]["n"] == 0


def test_csv_rows_text_and_re_adding_replaces(wb, tmp_path):
    (tmp_path / "prices.csv").write_text("plan,price,seats\nbasic,10,1\nteam,45,5\n")
    assert wb.docs.add("catalog", [str(tmp_path / "prices.csv"), "Support is by email only."]) == 3
    assert wb.docs.search("catalog", "team seats")[0].text == "plan: team; price: 45; seats: 5"
    (tmp_path / "prices.csv").write_text("plan,price\nbasic,12\n")
    wb.docs.add("catalog", tmp_path / "prices.csv")
    assert wb.docs.df("catalog")["id"].tolist() == ["prices.csv#1", wb.docs.df("catalog")["id"].iloc[1]]
    assert wb.docs.collections().values.tolist() == [["catalog", 2, 2]]


def test_long_paragraphs_are_split_to_the_chunk_size(wb):
    text = " ".join(f"word{i}" for i in range(250))  # one line, longer than a file name may be
    assert wb.docs.add("long", text, chunk_words=100) == 3
    assert wb.docs.df("long")["words"].tolist() == [100, 100, 50]


def test_queries_with_punctuation_cannot_break_fts_syntax(wb):
    wb.docs.add("notes", 'He said "AND" OR NOT (x) near: y*')
    assert fts_query('"AND" OR (NOT) NEAR(said, he) *') == '"not" OR "near" OR "said" OR "he"'  # stop words dropped
    assert len(wb.docs.search("notes", "what was said: NOT (x) near y*?")) == 1
    assert wb.docs.search("notes", "?!") == []


def test_missing_files_are_one_line_errors(wb):
    with pytest.raises(WorkbenchError, match="no such file: missing.md"):
        wb.docs.add("handbook", ["missing.md"])
    with pytest.raises(WorkbenchError, match="name the collection"):
        wb.docs.add("", ["x"])


def test_a_one_line_text_longer_than_a_file_name_is_text(wb):
    line = " ".join(["a long single-line note"] * 20)  # 460 characters, no newline: not a path
    assert wb.docs.add("notes", line) == 1
