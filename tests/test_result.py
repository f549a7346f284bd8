"""How a Result shows in a notebook: an answer's raw HTML is text, never markup that runs."""

from workbench.result import markdown_text


def test_an_answers_html_shows_as_text_and_its_code_as_code(wb):
    hostile = '<img src=x onerror="alert(1)"> and <script>alert(2)</script>'
    result = wb.ask(hostile, model="local/echo")
    data, meta = result._repr_mimebundle_()
    shown = data["text/markdown"]
    assert "<img" not in shown and "<script" not in shown
    assert shown.startswith("&lt;img src=x onerror=")  # the same words, as text
    assert shown.rstrip().endswith("</sub>")  # the footer is the workbench's own markup
    assert data["text/plain"].startswith(hostile)  # the plain text is the answer as it is


def test_code_is_left_alone():
    text = "use `a < b` here:\n```python\nif x < y:\n    pass\n```\nthen <b>bold</b>"
    assert markdown_text(text) == "use `a < b` here:\n```python\nif x < y:\n    pass\n```\nthen &lt;b>bold&lt;/b>"
    assert markdown_text("no markup at all") == "no markup at all"
