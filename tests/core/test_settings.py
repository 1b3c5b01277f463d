"""Settings: conf/settings.toml defaults, MODELRUNNER_* overrides, DMR's variable names."""

import pytest

from modelrunner.settings import load_settings, server_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("MODELS_PATH", "MODEL_RUNNER_HOST", "MODEL_RUNNER_PORT", "MODELRUNNER_PORT",
                 "MODELRUNNER_MODELS_PATH", "MODELRUNNER_HOST", "MODELRUNNER_KEEP_ALIVE"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_come_from_conf_settings_toml(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings()
    assert settings.port == 12434
    assert settings.host == "127.0.0.1"
    assert settings.keep_alive == "5m"
    assert settings.models_path == str(tmp_path / ".docker" / "models")


def test_modelrunner_environment_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELRUNNER_PORT", "9999")
    monkeypatch.setenv("MODELRUNNER_KEEP_ALIVE", "30s")
    monkeypatch.setenv("MODELRUNNER_MODELS_PATH", str(tmp_path))
    settings = load_settings()
    assert settings.port == 9999 and settings.keep_alive == "30s"
    assert settings.models_path == str(tmp_path)


def test_dmr_variable_names_are_honoured(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELS_PATH", str(tmp_path / "m"))
    monkeypatch.setenv("MODEL_RUNNER_PORT", "13000")
    settings = load_settings()
    assert settings.models_path == str(tmp_path / "m") and settings.port == 13000
    monkeypatch.setenv("MODEL_RUNNER_HOST", "http://10.1.2.3:4567")
    assert server_url() == "http://10.1.2.3:4567"


@pytest.mark.parametrize("env", [
    {}, {"MODELRUNNER_PORT": "9999"}, {"MODEL_RUNNER_PORT": "13000"},
    {"MODEL_RUNNER_PORT": "13000", "MODELRUNNER_PORT": "9999"},
    {"MODELRUNNER_HOST": "0.0.0.0", "MODELRUNNER_PORT": "1"},
    {"MODELRUNNER_SETTINGS_FILE": "extra.toml"},
    {"MODELRUNNER_SETTINGS_FILE": "extra.toml", "MODEL_RUNNER_PORT": "5"},
])
def test_server_url_reads_what_load_settings_reads(monkeypatch, tmp_path, env):
    """server_url() reads host and port without dynaconf; the answer must not change."""
    (tmp_path / "extra.toml").write_text('host = "10.0.0.9"\nport = 4242\n')
    monkeypatch.delenv("MODELRUNNER_SETTINGS_FILE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value) if value.endswith(".toml") else value)
    settings = load_settings()
    assert server_url() == f"http://{settings.host}:{settings.port}"
