"""A session exports as Markdown, a new notebook or JSON lines: its turns since the last reset, no secret."""

import json

import nbformat
import pytest

from workbench.errors import WorkbenchError

KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


def test_a_session_exports_in_three_formats_with_footers(wb, tmp_path):
    wb.ask("old turn", model="local/echo", session="s")
    wb.session("s").reset()
    first = wb.ask("What is the refund window?", model="local/echo", session="s")
    second = wb.ask("And for sale items?", model="local/echo", session="s")
    md = wb.session("s").export(tmp_path / "s.md").read_text()
    assert md.startswith("# Session s\n")
    assert "old turn" not in md  # since the last reset, as the session's other views
    assert md.index("What is the refund window?") < md.index("And for sale items?")
    assert f"call {first.call_id}" in md
    assert f"call {second.call_id}" in md
    nb = nbformat.read(wb.session("s").export(tmp_path / "s.ipynb"), as_version=4)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["markdown"] * 3
    assert nb.cells[1].metadata["workbench"]["id"] == first.call_id
    lines = [json.loads(line) for line in (wb.session("s").export(tmp_path / "s.jsonl")).read_text().splitlines()]
    assert [(t["session"], t["id"], t["text"]) for t in lines] == [
        ("s", first.call_id, "What is the refund window?"),
        ("s", second.call_id, "And for sale items?"),
    ]


def test_a_secret_planted_in_the_store_is_scrubbed_on_export(wb, tmp_path):
    r = wb.ask("hello", model="local/echo", session="leak")
    wb.store.execute("UPDATE calls SET text = ? WHERE id = ?", (f"the key is {KEY}", r.call_id))
    for suffix in ("md", "ipynb", "jsonl"):
        written = wb.session("leak").export(tmp_path / f"leak.{suffix}").read_text()
        assert KEY not in written
        assert "[REDACTED:" in written


def test_mistakes_are_one_line_errors(wb, tmp_path):
    with pytest.raises(WorkbenchError, match="has no calls since its last reset"):
        wb.session("empty").export(tmp_path / "e.md")
    wb.ask("hi", model="local/echo", session="x")
    with pytest.raises(WorkbenchError, match=r"write a transcript as \.md, \.ipynb or \.jsonl"):
        wb.session("x").export(tmp_path / "x.pdf")


@pytest.mark.parametrize("suffix", ["md", "ipynb", "jsonl"])
def test_an_export_never_writes_over_a_file_it_did_not_write(wb, tmp_path, suffix):
    """``%llm_export chat analysis.ipynb`` named the notebook being worked in: it was replaced by the transcript.
    Now a file there is replaced only when it is an earlier export (a notebook re-run exports again) or with
    ``overwrite``.
    """
    wb.ask("What is the refund window?", model="local/echo", session="chat")
    mine = tmp_path / f"analysis.{suffix}"
    own = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("df = load()")]))
    mine.write_text({"md": "# My analysis\n\nnotes\n", "ipynb": own, "jsonl": '{"row": 1}\n'}[suffix])
    before = mine.read_text()
    with pytest.raises(WorkbenchError, match=rf"analysis\.{suffix} exists and is not a transcript workbench wrote"):
        wb.session("chat").export(mine)
    assert mine.read_text() == before
    export = tmp_path / f"chat.{suffix}"
    wb.session("chat").export(export)
    wb.ask("And for sale items?", model="local/echo", session="chat")
    assert "sale items" in wb.session("chat").export(export).read_text()  # its own earlier export: replaced
    wb.session("chat").export(mine, overwrite=True)
    assert "refund window" in mine.read_text()


def test_a_transcript_that_cannot_be_written_is_one_line_and_loses_nothing(wb, tmp_path):
    """A folder at the path, or a file where a folder of the path should be: one line saying what to do."""
    from workbench.memory.transcript import export

    wb.ask("hello", session="t")
    (tmp_path / "chat.md").mkdir()
    with pytest.raises(WorkbenchError, match=r"cannot write the transcript to .*chat\.md .*pass a file in a folder"):
        export(wb.store, "t", tmp_path / "chat.md", overwrite=True)
    (tmp_path / "notes").write_text("mine")
    with pytest.raises(WorkbenchError, match=r"cannot make the folder .*notes for the transcript"):
        export(wb.store, "t", tmp_path / "notes" / "chat.md")
    assert (tmp_path / "notes").read_text() == "mine"
    assert len(wb.store.query("SELECT id FROM calls WHERE session = 't'")) == 1
