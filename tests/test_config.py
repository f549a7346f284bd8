from pathlib import Path

import pytest

from workbench import ConfigError
from workbench.config import load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_STORE", raising=False)
    s = load_settings()
    assert s.mode == "live"
    assert s.default_route == "local/echo"
    assert s.store == tmp_path / ".workbench" / "workbench.db"


def test_file_found_from_a_subfolder_and_paths_relative_to_it(tmp_path, monkeypatch):
    write(
        tmp_path / "workbench.toml",
        'store = "data/x.db"\ndefault_route = "fast"\n[routes.fast]\ndeployments = [{ model = "local/echo" }]\n',
    )
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("WORKBENCH_STORE", raising=False)
    s = load_settings()
    assert s.store == tmp_path / "data" / "x.db"
    assert s.routes["fast"].deployments[0].model == "local/echo"


def test_pyproject_tool_table(tmp_path, monkeypatch):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.workbench]\nmode = "replay"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings().mode == "replay"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    write(tmp_path / "workbench.toml", 'mode = "live"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_MODE", "replay")
    monkeypatch.setenv("WORKBENCH_DEFAULT_ROUTE", "local/extractive")
    s = load_settings()
    assert (s.mode, s.default_route) == ("replay", "local/extractive")


def test_bad_env_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_MODE", "sometimes")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith("WORKBENCH_MODE: mode:")
    assert "'live' or 'replay'" in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_value_names_file_key_and_expectation(tmp_path):
    path = write(
        tmp_path / "workbench.toml", '[routes.fast]\ndeployments = [{ model = "local/echo", timeout = "soon" }]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert message.startswith(f"{path}: routes.fast.deployments[0].timeout:")
    assert "valid number" in message
    assert "'soon'" in message
    assert "\n" not in message


def test_unknown_key_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"routes\.a\.deployments\[0\]\.api_key: Extra inputs"):
        load_settings(write(tmp_path / "a.toml", '[routes.a]\ndeployments = [{ model = "m", api_key = "sk-x" }]\n'))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(write(tmp_path / "b.toml", "mode = \n"))
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"memory\.ttl_days\.episode: Input should be less than or equal to 36500"):
        load_settings(write(tmp_path / "c.toml", "[memory.ttl_days]\nepisode = 1e300\n"))


def test_scripted_rules_file_is_validated(tmp_path):
    write(tmp_path / "rules.toml", '[[rules]]\npattern = "(unclosed"\nreply = "x"\n')
    path = write(tmp_path / "workbench.toml", '[scripted]\nfile = "rules.toml"\n')
    with pytest.raises(ConfigError, match=r"rules\[0\]\.pattern: not a valid regular expression"):
        load_settings(path)
    write(tmp_path / "rules.toml", 'default = "nope"\n[[rules]]\npattern = "hi"\nreply = "hello"\n')
    s = load_settings(path)
    assert s.scripted.default == "nope"
    assert s.scripted.rules[0].reply == "hello"


def test_a_gateway_deployment_is_a_url_and_not_also_an_api_base():
    from workbench.config import Deployment

    assert Deployment(model="gpt-4o-mini", gateway="http://proxy:4000").endpoint == "gpt-4o-mini @ http://proxy:4000"
    with pytest.raises(ValueError, match="gateway or an api_base, not both"):
        Deployment(model="m", gateway="http://proxy:4000", api_base="http://other/v1")
    with pytest.raises(ValueError, match="http:// or https:// URL"):
        Deployment(model="m", gateway="proxy:4000")
