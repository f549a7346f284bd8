"""Context specs load from files, are versioned by content, render in a sandbox, and fail in one line."""

import pytest

from workbench.context import load_spec
from workbench.errors import ConfigError, TemplateError

SPEC = """system: |
  You help {{ company }} customers. Today is {{ today }}.
variables: {company: Acme}
budget_tokens: 500
sources:
  - {kind: documents, collection: handbook, k: 2, max_tokens: 200, overflow: truncate}
"""


def test_a_spec_loads_by_name_with_a_content_version(tmp_path):
    (tmp_path / "support.yaml").write_text(SPEC)
    spec = load_spec("support", tmp_path)
    assert spec.name == "support"
    assert len(spec.version) == 12
    assert spec.sources[0].collection == "handbook"
    assert spec.sources[0].overflow == "truncate"
    assert spec.render_system().startswith("You help Acme customers. Today is 20")
    (tmp_path / "support.yaml").write_text(SPEC.replace("500", "600"))
    assert load_spec("support", tmp_path).version != spec.version


def test_toml_specs_work_too(tmp_path):
    (tmp_path / "t.toml").write_text('system = "Hi {{ user }}"\n[[sources]]\nkind = "memory"\nscopes = ["user"]\n')
    assert load_spec("t", tmp_path).render_system(user="ana") == "Hi ana"


def test_the_template_is_sandboxed_and_user_text_is_never_a_template(tmp_path):
    (tmp_path / "evil.yaml").write_text("system: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n")
    with pytest.raises(TemplateError, match="system template"):
        load_spec("evil", tmp_path).render_system()
    (tmp_path / "ok.yaml").write_text("system: 'for {{ user }}'\n")
    assert load_spec("ok", tmp_path).render_system(user="{{ 7 * 7 }}") == "for {{ 7 * 7 }}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources:\n  - {kind: documents}\n", "sources[0]: a documents source needs a collection"),
        ("sources:\n  - {kind: web}\n", "sources[0].kind: Input should be 'documents', 'memory', 'history' or 'tools'"),
        ("budget_tokens: -1\n", "budget_tokens: Input should be greater than 0"),
        ("systm: hi\n", "systm: Extra inputs are not permitted"),
        ("system: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping of keys"),
    ],
)
def test_a_malformed_spec_is_one_line_with_file_key_and_expectation(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_spec("bad", tmp_path)
    assert message in str(err.value)
    assert str(tmp_path / "bad.yaml") in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unknown_spec_lists_the_known_ones(tmp_path):
    (tmp_path / "support.yaml").write_text(SPEC)
    with pytest.raises(ConfigError, match=r"no context spec 'sales' in .* \(have: support\)"):
        load_spec("sales", tmp_path)


def test_an_edited_spec_is_reloaded_and_an_unchanged_one_is_not_reparsed(tmp_path):
    (tmp_path / "s.yaml").write_text("budget_tokens: 100\n")
    first = load_spec("s", tmp_path)
    assert load_spec("s", tmp_path) is first  # same content: the parsed spec is reused
    (tmp_path / "s.yaml").write_text("budget_tokens: 200\n")
    assert load_spec("s", tmp_path).budget_tokens == 200


def test_a_spec_that_cannot_be_read_is_one_config_error_line(tmp_path):
    """A name too long for a file name, or a spec file that is a folder: one line, not a raw OSError."""
    with pytest.raises(ConfigError, match=r"cannot read the context spec 'x+\.\.\.x+' \(File name too long\)"):
        load_spec("x" * 300, tmp_path)
    (tmp_path / "support.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"^no such context spec file: '.*support\.yaml'$"):
        load_spec(tmp_path / "support.yaml", tmp_path)
