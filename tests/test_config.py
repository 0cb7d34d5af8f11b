"""Configuration: file, environment, validation, and the generated reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitrail.config import ConfigError, load_settings, reference_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("VITRAIL_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_embedded_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.transport_url == "memory://"
    assert settings.api.host == "127.0.0.1" and settings.api.port == 8999
    assert settings.database_url() == f"sqlite+aiosqlite:///{tmp_path / 'vitrail' / 'vitrail.db'}"
    assert settings.static_directory() == tmp_path / "vitrail" / "static"
    assert settings.api.client_url() == "http://127.0.0.1:8999"


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_file_then_environment_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = tmp_path / f"vitrail{suffix}"
    if suffix == ".toml":
        path.write_text('datasources = ["static", "simulator"]\n[api]\nport = 9000\nhost = "0.0.0.0"\n')
    else:
        path.write_text("datasources: [static, simulator]\napi:\n  port: 9000\n  host: 0.0.0.0\n")
    monkeypatch.setenv("VITRAIL_API__PORT", "9001")
    settings = load_settings(path, graph={"consistency_rounds": 5})
    assert settings.datasources == ["static", "simulator"]
    assert settings.api.host == "0.0.0.0"  # from the file
    assert settings.api.port == 9001  # the environment beats the file
    assert settings.graph.consistency_rounds == 5  # arguments beat both
    assert settings.api.client_url() == "http://127.0.0.1:9001"
    monkeypatch.setenv("VITRAIL_CONFIG", str(path))
    assert load_settings().api.host == "0.0.0.0"


def test_comma_separated_datasources_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITRAIL_DATASOURCES", "simulator, static")
    assert load_settings().datasources == ["simulator", "static"]


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"VITRAIL_API__PORT": "eighty"}, ["api.port"]),
        ({"VITRAIL_GRAPH__CONSISTENCY_ROUNDS": "0"}, ["graph.consistency_rounds"]),
        ({"VITRAIL_DATASOURCES": "static,nagios"}, ["nagios", "known"]),
        ({"VITRAIL_LOGGING__LEVEL": "chatty"}, ["logging.level"]),
        ({"VITRAIL_NOT_AN_OPTION": "1"}, ["VITRAIL_NOT_AN_OPTION"]),
        ({"VITRAIL_API_PORT": "1"}, ["VITRAIL_API_PORT", "did you mean VITRAIL_API__PORT"]),
    ],
)
def test_invalid_options_are_named(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: list[str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    for word in words:
        assert word in str(info.value)


def test_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[api\n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid"):
        load_settings(broken)
    ini = tmp_path / "vitrail.ini"
    ini.write_text("x=1")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml or \.yml"):
        load_settings(ini)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(listed)


def test_reference_documents_every_option_and_matches_the_docs() -> None:
    text = reference_markdown()
    for option in ("data_dir", "get_all_interval", "consistency_rounds", "VITRAIL_API__PORT", "values_dir"):
        assert option in text
    assert DOCS.read_text(encoding="utf-8") == text, "run: vitrail config reference > docs/configuration.md"


def test_the_demo_templates_are_the_examples() -> None:
    """The demo ships copies of examples/templates (examples are not installed): they must not drift."""
    root = Path(__file__).resolve().parent.parent
    demo = root / "src" / "vitrail" / "demo" / "templates"
    copies = sorted(demo.glob("*.yaml"))
    assert copies
    for copy in copies:
        assert copy.read_bytes() == (root / "examples" / "templates" / copy.name).read_bytes(), copy.name
